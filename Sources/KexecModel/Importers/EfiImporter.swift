/// EFI memory map dumps (efi=debug):
///
/// - x86 efi_print_memmap: `efi: mem%02u: %s range=[0x%016llx-0x%016llx] (%lluMB)`, %s being
///   efi_md_typeattr_format: `[<type, 12 wide>|RUN|HP|MR|CC|SP|NV|XP|RP|WP|RO|UCE|WB|WT|WC|UC]` (the
///   flag columns vary with the kernel version, so flags are read by name), `[type=N|…]` for types the
///   kernel has no name for, `|attr=0x%016llx]` for attributes it cannot spell; entries the kernel
///   found invalid end in `(invalid)` and are dropped, as efi_clean_memmap drops them;
/// - arm64 reserve_regions: `efi:   0x%012llx-0x%012llx <typeattr>` (a trailing `*` on older kernels);
/// - kernels before 3.19: `efi: mem%02u: type=%u, attr=0x%llx, range=[0x%016llx-0x%016llx) (%lluMB)`
///   with an exclusive end.
///
/// Types map as the x86 EFI stub builds its e820 table (setup_e820): Conventional, Loader and Boot
/// Code/Data (and Unaccepted) are usable, Conventional with SP (specific purpose) soft-reserved;
/// Runtime Code/Data, Reserved, MMIO, MMIO Port, PAL Code reserved; ACPI Reclaim acpi; ACPI Mem NVS nvs;
/// Unusable unusable; Persistent persistent. Adjacent entries of one type merge (soft-reserved ones
/// never do, as e820_nomerge keeps them apart).
enum EfiImporter {
    static let typeNames: [String: Int] = [
        "Reserved": 0, "Loader Code": 1, "Loader Data": 2, "Boot Code": 3, "Boot Data": 4, "Runtime Code": 5,
        "Runtime Data": 6, "Conventional": 7, "Unusable": 8, "ACPI Reclaim": 9, "ACPI Mem NVS": 10, "MMIO": 11,
        "MMIO Port": 12, "PAL Code": 13, "Persistent": 14, "Unaccepted": 15,
        // Before 4.x the names were longer.
        "Conventional Memory": 7, "Unusable Memory": 8, "ACPI Reclaim Memory": 9, "ACPI Memory NVS": 10,
        "Memory Mapped I/O": 11, "MMIO Port Space": 12, "Persistent Memory": 14,
    ]
    static let shortNames = [
        "Reserved", "Loader Code", "Loader Data", "Boot Code", "Boot Data", "Runtime Code", "Runtime Data",
        "Conventional", "Unusable", "ACPI Reclaim", "ACPI Mem NVS", "MMIO", "MMIO Port", "PAL Code", "Persistent",
        "Unaccepted",
    ]
    /// Attribute bits worth keeping in a note (caching and protection bits are left out).
    static let attributeBits: [(UInt64, String)] = [
        (1 << 63, "RUN"), (1 << 20, "HP"), (1 << 16, "MR"), (1 << 19, "CC"), (1 << 18, "SP"), (1 << 15, "NV"),
    ]
    static let notedFlags: Set<String> = ["RUN", "HP", "MR", "CC", "SP", "NV"]

    static func recognises(_ body: Substring) -> Bool { kind(body) != nil }

    private enum Kind {
        case indexed  // efi: memNN: …
        case arm64  // efi:   0x…-0x… […]
    }

    private static func kind(_ body: Substring) -> Kind? {
        guard body.hasPrefix("efi: ") else { return nil }
        let rest = body.dropFirst(5)
        if rest.hasPrefix("mem"), let colon = rest.firstIndex(of: ":"),
            rest[rest.index(rest.startIndex, offsetBy: 3)..<colon].allSatisfy(\.isNumber),
            colon > rest.index(rest.startIndex, offsetBy: 3)
        {
            return .indexed
        }
        let t = rest.drop { $0 == " " }
        if t.count < rest.count, t.hasPrefix("0x"), t.contains("[") { return .arm64 }
        return nil
    }

    private struct Entry {
        var range: AddressRange
        var efiType: Int?
        var typeName: String
        var flags: [String]
        var line: ImportedLine
    }

