/// Boot-log importers: pure functions from the text of a boot log (dmesg, journalctl -k, /proc/iomem,
/// an EFI memory map dump, arm64 memblock lines) to a typed memory map.
///
/// Lines an importer does not know are ignored; a line of a kind it knows that does not parse is an
/// `ImportError` naming the 1-based line and quoting it.

/// Which importer reads a log.
public enum ImportFormat: String, Sendable, CaseIterable {
    /// The first recognisable line decides.
    case auto
    /// dmesg `BIOS-e820: [mem …] type` tables with `e820: update` / `e820: remove` edits.
    case e820
    /// /proc/iomem (read as root).
    case iomem
    /// `efi: memNN: [type|attrs] range=[…]` (efi=debug) or arm64's `Processing EFI memory map` lines.
    case efi
    /// arm64 `Early memory node ranges` / `Zone ranges:` lines.
    case memblock
    /// A flattened device tree blob: its memory nodes and no-map reserved memory.
    case dtb
}

/// One line of the log, as written (without the line break).
public struct ImportedLine: Hashable, Sendable, CustomStringConvertible {
    /// 1-based.
    public var number: Int
    public var text: String
    public init(number: Int, text: String) {
        self.number = number
        self.text = text
    }
    /// The message without timestamps and syslog prefixes, trimmed.
    public var message: String { String(LogText.body(Substring(text))) }
    public var description: String { "line \(number): \(message)" }
}

/// Where a region of an imported map came from.
public struct RegionSource: Hashable, Sendable {
    /// The lines that made the region (several when adjacent entries were merged or an update split it).
    public var lines: [ImportedLine]
    /// What the importer knows beyond the type (EFI type and attributes, …).
    public var note: String?
    public init(lines: [ImportedLine], note: String? = nil) {
        self.lines = lines
        self.note = note
    }
}

/// What a boot log says about a machine.
public struct ImportedMachine: Sendable, Equatable {
    /// The importer that read it (never `.auto`).
    public var format: ImportFormat
    public var memory: MemoryMap
    /// Parallel to `memory.regions`: where region i came from.
    public var sources: [RegionSource]
    /// Reserved crashkernel ranges the log reports (low part included), lowest first.
    public var crashkernelRanges: [AddressRange]
    /// The lines that reported them, parallel to `crashkernelRanges`.
    public var crashkernelLines: [ImportedLine]
    /// The running kernel's image (iomem `Kernel code` / `rodata` / `data` / `bss`), in file order.
    public var firstKernel: [AddressRange]
    /// arm64: exclusive end of ZONE_DMA (else ZONE_DMA32) from `Zone ranges:`; the low limit of
    /// a crashkernel reservation.
    public var dmaZoneLimit: PhysAddr?
    /// The architecture the log reveals, when it does (memblock and arm64 EFI lines: arm64; e820: x86_64).
    public var suggestedArch: Arch?
    /// What was skipped or interpreted, for the reader.
    public var notes: [String]

    public init(
        format: ImportFormat, memory: MemoryMap, sources: [RegionSource], crashkernelRanges: [AddressRange] = [],
        crashkernelLines: [ImportedLine] = [], firstKernel: [AddressRange] = [], dmaZoneLimit: PhysAddr? = nil,
        suggestedArch: Arch? = nil, notes: [String] = []
    ) {
        self.format = format
        self.memory = memory
        self.sources = sources
        self.crashkernelRanges = crashkernelRanges
        self.crashkernelLines = crashkernelLines
        self.firstKernel = firstKernel
        self.dmaZoneLimit = dmaZoneLimit
        self.suggestedArch = suggestedArch
        self.notes = notes
    }

    /// Region index → the first line that made it.
    public var sourceLines: [ImportedLine] { sources.map { $0.lines[0] } }
}

/// A log line of a known kind that does not parse, or a log without a memory map.
public struct ImportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based; nil when the problem is the log as a whole.
    public var line: Int?
    /// The line as written.
    public var text: String?
    public var message: String
    public init(line: Int?, text: String?, message: String) {
        self.line = line
        self.text = text
        self.message = message
    }
    public init(_ l: LogLine, _ message: String) {
        self.init(line: l.number, text: String(l.raw), message: message)
    }
    public var description: String {
        let at = line.map { "line \($0): " } ?? ""
        let quoted = text.map { " in \"\(LogText.printable(Substring($0)))\"" } ?? ""
        return at + message + quoted
    }
}

