/// The memory of a flattened device tree blob (a board's .dtb, or /sys/firmware/fdt), read the way
/// an arm64 kernel reads it at boot (drivers/of/fdt.c):
///
/// - reg entries are #address-cells + #size-cells big-endian u32 cells, the root's counts (defaults
///   1 and 1, as Linux reads a root without them: OF_ROOT_NODE_ADDR_CELLS_DEFAULT and
///   OF_ROOT_NODE_SIZE_CELLS_DEFAULT are 1 in drivers/of/of_private.h (2 address cells only on
///   SPARC), read in mainline 6.x; the Devicetree Specification's default of 2 address cells is
///   not what the kernel uses);
/// - every node with device_type = "memory" (early_init_dt_scan_memory), unless its status is
///   "disabled", is RAM: its `linux,usable-memory` property if it has one (a crash kernel's tree),
///   else its `reg`; overlapping nodes merge as memblock_add merges them;
/// - a /reserved-memory child with `reg` and `no-map` is never mapped by the kernel
///   (fdt_init_reserved_mem): carved out of RAM as reserved. Children without no-map stay RAM
///   (memblock-reserved, handed out later or not at all) and are named in the notes, as are the
///   entries of the memory reservation block (/memreserve/);
/// - /chosen `linux,usable-memory-range` and `linux,elfcorehdr` (a crash kernel's tree) are noted.
///
/// Each region's source names the node and reg entry it came from.
enum DtbImporter {
    static func recognises(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 4 && bytes.prefix(4).elementsEqual([0xd0, 0x0d, 0xfe, 0xed])
    }

    /// A reg entry of a node, in tree order.
    struct RegEntry {
        var path: String
        var index: Int
        var range: AddressRange
        var ordinal: Int
        var line: ImportedLine {
            ImportedLine(number: ordinal, text: "\(path) reg[\(index)] \(range)")
        }
    }

    static func parse(_ bytes: [UInt8], file: String) throws(ImportError) -> ImportedMachine {
        let fdt: Fdt
        do {
            fdt = try Fdt.decode(bytes)
        } catch {
            throw ImportError(line: nil, text: nil, message: "device tree blob: \(error.description)")
        }
        let root = fdt.root
        let addressCells = try cells(root, "#address-cells", default: 1)
        let sizeCells = try cells(root, "#size-cells", default: 1)
        var ordinal = 0
        var notes: [String] = []

        // reg-style property → ranges (zero sizes skipped, as the kernel skips them).
        func ranges(_ node: FdtNode, path: String, property: String) throws(ImportError) -> [RegEntry] {
            guard let p = node.property(property) else { return [] }
            let entryBytes = (addressCells + sizeCells) * 4
            guard p.value.count % entryBytes == 0 else {
                throw ImportError(
                    line: nil, text: nil,
                    message:
                        "\(path) \(property): \(p.value.count) bytes is not a whole number of "
                        + "(\(addressCells) address + \(sizeCells) size) cells")
            }
            var out: [RegEntry] = []
            for (i, at) in stride(from: 0, to: p.value.count, by: entryBytes).enumerated() {
                let base = readBigEndian(p.value[at..<at + addressCells * 4])
                let size = readBigEndian(p.value[at + addressCells * 4..<at + entryBytes])
                if size == 0 { continue }
                guard let r = AddressRange(start: PhysAddr(base), size: ByteCount(size)) else {
                    throw ImportError(
                        line: nil, text: nil,
                        message: "\(path) \(property)[\(i)]: base \(hex(base)) + size \(hex(size)) runs past 2^64")
                }
                ordinal += 1
                out.append(RegEntry(path: path, index: i, range: r, ordinal: ordinal))
            }
            return out
        }

        // Memory nodes, anywhere in the tree (the kernel scans every node for device_type).
        var memory: [RegEntry] = []
        var stack: [(FdtNode, String)] = [(root, "")]
        while let (node, path) = stack.popLast() {
            for child in node.children.reversed() { stack.append((child, path + "/" + child.name)) }
            guard stringValue(node, "device_type") == "memory", path != "" else { continue }
            if let status = stringValue(node, "status"), status != "okay" && status != "ok" {
                notes.append("\(path): status \"\(status)\", not memory the kernel uses")
                continue
            }
            let usable = try ranges(node, path: path, property: "linux,usable-memory")
            memory += usable.isEmpty ? try ranges(node, path: path, property: "reg") : usable
        }
        guard !memory.isEmpty else {
            throw ImportError(
                line: nil, text: nil,
                message: "device tree blob: no memory node with a reg (device_type = \"memory\")")
        }

        // /reserved-memory.
        var noMap: [RegEntry] = []
        if let rm = root.child("reserved-memory") {
            for child in rm.children {
                let path = "/reserved-memory/" + child.name
                let regs = try ranges(child, path: path, property: "reg")
                if child.property("no-map") != nil {
                    noMap += regs
                } else {
                    for r in regs { notes.append("\(path): \(r.range) reserved but still RAM (no no-map)") }
                }
            }
        }
        for r in fdt.reservations where r.size != 0 {
            notes.append("memreserve \(hex(r.address)) size \(hex(r.size)): RAM the kernel keeps for itself")
        }
        if let chosen = root.child("chosen") {
            for name in ["linux,usable-memory-range", "linux,elfcorehdr"] where chosen.property(name) != nil {
                let rs = try ranges(chosen, path: "/chosen", property: name)
                notes.append("/chosen \(name): " + rs.map(\.range.description).joined(separator: ", "))
            }
        }

        var ram = RangeSet(memory.map(\.range))
        for r in noMap { ram.remove(r.range) }
        var list = RegionList()
        for piece in ram.ranges {
            // The node behind the piece: the first reg entry that holds its start.
            let src = memory.first { $0.range.contains(piece.first) } ?? memory[0]
            list.entries.append(
                RegionList.Entry(range: piece, type: .usable, lines: [src.line], note: "device tree \(src.path)"))
        }
        // No-map ranges inside RAM (one outside every memory node changes nothing).
        let carved = RangeSet(noMap.map(\.range)).ranges.filter { r in memory.contains { $0.range.overlaps(r) } }
        for piece in carved {
            let src = noMap.first { $0.range.contains(piece.first) } ?? noMap[0]
            list.entries.append(
                RegionList.Entry(range: piece, type: .reserved, lines: [src.line], note: "no-map \(src.path)"))
        }
        let (map, sources) = try list.build(file: file, field: "dtb", emptyMessage: "device tree blob: no memory")
        return ImportedMachine(format: .dtb, memory: map, sources: sources, suggestedArch: .arm64, notes: notes)
    }

    /// A u32 cell count of a node (#address-cells, #size-cells): 1 or 2 for a 64-bit address space.
    static func cells(_ node: FdtNode, _ name: String, default d: Int) throws(ImportError) -> Int {
        guard let p = node.property(name) else { return d }
        guard p.value.count == 4 else {
            throw ImportError(line: nil, text: nil, message: "/ \(name): \(p.value.count) bytes, not one u32 cell")
        }
        let v = Int(readBigEndian(p.value[...]))
        guard v == 1 || v == 2 else {
            throw ImportError(line: nil, text: nil, message: "/ \(name) is \(v); kexec-sim reads 1 or 2")
        }
        return v
    }

    /// A string property's value up to its first NUL.
    static func stringValue(_ node: FdtNode, _ name: String) -> String? {
        guard let p = node.property(name) else { return nil }
        return String(decoding: p.value.prefix { $0 != 0 }, as: UTF8.self)
    }
}
