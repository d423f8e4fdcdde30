/// The entry points of the importers: a log's bytes or text → its importer.
///
/// The text is read once here for every importer: the bytes are decoded (UTF-8, UTF-16 with a
/// byte-order mark: LogTextDecoding) and split into lines at LF, CRLF or CR (LogText.lines).
public enum BootLog {
    /// Reads `text` with the importer for `format` (`.auto`: the first recognisable line decides).
    /// `file` names the log in the regions' `source`.
    public static func parse(_ text: String, format: ImportFormat = .auto, file: String = "<log>")
        throws(ImportError) -> ImportedMachine
    {
        try importLines(LogText.lines(text), format: format, file: file)
    }

    private static func importLines(_ lines: [LogLine], format: ImportFormat, file: String) throws(ImportError)
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

    /// Reads a file's bytes: a device tree blob (by its magic, or `format: dtb`), else text in UTF-8
    /// or, after its byte-order mark, UTF-16.
    public static func parse(bytes: [UInt8], format: ImportFormat = .auto, file: String = "<log>")
        throws(ImportError) -> ImportedMachine
    {
        if format == .dtb || (format == .auto && DtbImporter.recognises(bytes)) {
            return try DtbImporter.parse(bytes, file: file)
        }
        switch LogText.decode(bytes) {
        case .success(let decoded): return try parse(decoded.text, format: format, file: file)
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

    /// Reads the log at `path` (at most 16 MiB) and imports it; errors name the log file and line.
    public static func load(path: String, format: ImportFormat = .auto) throws(InputError) -> ImportedMachine {
        let bytes = try FixtureDecoder.readData(path)
        do throws(ImportError) {
            return try parse(bytes: bytes, format: format, file: path)
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