public enum BootLog {
    /// Reads `text` with the importer for `format` (`.auto`: the first recognisable line decides).
    /// `file` names the log in the regions' `source`.
    public static func parse(_ text: String, format: ImportFormat = .auto, file: String = "<log>")
        throws(ImportError) -> ImportedMachine
    {
        let lines = LogText.lines(text)
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

    /// Reads a file's bytes: a device tree blob (by its magic, or `format: dtb`), else UTF-8 text.
    public static func parse(bytes: [UInt8], format: ImportFormat = .auto, file: String = "<log>")
        throws(ImportError) -> ImportedMachine
    {
        if format == .dtb || (format == .auto && DtbImporter.recognises(bytes)) {
            return try DtbImporter.parse(bytes, file: file)
        }
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw ImportError(line: nil, text: nil, message: "not UTF-8 text (and not a device tree blob)")
        }
        return try parse(text, format: format, file: file)
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

    /// Reads the log at `path` (at most 16 MiB of UTF-8) and imports it; errors name the log file and line.
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
            file: file, line: e.line, field: format == .auto ? "boot log" : "\(format.rawValue) log",
            message: e.message + quoted)
    }
}

// MARK: - Lines

/// A line of a log: its number, the text as written, and the message without prefixes.
public struct LogLine: Sendable {
    public let number: Int
    public let raw: Substring
    public let body: Substring
}

public enum LogText {
    /// The lines of `text` (LF or CRLF), numbered from 1.
    public static func lines(_ text: String) -> [LogLine] {
        var out: [LogLine] = []
        var n = 0
        for var raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            n += 1
            if raw.last == "\r" { raw = raw.dropLast() }
            out.append(LogLine(number: n, raw: raw, body: body(raw)))
        }
        if out.last?.raw.isEmpty == true { out.removeLast() }
        return out
    }

    /// The kernel message of a dmesg / journalctl / console line: drops a syslog or journal header up
    /// to `kernel: `, `<N>` log levels, `kern  :info  : ` (dmesg -x), `[    0.000000]` timestamps,
    /// `[    T0]` caller ids and `[Mon Jan  1 00:00:00 2024]` (dmesg -T), then surrounding blanks.
    /// A log quoted in a mail reply (`> [    0.000000] …`, `>> …`) loses its quote marks first.
    public static func body(_ raw: Substring) -> Substring {
        var s = raw
        while s.first == ">" { s = s.dropFirst().drop { $0 == " " } }
        if let r = s.range(of: " kernel: ") {
            s = s[r.upperBound...]
        } else if s.hasPrefix("kernel: ") {
            s = s.dropFirst("kernel: ".count)
        }
        var changed = true
        while changed {
            changed = false
            s = s.drop { $0 == " " || $0 == "\t" }
            if s.first == "<", let close = s.firstIndex(of: ">"), s.index(after: s.startIndex) < close,
                s[s.index(after: s.startIndex)..<close].allSatisfy(\.isNumber)
            {
                s = s[s.index(after: close)...]
                changed = true
            } else if s.first == "[", let close = s.firstIndex(of: "]"),
                isPrefixBracket(s[s.index(after: s.startIndex)..<close])
            {
                s = s[s.index(after: close)...]
                changed = true
            } else if let colon = facilityPrefixEnd(s) {
                s = s[colon...]
                changed = true
            }
        }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }

    /// `[    0.000000]`, `[    T1]`, `[  C0]`, `[Mon Jan  1 00:00:00 2024]`; never `[mem …]` and the like.
    private static func isPrefixBracket(_ inner: Substring) -> Bool {
        let t = inner.drop { $0 == " " }
        guard !t.isEmpty, inner.count <= 40 else { return false }
        if t.allSatisfy({ $0.isNumber || $0 == "." }) { return true }
        if let f = t.first, f == "T" || f == "C", t.count > 1, t.dropFirst().allSatisfy(\.isNumber) { return true }
        // dmesg -T: a weekday, a month, a time.
        let days = ["Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun "]
        return days.contains { t.hasPrefix($0) } && t.contains(":")
    }

    /// End of `kern  :info  : ` (dmesg -x), if `s` starts with one.
    private static func facilityPrefixEnd(_ s: Substring) -> Substring.Index? {
        let facilities = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news"]
        guard let f = facilities.first(where: { s.hasPrefix($0) }) else { return nil }
        var t = s.dropFirst(f.count).drop { $0 == " " }
        guard t.first == ":" else { return nil }
        t = t.dropFirst()
        let levels = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]
        guard let l = levels.first(where: { t.hasPrefix($0) }) else { return nil }
        t = t.dropFirst(l.count).drop { $0 == " " }
        guard t.first == ":" else { return nil }
        return t.index(after: t.startIndex)
    }

    /// The text with control characters shown as `?` (for messages and YAML comments).
    public static func printable(_ s: Substring) -> String {
        String(
            String.UnicodeScalarView(
                s.unicodeScalars.map { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7f ? "?" : $0 }))
    }
}

