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
    /// arm64: what memblock had reserved (CMA and DMA pools, `memblock_reserve:` lines of
    /// memblock=debug), in log order; kexec_file_load places nothing there.
    public var memblockReserved: [AddressRange] = []
    /// The architecture the log reveals, when it does (memblock and arm64 EFI lines: arm64; e820: x86_64).
    public var suggestedArch: Arch?
    /// What was skipped or interpreted, for the reader.
    public var notes: [String]
    /// The running kernel's version, from the boot's `Linux version` banner, and that line.
    public var kernel: KernelVersion?
    public var kernelLine: ImportedLine?
    /// What the first kernel had reserved before crashkernel= (RAMDISK, image, log buffer,
    /// NODE_DATA), and the lines that say so.
    public var earlyReservations: FirstKernelReservations = .none
    public var earlyReservationLines: [ImportedLine] = []
    /// What the log says about Kexec HandOver scratch (KhoLines).
    public var kho: ImportedKho?

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
    /// What to blame instead of the log's lines (`boot` for a boot number the log does not have).
    public var field: String?
    public init(line: Int?, text: String?, message: String, field: String? = nil) {
        self.line = line
        self.text = text
        self.message = message
        self.field = field
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