    static func parse(_ lines: [LogLine], file: String) throws(ImportError) -> ImportedMachine {
        var entries: [Entry] = []
        var crash = CrashkernelCollector()
        var invalid: [Int] = []
        var unknownTypes: [String] = []
        var sawArm64 = false
        for l in lines {
            if try crash.take(l) { continue }
            guard let k = kind(l.body) else { continue }
            if k == .arm64 { sawArm64 = true }
            guard let e = try entry(l, k) else {
                invalid.append(l.number)
                continue
            }
            entries.append(e)
        }
        guard !entries.isEmpty else {
            throw ImportError(
                line: nil, text: nil,
                message:
                    "no EFI memory map entries found (expected \"efi: mem00: [Conventional|…] range=[0x…-0x…] (NMB)\" "
                    + "lines, printed with efi=debug)")
        }
        entries.sort { $0.range < $1.range }
        var list = RegionList()
        var merged = 0
        for e in entries {
            let tn = e.efiType.map { $0 >= 0 && $0 < shortNames.count ? shortNames[$0] : "type=\($0)" } ?? e.typeName
            guard let type = regionType(e) else {
                unknownTypes.append("line \(e.line.number) (\(tn))")
                continue
            }
            let noted = e.flags.filter { notedFlags.contains($0) || $0.hasPrefix("attr=") }
            let note = "EFI \(tn)" + (noted.isEmpty ? "" : " [\(noted.joined(separator: " "))]")
            if var last = list.entries.last, last.type == type, type != .softReserved,
                last.range.last.raw != .max, last.range.last.raw + 1 == e.range.first.raw
            {
                last.range = AddressRange(first: last.range.first, last: e.range.last)!
                last.lines.append(e.line)
                if let n = last.note, !n.split(separator: ";").map({ $0.trimmingSpaces }).contains(note) {
                    last.note = n + "; " + note
                }
                list.entries[list.entries.count - 1] = last
                merged += 1
            } else {
                list.entries.append(RegionList.Entry(range: e.range, type: type, lines: [e.line], note: note))
            }
        }
        var notes: [String] = []
        if merged > 0 { notes.append("merged \(merged) EFI entries into the adjacent entry of the same type") }
        if !invalid.isEmpty {
            notes.append(
                "dropped \(invalid.count) entr\(invalid.count == 1 ? "y" : "ies") the kernel marked (invalid): line "
                    + invalid.map(String.init).joined(separator: ", "))
        }
        if !unknownTypes.isEmpty {
            notes.append(
                "skipped EFI types the kernel does not put in its memory map: " + unknownTypes.joined(separator: ", "))
        }
        let (memory, sources) = try list.build(
            file: file, field: "efi", emptyMessage: "the EFI memory map has no entry of a known type")
        let (ranges, crashLines) = crash.sorted
        return ImportedMachine(
            format: .efi, memory: memory, sources: sources, crashkernelRanges: ranges, crashkernelLines: crashLines,
            suggestedArch: sawArm64 ? .arm64 : nil, notes: notes)
    }

    private static func regionType(_ e: Entry) -> RegionType? {
        guard let t = e.efiType else { return nil }
        switch t {
        case 7: return e.flags.contains("SP") ? .softReserved : .usable
        case 1, 2, 3, 4, 15: return .usable
        case 0, 5, 6, 11, 12, 13: return .reserved
        case 8: return .unusable
        case 9: return .acpi
        case 10: return .nvs
        case 14: return .persistent
        default: return nil
        }
    }

