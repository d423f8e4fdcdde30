/// dmesg e820 lines (arch/x86/kernel/e820.c, arch/x86/platform/efi/efi.c):
///
/// - tables, `%s: [mem %#018Lx-%#018Lx] <type>` printed by e820__print_table with `who` one of
///   BIOS-e820 (the firmware's map), extended (SETUP_E820_EXT), reserve setup_data (after the
///   setup_data ranges were marked E820_TYPE_RESERVED_KERN, which prints as "usable"), user (mem= /
///   memmap=), modified; kernels before 3.x printed ` BIOS-e820: %016Lx - %016Lx (<type>)` with an
///   exclusive end. A table printed later replaces the map as a whole: it is the kernel's whole
///   e820_table at that point.
/// - `e820: update [mem %#010Lx-%#010Lx] <old> ==> <new>`: entries of type <old> inside the range
///   change to <new> (__e820__range_update only touches entries of the old type);
/// - `e820: remove [mem %#010Lx-%#010Lx] [<type>]`: entries (of that type, if given) lose the range;
/// - `efi: Remove memNN: MMIO range=[0x%08llx-0x%08llx] (%lluMB) from e820 map`: reserved entries lose
///   the range (efi_remove_e820_mmio);
/// - `update e820_table_kexec for e820__memblock_alloc_reserved()` says the `e820: update` just before
///   it edited the kexec copy of the table, not the one the kernel runs with: that update is undone.
///
/// e820_print_type: usable (RAM and RESERVED_KERN), reserved, soft reserved, ACPI data, ACPI NVS,
/// unusable, `persistent (type 7|12)`, and `type %u` for any other number (treated as reserved: the
/// kernel registers such ranges as "Unknown E820 type", never as RAM).
///
/// Kernels from 2025 on (seen in 7.x logs) print the table with two blanks before the type, name RAM
/// `System RAM` and reserved ranges `device reserved` (also in `e820: update` lines), and print the
/// holes between entries as `BIOS-e820: [gap 0x…-0x…]`: gap lines describe no memory and are skipped;
/// `persistent RAM (type N)` is taken as persistent memory too.
enum E820Importer {
    static let tableSources = [
        "BIOS-e820", "BIOS-e801", "BIOS-88", "extended", "reserve setup_data", "user", "modified", "Xen",
    ]
    static let headers = [
        "BIOS-provided physical RAM map:", "extended physical RAM map:", "user-defined physical RAM map:",
        "modified physical RAM map:", "e820: BIOS-provided physical RAM map:",
    ]
    /// Bounds on hostile input (the kernel's table holds 128 entries plus setup_data extensions).
    static let maxEntries = 4096
    static let maxEdits = 4096

    static func recognises(_ body: Substring) -> Bool {
        tableLine(body) != nil || body.hasPrefix("e820: update [mem") || body.hasPrefix("e820: remove [mem")
    }

    /// The `who` and the rest when `body` is a table line.
    static func tableLine(_ body: Substring) -> (who: String, rest: Substring)? {
        var b = body
        // Prefixes some tools add in front of the kernel's text.
        for p in ["x86: ", "e820: "] where b.hasPrefix(p) { b = b.dropFirst(p.count) }
        if b.hasPrefix("x86/"), let colon = b.firstIndex(of: ":"), b[..<colon].allSatisfy({ $0 != " " }) {
            b = b[b.index(after: colon)...].drop { $0 == " " }
        }
        for who in tableSources where b.hasPrefix(who + ": ") {
            let rest = b.dropFirst(who.count + 2)
            if rest.hasPrefix("[mem") { return (who, rest) }
            // `[gap …]`: a hole between two entries, no entry of its own.
            if rest.hasPrefix("[gap") { return nil }
            // Old format: 16 hex digits, " - ".
            if rest.count > 19, rest.prefix(16).allSatisfy(\.isHexDigit), rest.dropFirst(16).hasPrefix(" - ") {
                return (who, rest)
            }
        }
        return nil
    }

    /// e820_print_type's text → type; nil for text it never prints.
    static func type(_ text: Substring) -> (RegionType, note: String?)? {
        var t = text
        if t.hasPrefix("("), t.hasSuffix(")") { t = t.dropFirst().dropLast() }
        switch t {
        case "usable", "System RAM": return (.usable, nil)
        case "reserved", "device reserved": return (.reserved, nil)
        case "soft reserved": return (.softReserved, nil)
        case "ACPI data": return (.acpi, nil)
        case "ACPI NVS": return (.nvs, nil)
        case "unusable": return (.unusable, nil)
        default: break
        }
        for p in ["persistent (type ", "persistent RAM (type "] where t.hasPrefix(p) && t.hasSuffix(")") {
            let n = t.dropFirst(p.count).dropLast()
            if !n.isEmpty, n.allSatisfy(\.isNumber) { return (.persistent, "e820 type \(n)") }
        }
        if t.hasPrefix("type ") {
            let n = t.dropFirst(5)
            if !n.isEmpty, n.allSatisfy(\.isNumber) {
                return (.reserved, "e820 type \(n) (unknown to the kernel: reserved, never RAM)")
            }
        }
        return nil
    }

