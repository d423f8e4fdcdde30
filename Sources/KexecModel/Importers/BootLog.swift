/// The entry points of the importers: a log's bytes or text → the boot asked for → its importer.
///
/// The text is read once here for every importer: the bytes are decoded (UTF-8, UTF-16 with a
/// byte-order mark: LogTextDecoding), split into lines at LF, CRLF or CR (LogText.lines) and into
/// boots (LogBoots). Only the chosen boot's lines reach the importer; their numbers stay those of
/// the file. A log of one boot imports exactly as before; a log of several imports its first boot
/// unless told otherwise, and the machine's notes say which lines belong to the other boots.
public enum BootLog {
    /// The other boots the notes list one by one; the rest get one note together.
    public static let maxBootNotes = 16

    /// Reads `text` with the importer for `format` (`.auto`: the first recognisable line of the boot
    /// decides). `file` names the log in the regions' `source`; `boot` (1-based) picks a boot of a
    /// log that holds several.
    public static func parse(_ text: String, format: ImportFormat = .auto, file: String = "<log>", boot: Int = 1)
        throws(ImportError) -> ImportedMachine
    {
        let all = LogText.lines(text)
        let boots = LogBoots.split(all)
        guard boot >= 1 else {
            throw ImportError(
                line: nil, text: nil, message: "boots are numbered from 1 (asked for \(boot))", field: "boot")
        }
        guard boots.count > 1 else {
            guard boot == 1 else { throw noSuchBoot(boot, count: boots.count) }
            return try importLines(all, format: format, file: file)
        }
        guard boot <= boots.count else { throw noSuchBoot(boot, count: boots.count) }
        let chosen = boots[boot - 1]
        var m: ImportedMachine
        do throws(ImportError) {
            m = try importLines(Array(all[chosen.indices]), format: format, file: file)
        } catch {
            if error.line == nil {
                var e = error
                e.message += " in boot \(boot) of \(boots.count) (\(chosen.lineSpan))"
                throw e
            }
            throw error
        }
        let label = chosen.label.isEmpty ? "" : ", \(chosen.label)"
        var notes = ["the log holds \(boots.count) boots; boot \(boot) (\(chosen.lineSpan)\(label)) is imported"]
        let others = boots.filter { $0.number != boot }
        for other in others.prefix(maxBootNotes) {
            let what = other.label.isEmpty ? "" : " (\(other.label))"
            notes.append(
                "\(other.lineSpan) belong to boot \(other.number)\(what); not imported; use --boot \(other.number)")
        }
        if others.count > maxBootNotes, let last = others.last {
            let first = others[maxBootNotes]
            let but = (first.number...last.number).contains(boot) ? " but \(boot)" : ""
            notes.append(
                "\(others.count - maxBootNotes) more boots from line \(first.firstLine) on (boots \(first.number) to "
                    + "\(last.number)\(but)); not imported")
        }
        m.notes = notes + m.notes
        return m
    }

    private static func noSuchBoot(_ boot: Int, count: Int) -> ImportError {
        ImportError(
            line: nil, text: nil,
            message: "the log holds \(count) boot\(count == 1 ? "" : "s"), so there is no boot \(boot)", field: "boot")
    }

    /// Imports one boot's lines: its memory map (by format) and the running kernel's version from its
    /// `Linux version` banner.
    private static func importLines(_ lines: [LogLine], format: ImportFormat, file: String) throws(ImportError)
        -> ImportedMachine
    {
        var m = try importMemory(lines, format: format, file: file)
        for l in lines {
            guard l.body.hasPrefix("Linux version "), let v = KernelVersion(banner: String(l.body)) else { continue }
            m.kernel = v
            m.kernelLine = ImportedLine(number: l.number, text: String(l.raw))
            break
        }
        let early = try EarlyReservationLines.scan(lines, firstKernel: m.firstKernel)
        // An importer that read memblock.reserved itself (MemblockDump) keeps its ranges.
        m.earlyReservations.ranges += early.reservations.ranges
        m.earlyReservations.allocations = early.reservations.allocations
        m.earlyReservationLines = (m.earlyReservationLines + early.lines).sorted { $0.number < $1.number }
        m.notes += early.notes
        m.kho = try KhoLines.scan(lines)
        return m
    }

    private static func importMemory(_ lines: [LogLine], format: ImportFormat, file: String) throws(ImportError)
        -> ImportedMachine
    {
        var chosen = format
        if chosen == .auto {
            guard let f = detect(lines) else {
                throw ImportError(
                    line: nil, text: nil,
                    message:
                        "no memory map found (expected BIOS-e820 lines, /proc/iomem, an EFI memory map "
                        + "or arm64 memblock lines)")
            }
            chosen = f
        }
        switch chosen {
        case .dtb:
            throw ImportError(line: nil, text: nil, message: "a device tree blob is binary: read it as bytes, not text")
        case .e820, .auto: return try E820Importer.parse(lines, file: file)
        case .iomem: return try IomemImporter.parse(lines, file: file)
        case .efi: return try EfiImporter.parse(lines, file: file)
        case .memblock: return try MemblockImporter.parse(lines, file: file)
        }
    }

    /// Reads a file's bytes: a device tree blob (by its magic, or `format: dtb`; it holds one boot),
    /// else text in UTF-8 or, after its byte-order mark, UTF-16.
    public static func parse(bytes: [UInt8], format: ImportFormat = .auto, file: String = "<log>", boot: Int = 1)
        throws(ImportError) -> ImportedMachine
    {
        if format == .dtb || (format == .auto && DtbImporter.recognises(bytes)) {
            guard boot == 1 else {
                throw ImportError(
                    line: nil, text: nil,
                    message: "a device tree blob describes one boot, so there is no boot \(boot)", field: "boot")
            }
            return try DtbImporter.parse(bytes, file: file)
        }
        switch LogText.decode(bytes) {
        case .success(let decoded): return try parse(decoded.text, format: format, file: file, boot: boot)
        case .failure(let e): throw ImportError(line: e.line, text: nil, message: e.message)
        }
    }

    /// The format of the first recognisable line; nil if none is.
    public static func detect(_ text: String) -> ImportFormat? { detect(LogText.lines(text)) }

    static func detect(_ lines: [LogLine]) -> ImportFormat? {
        for l in lines {
            if IomemImporter.isIomemLine(l.raw) { return .iomem }
            if E820Importer.recognises(l.body) { return .e820 }
            if EfiImporter.recognises(l.body) { return .efi }
            if MemblockImporter.recognises(l.body) { return .memblock }
        }
        return nil
    }

    /// Reads the log at `path` (at most 16 MiB) and imports boot `boot` of it; errors name the log file
    /// and line.
    public static func load(path: String, format: ImportFormat = .auto, boot: Int = 1) throws(InputError)
        -> ImportedMachine
    {
        let bytes = try FixtureDecoder.readData(path)
        do throws(ImportError) {
            return try parse(bytes: bytes, format: format, file: path, boot: boot)
        } catch {
            throw inputError(error, file: path, format: format)
        }
    }

    /// An importer error as an InputError against the log file.
    public static func inputError(_ e: ImportError, file: String, format: ImportFormat) -> InputError {
        let quoted = e.text.map { ": \"\(LogText.printable(Substring($0)))\"" } ?? ""
        return InputError(
            file: file, line: e.line, field: e.field ?? (format == .auto ? "boot log" : "\(format.rawValue) log"),
            message: e.message + quoted)
    }
}