    /// nil for an entry the kernel marked (invalid).
    private static func entry(_ l: LogLine, _ k: Kind) throws(ImportError) -> Entry? {
        var c = LineCursor(l.body)
        _ = c.skip("efi: ")
        let imported = ImportedLine(number: l.number, text: String(l.raw))
        if k == .arm64 {
            c.skipBlanks()
            let range: AddressRange
            switch c.inclusiveRange("the range") {
            case .success(let r): range = r
            case .failure(let m): throw ImportError(l, m.message)
            }
            c.skipBlanks()
            let (type, typeName, flags) = try typeAttr(l, &c)
            if c.s.hasPrefix("*") { c.s = c.s.dropFirst() }
            guard c.isAtEnd else { throw ImportError(l, "unexpected \"\(c.s)\" after the type and attributes") }
            return Entry(range: range, efiType: type, typeName: typeName, flags: flags, line: imported)
        }
        _ = c.skip("mem")
        _ = c.decimal()
        guard c.skip(": ") else { throw ImportError(l, "expected \": \" after memNN") }
        if c.s.hasPrefix("type=") { return try oldFormat(l, &c, imported) }
        let (type, typeName, flags) = try typeAttr(l, &c)
        guard c.skip(" range=[") else { throw ImportError(l, "expected \" range=[0x…-0x…]\" after the type") }
        if c.s.hasSuffix("(invalid)") { return nil }
        let range: AddressRange
        switch c.inclusiveRange("the range") {
        case .success(let r): range = r
        case .failure(let m): throw ImportError(l, m.message)
        }
        guard c.skip("] (") else { throw ImportError(l, "expected \"] (NMB)\" after the range") }
        guard case .success(let mb) = c.decimal(), c.skip("MB)"), c.isAtEnd else {
            throw ImportError(l, "expected \"(NMB)\" at the end of the line")
        }
        guard mb == range.size.raw >> 20 else {
            throw ImportError(l, "the size \(mb)MB does not match the range (\(range.size.raw >> 20)MB)")
        }
        return Entry(range: range, efiType: type, typeName: typeName, flags: flags, line: imported)
    }

    /// `[Conventional|   |…|UC]`, `[type=N|…]`, `[…|attr=0x…]`.
    private static func typeAttr(_ l: LogLine, _ c: inout LineCursor) throws(ImportError) -> (
        Int?, String, [String]
    ) {
        guard c.skip("["), let close = c.s.firstIndex(of: "]") else {
            throw ImportError(l, "expected \"[type|attributes]\"")
        }
        let fields = c.s[..<close].split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        c.s = c.s[c.s.index(after: close)...]
        let name = fields[0]
        var type: Int?
        if name.hasPrefix("type=") {
            guard let n = Int(name.dropFirst(5)), n >= 0 else {
                throw ImportError(l, "malformed EFI type \"\(name)\"")
            }
            type = n
        } else {
            guard let n = typeNames[name] else { throw ImportError(l, "unknown EFI memory type \"\(name)\"") }
            type = n
        }
        var flags = Array(fields.dropFirst()).filter { !$0.isEmpty }
        if let a = flags.first(where: { $0.hasPrefix("attr=") }) {
            var ac = LineCursor(Substring(a.dropFirst(5)))
            guard case .success(let bits) = ac.hex(), ac.isAtEnd else {
                throw ImportError(l, "malformed EFI attributes \"\(a)\"")
            }
            flags = attributeBits.filter { bits & $0.0 != 0 }.map(\.1) + [a]
        }
        return (type, name, flags)
    }

    /// `type=%u, attr=0x%llx, range=[0x%016llx-0x%016llx) (%lluMB)`.
    private static func oldFormat(_ l: LogLine, _ c: inout LineCursor, _ imported: ImportedLine) throws(ImportError)
        -> Entry
    {
        _ = c.skip("type=")
        guard case .success(let t) = c.decimal(), c.skip(", attr=") else {
            throw ImportError(l, "expected \"type=N, attr=0x…\"")
        }
        guard case .success(let bits) = c.hex(), c.skip(", range=[") else {
            throw ImportError(l, "expected \"attr=0x…, range=[\"")
        }
        guard case .success(let a) = c.hex(), c.skip("-"), case .success(let b) = c.hex(), c.skip(")") else {
            throw ImportError(l, "expected \"range=[0x…-0x…)\"")
        }
        guard let range = AddressRange(start: PhysAddr(a), end: PhysAddr(b)) else {
            throw ImportError(l, "the end \(hex(b)) is not above the start \(hex(a))")
        }
        let flags = attributeBits.filter { bits & $0.0 != 0 }.map(\.1)
        return Entry(
            range: range, efiType: t <= UInt64(Int.max) ? Int(t) : nil, typeName: "type=\(t)", flags: flags,
            line: imported)
    }
}

extension Substring {
    var trimmingSpaces: String {
        var t = self
        while let c = t.first, c == " " || c == "\t" { t = t.dropFirst() }
        while let c = t.last, c == " " || c == "\t" { t = t.dropLast() }
        return String(t)
    }
}