    private struct Edit {
        var snapshot: [RegionList.Entry]
        var line: Int
    }

    static func parse(_ lines: [LogLine], file: String) throws(ImportError) -> ImportedMachine {
        var map: [RegionList.Entry] = []
        var block: String?  // who of the table being read, while its lines follow each other
        var tables: [(who: String, line: Int)] = []
        var edits = 0
        var lastUpdate: Edit?
        var crash = CrashkernelCollector()
        var notes: [String] = []

        for l in lines {
            let body = l.body
            let imported = ImportedLine(number: l.number, text: String(l.raw))
            if headers.contains(where: { body == $0 }) {
                block = nil
                continue
            }
            if let table = tableLine(body) {
                let who = table.who
                let (range, type, note) = try tableEntry(l, table.rest)
                if block != who {
                    if let prev = tables.last {
                        notes.append(
                            "line \(l.number): the \(who) map replaces the \(prev.who) map from line \(prev.line)")
                    }
                    tables.append((who, l.number))
                    map = []
                    block = who
                }
                guard map.count < maxEntries else { throw ImportError(l, "more than \(maxEntries) e820 entries") }
                let entry = RegionList.Entry(range: range, type: type, lines: [imported], note: note)
                if let last = map.last, last.range.last >= range.first {
                    edits += 1
                    guard edits <= maxEdits else {
                        throw ImportError(l, "more than \(maxEdits) e820 entries out of order or update/remove lines")
                    }
                    if map.contains(where: { $0.range.overlaps(range) }) {
                        notes.append(
                            "line \(l.number): overlaps an earlier entry of the same table; the later line wins")
                    }
                    paint(&map, entry)
                } else {
                    map.append(entry)  // the usual case: sorted, disjoint
                }
                lastUpdate = nil
                continue
            }
            if body.hasPrefix("e820: update [mem") {
                block = nil
                edits += 1
                guard edits <= maxEdits else { throw ImportError(l, "more than \(maxEdits) e820 update/remove lines") }
                let (range, old, new) = try update(l)
                lastUpdate = Edit(snapshot: map, line: l.number)
                if old.0 != new.0 {
                    retype(&map, range, from: old.0, to: new.0, note: new.note, line: imported)
                }
                continue
            }
            if body.hasPrefix("e820: remove [mem") {
                block = nil
                edits += 1
                guard edits <= maxEdits else { throw ImportError(l, "more than \(maxEdits) e820 update/remove lines") }
                let (range, type) = try remove(l)
                remove(&map, range, ofType: type, line: imported)
                lastUpdate = nil
                continue
            }
            if body.hasPrefix("efi: Remove mem") {
                block = nil
                edits += 1
                guard edits <= maxEdits else { throw ImportError(l, "more than \(maxEdits) e820 update/remove lines") }
                remove(&map, try efiRemove(l), ofType: .reserved, line: imported)
                lastUpdate = nil
                continue
            }
            if body.hasPrefix("update e820_table_kexec for ") {
                if let u = lastUpdate {
                    map = u.snapshot
                    notes.append(
                        "line \(l.number): the e820 update at line \(u.line) changed only the kexec table: ignored")
                }
                lastUpdate = nil
                continue
            }
            if try crash.take(l) { continue }
        }
        guard !tables.isEmpty else {
            throw ImportError(
                line: nil, text: nil,
                message: "no e820 table found (expected \"BIOS-e820: [mem 0x…-0x…] usable\" lines)")
        }
        var list = RegionList()
        list.entries = map
        let (memory, sources) = try list.build(
            file: file, field: "e820", emptyMessage: "the e820 table is empty once the updates are applied")
        let (ranges, crashLines) = crash.sorted
        return ImportedMachine(
            format: .e820, memory: memory, sources: sources, crashkernelRanges: ranges, crashkernelLines: crashLines,
            suggestedArch: .x86_64, notes: notes)
    }

    // MARK: Lines

    private static func tableEntry(_ l: LogLine, _ rest: Substring) throws(ImportError) -> (
        AddressRange, RegionType, String?
    ) {
        var c = LineCursor(rest)
        let range: AddressRange
        if rest.hasPrefix("[mem") {
            switch c.memBracket() {
            case .success(let r): range = r
            case .failure(let m): throw ImportError(l, m.message)
            }
        } else {
            // ` BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)`: the end is exclusive.
            guard case .success(let a) = c.hex(), c.skip(" - "), case .success(let b) = c.hex() else {
                throw ImportError(l, "expected \"%016x - %016x (type)\"")
            }
            guard let r = AddressRange(start: PhysAddr(a), end: PhysAddr(b)) else {
                throw ImportError(l, "the end \(hex(b)) is not above the start \(hex(a))")
            }
            range = r
        }
        c.skipBlanks()
        guard let t = type(c.s) else {
            throw ImportError(l, "unknown e820 type \"\(c.s)\"")
        }
        return (range, t.0, t.note)
    }