// MARK: - Shared parsing helpers

/// A cursor over one line, for the kernel's fixed printk formats.
struct LineCursor {
    var s: Substring
    init(_ s: Substring) { self.s = s }

    var isAtEnd: Bool { s.isEmpty }

    mutating func skip(_ p: String) -> Bool {
        guard s.hasPrefix(p) else { return false }
        s = s.dropFirst(p.count)
        return true
    }

    mutating func skipBlanks() { s = s.drop { $0 == " " || $0 == "\t" } }

    /// Hex digits (with or without 0x). `.failure(nil)`: none; `.failure(text)`: more than 64 bits.
    mutating func hex() -> Result<UInt64, HexProblem> {
        var t = s
        if t.hasPrefix("0x") || t.hasPrefix("0X") { t = t.dropFirst(2) }
        let digits = t.prefix { $0.isHexDigit && $0.isASCII }
        guard !digits.isEmpty else { return .failure(.missing) }
        s = t.dropFirst(digits.count)
        let significant = digits.drop { $0 == "0" }
        guard significant.count <= 16, let v = UInt64(significant.isEmpty ? "0" : significant, radix: 16) else {
            return .failure(.overflow(String(digits)))
        }
        return .success(v)
    }

    /// Decimal digits.
    mutating func decimal() -> Result<UInt64, HexProblem> {
        let digits = s.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else { return .failure(.missing) }
        s = s.dropFirst(digits.count)
        guard let v = UInt64(digits) else { return .failure(.overflow(String(digits))) }
        return .success(v)
    }

    enum HexProblem: Error, Equatable {
        case missing
        case overflow(String)
    }

    /// `A-B` (inclusive, hex with or without 0x), as a range.
    mutating func inclusiveRange(_ what: String) -> Result<AddressRange, LineProblem> {
        let a: UInt64
        switch hex() {
        case .success(let v): a = v
        case .failure(.missing): return .failure(LineProblem("expected \(what) (0x…-0x…)"))
        case .failure(.overflow(let d)): return .failure(LineProblem("address \(d) does not fit in 64 bits"))
        }
        guard skip("-") else { return .failure(LineProblem("expected '-' between the two addresses of \(what)")) }
        let b: UInt64
        switch hex() {
        case .success(let v): b = v
        case .failure(.missing): return .failure(LineProblem("expected the end address of \(what)"))
        case .failure(.overflow(let d)): return .failure(LineProblem("address \(d) does not fit in 64 bits"))
        }
        guard let r = AddressRange(first: PhysAddr(a), last: PhysAddr(b)) else {
            return .failure(LineProblem("inverted range: end \(hex16(b)) is below start \(hex16(a))"))
        }
        return .success(r)
    }

    /// `[mem 0x…-0x…]`.
    mutating func memBracket() -> Result<AddressRange, LineProblem> {
        guard skip("[mem ") else { return .failure(LineProblem("expected \"[mem 0x…-0x…]\"")) }
        let r = inclusiveRange("the [mem …] range")
        guard case .success = r else { return r }
        guard skip("]") else { return .failure(LineProblem("expected ']' after the [mem …] range")) }
        return r
    }
}

/// What is wrong with a line, for ImportError.
struct LineProblem: Error, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Builds the final map and its sources, turning MemoryMap's complaints into ImportErrors.
struct RegionList {
    struct Entry {
        var range: AddressRange
        var type: RegionType
        var lines: [ImportedLine]
        var note: String?
    }
    var entries: [Entry] = []

    func build(file: String, field: String, emptyMessage: String) throws(ImportError) -> (MemoryMap, [RegionSource]) {
        let sorted = entries.sorted { $0.range < $1.range }
        guard !sorted.isEmpty else { throw ImportError(line: nil, text: nil, message: emptyMessage) }
        for i in sorted.indices.dropFirst() where sorted[i - 1].range.overlaps(sorted[i].range) {
            let (a, b) = (sorted[i - 1], sorted[i])
            let (later, earlier) = a.lines[0].number > b.lines[0].number ? (a, b) : (b, a)
            throw ImportError(
                line: later.lines[0].number, text: later.lines[0].text,
                message:
                    "\(later.range) (\(later.type.rawValue)) overlaps \(earlier.range) (\(earlier.type.rawValue)) "
                    + "from line \(earlier.lines[0].number)")
        }
        let regions = sorted.map {
            Region(
                range: $0.range, type: $0.type,
                source: SourceLocation(file: file, line: $0.lines[0].number, field: field))
        }
        do throws(MemoryMapError) {
            return (try MemoryMap(regions), sorted.map { RegionSource(lines: $0.lines, note: $0.note) })
        } catch {
            throw ImportError(line: nil, text: nil, message: error.description)
        }
    }
}
