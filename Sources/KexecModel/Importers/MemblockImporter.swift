/// memblock's view as free_area_init prints it (mm/mm_init.c):
///
/// ```
/// Zone ranges:
///   DMA      [mem 0x0000000040000000-0x00000000ffffffff]      ("  %-8s " then the range or "empty")
///   DMA32    empty
///   Normal   [mem 0x0000000100000000-0x000000013fffffff]
/// Movable zone start for each node
/// Early memory node ranges
///   node   0: [mem 0x0000000040000000-0x000000013fffffff]    ("  node %3d: [mem %#018Lx-%#018Lx]")
/// Initmem setup node 0 [mem 0x0000000040000000-0x000000013fffffff]
/// ```
///
/// Node ranges are memblock.memory: they become usable regions (on arm64 they include no-map ranges
/// such as EFI runtime services memory, which the log does not tell apart; gaps between them are
/// holes). The zones go to the notes, and ZONE_DMA's end (else ZONE_DMA32's) is the DMA zone limit
/// arm64 reserves the crash kernel's low part under. The device tree's /memory nodes are not read.
/// Reservations the log names (CMA and DMA pools, memblock=debug's `memblock_reserve:` lines) are
/// read by `MemblockReservations`. memblock=debug's `MEMBLOCK configuration:` block (MemblockDump)
/// gives memblock.memory when the log has no node ranges, and memblock.reserved as the crashkernel
/// reservation found it (the first kernel's early reservations).
enum MemblockImporter {
    /// ZONE_MOVABLE is not printed in this block (it has its own "Movable zone start" lines).
    static let zoneNames = ["DMA", "DMA32", "Normal", "HighMem", "Device"]

    static func recognises(_ body: Substring) -> Bool {
        body == "Zone ranges:" || body == "Early memory node ranges" || isNodeLine(body)
            || body == "MEMBLOCK configuration:"
    }

    /// `node <n>: …`
    static func isNodeLine(_ body: Substring) -> Bool {
        guard body.hasPrefix("node ") else { return false }
        let t = body.dropFirst(5).drop { $0 == " " }
        let digits = t.prefix { $0.isASCII && $0.isNumber }
        return !digits.isEmpty && t.dropFirst(digits.count).hasPrefix(":")
    }

    static func parse(_ lines: [LogLine], file: String) throws(ImportError) -> ImportedMachine {
        var list = RegionList()
        var crash = CrashkernelCollector()
        var inZones = false
        var zones: [(name: String, range: AddressRange?)] = []
        var notes: [String] = []
        var reserved = MemblockReservations()
        var dump = MemblockDump()
        for l in lines {
            if try dump.take(l) { continue }
            let body = l.body
            if body == "Zone ranges:" {
                inZones = true
                zones = []
                continue
            }
            if inZones {
                if let zone = try zoneLine(l) {
                    zones.append(zone)
                    continue
                }
                inZones = false
            }
            if isNodeLine(body) {
                var c = LineCursor(body.dropFirst(5).drop { $0 == " " })
                guard case .success(let node) = c.decimal(), c.skip(":") else {
                    throw ImportError(l, "expected \"node N: [mem 0x…-0x…]\"")
                }
                c.skipBlanks()
                let range: AddressRange
                switch c.memBracket() {
                case .success(let r): range = r
                case .failure(let m): throw ImportError(l, m.message)
                }
                guard c.isAtEnd else { throw ImportError(l, "unexpected \"\(c.s)\" after the range") }
                list.entries.append(
                    RegionList.Entry(
                        range: range, type: .usable, lines: [ImportedLine(number: l.number, text: String(l.raw))],
                        note: "memblock node \(node)"))
                continue
            }
            if body.hasPrefix("Initmem setup node ") {
                notes.append("line \(l.number): \(body)")
                continue
            }
            if try crash.take(l) { continue }
            if try reserved.take(l) { continue }
        }
        notes += reserved.notes
        var dmaLimit: PhysAddr?
        for z in zones {
            notes.append("zone \(z.name): " + (z.range.map(\.description) ?? "empty"))
        }
        for name in ["DMA", "DMA32"] {
            if let z = zones.first(where: { $0.name == name }), let r = z.range, let end = r.end {
                dmaLimit = end
                break
            }
        }
        if list.entries.count > 1 {
            notes.append(
                "node ranges are imported as usable; on arm64 some may be no-map (firmware) memory the log does not mark"
            )
        }
        if list.entries.isEmpty {
            for r in dump.memory {
                list.entries.append(
                    RegionList.Entry(
                        range: r, type: .usable, lines: dump.lines, note: "memblock.memory (MEMBLOCK configuration)"))
            }
        }
        let (memory, sources) = try list.build(
            file: file, field: "memblock",
            emptyMessage: "no memblock node ranges found (expected \"  node   0: [mem 0x…-0x…]\" lines)")
        let (ranges, crashLines) = crash.sorted
        var m = ImportedMachine(
            format: .memblock, memory: memory, sources: sources, crashkernelRanges: ranges,
            crashkernelLines: crashLines, dmaZoneLimit: dmaLimit, suggestedArch: .arm64, notes: notes)
        m.memblockReserved = reserved.ranges
        if !dump.isEmpty {
            m.earlyReservations = FirstKernelReservations(ranges: dump.reservedBefore(crashkernel: ranges))
            m.earlyReservationLines = dump.lines
            m.notes.append(
                "memblock.reserved before crashkernel=: the MEMBLOCK configuration block less the crashkernel ranges ("
                    + "\(m.earlyReservations.ranges.count) ranges)")
        }
        return m
    }

    /// A `Zone ranges:` line; nil when the line is not one (the block ended).
    private static func zoneLine(_ l: LogLine) throws(ImportError) -> (name: String, range: AddressRange?)? {
        let body = l.body
        guard let name = zoneNames.first(where: { body.hasPrefix($0 + " ") }) else { return nil }
        var c = LineCursor(body.dropFirst(name.count))
        c.skipBlanks()
        guard c.s.hasPrefix("[") || c.s.hasPrefix("empty") else { return nil }
        if c.skip("empty") {
            guard c.isAtEnd else { throw ImportError(l, "unexpected \"\(c.s)\" after \"empty\"") }
            return (name, nil)
        }
        switch c.memBracket() {
        case .success(let r):
            guard c.isAtEnd else { throw ImportError(l, "unexpected \"\(c.s)\" after the range") }
            return (name, r)
        case .failure(let m):
            throw ImportError(l, "zone \(name): \(m.message) or \"empty\"")
        }
    }
}