    private static func update(_ l: LogLine) throws(ImportError) -> (
        AddressRange, (RegionType, note: String?), (RegionType, note: String?)
    ) {
        var c = LineCursor(l.body)
        _ = c.skip("e820: update ")
        let range: AddressRange
        switch c.memBracket() {
        case .success(let r): range = r
        case .failure(let m): throw ImportError(l, m.message)
        }
        c.skipBlanks()
        guard let arrow = c.s.range(of: " ==> ") else {
            throw ImportError(l, "expected \"<old type> ==> <new type>\" after the range")
        }
        guard let old = type(c.s[..<arrow.lowerBound]) else {
            throw ImportError(l, "unknown e820 type \"\(c.s[..<arrow.lowerBound])\"")
        }
        guard let new = type(c.s[arrow.upperBound...]) else {
            throw ImportError(l, "unknown e820 type \"\(c.s[arrow.upperBound...])\"")
        }
        return (range, old, new)
    }

    private static func remove(_ l: LogLine) throws(ImportError) -> (AddressRange, RegionType?) {
        var c = LineCursor(l.body)
        _ = c.skip("e820: remove ")
        let range: AddressRange
        switch c.memBracket() {
        case .success(let r): range = r
        case .failure(let m): throw ImportError(l, m.message)
        }
        c.skipBlanks()
        if c.isAtEnd { return (range, nil) }
        guard let t = type(c.s) else { throw ImportError(l, "unknown e820 type \"\(c.s)\"") }
        return (range, t.0)
    }

    private static func efiRemove(_ l: LogLine) throws(ImportError) -> AddressRange {
        var c = LineCursor(l.body)
        _ = c.skip("efi: Remove mem")
        guard case .success = c.decimal(), c.skip(": MMIO range=[") else {
            throw ImportError(l, "expected \"efi: Remove memNN: MMIO range=[0x…-0x…] (NMB) from e820 map\"")
        }
        let range: AddressRange
        switch c.inclusiveRange("the MMIO range") {
        case .success(let r): range = r
        case .failure(let m): throw ImportError(l, m.message)
        }
        guard c.skip("] (") else { throw ImportError(l, "expected \"] (NMB)\" after the range") }
        guard case .success(let mb) = c.decimal(), c.skip("MB) from e820 map") else {
            throw ImportError(l, "expected \"(NMB) from e820 map\" after the range")
        }
        guard mb == range.size.raw >> 20 else {
            throw ImportError(l, "the size \(mb)MB does not match the range (\(range.size.raw >> 20)MB)")
        }
        return range
    }

    // MARK: Editing the table (kept sorted and disjoint)

    /// Puts `e` in, cutting it out of whatever it overlaps.
    static func paint(_ map: inout [RegionList.Entry], _ e: RegionList.Entry) {
        var out: [RegionList.Entry] = []
        out.reserveCapacity(map.count + 2)
        for x in map {
            out.append(contentsOf: cut(x, e.range, by: e.lines[0]))
        }
        out.append(e)
        out.sort { $0.range < $1.range }
        map = out
    }

    /// Entries of type `from` inside `range` become `to` (split at the range's ends); the changed
    /// part's source is the update line.
    static func retype(
        _ map: inout [RegionList.Entry], _ range: AddressRange, from: RegionType, to: RegionType, note: String?,
        line: ImportedLine
    ) {
        var out: [RegionList.Entry] = []
        for x in map {
            guard x.type == from, let middle = x.range.intersection(range) else {
                out.append(x)
                continue
            }
            out.append(contentsOf: cut(x, middle, by: line))
            out.append(RegionList.Entry(range: middle, type: to, lines: [line], note: note))
        }
        out.sort { $0.range < $1.range }
        map = out
    }

    /// Entries (of `type`, if given) lose `range`.
    static func remove(
        _ map: inout [RegionList.Entry], _ range: AddressRange, ofType type: RegionType?, line: ImportedLine
    ) {
        var out: [RegionList.Entry] = []
        for x in map {
            if let type, x.type != type {
                out.append(x)
            } else {
                out.append(contentsOf: cut(x, range, by: line))
            }
        }
        map = out
    }

    /// What is left of `x` outside `r`: zero, one or two pieces; a piece that was cut also names `line`.
    static func cut(_ x: RegionList.Entry, _ r: AddressRange, by line: ImportedLine) -> [RegionList.Entry] {
        guard x.range.overlaps(r) else { return [x] }
        var x = x
        if !x.lines.contains(line) { x.lines.append(line) }
        var pieces: [RegionList.Entry] = []
        if x.range.first < r.first, let left = AddressRange(first: x.range.first, last: PhysAddr(r.first.raw - 1)) {
            var p = x
            p.range = left
            pieces.append(p)
        }
        if x.range.last > r.last, let right = AddressRange(first: PhysAddr(r.last.raw + 1), last: x.range.last) {
            var p = x
            p.range = right
            pieces.append(p)
        }
        return pieces
    }
}
