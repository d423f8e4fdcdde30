/// The `MEMBLOCK configuration:` block memblock=debug prints (mm/memblock.c __memblock_dump_all and
/// memblock_dump, the same format in 5.10.223, 6.1.192 and 6.12.95):
///
/// ```
/// MEMBLOCK configuration:
///  memory size = 0x0000000100000000 reserved size = 0x000000001b6f209c
///  memory.cnt  = 0x1
///  memory[0x0]	[0x0000000040000000-0x000000013fffffff], 0x0000000100000000 bytes on node 0 flags: 0x0
///  reserved.cnt  = 0x9
///  reserved[0x0]	[0x0000000040210000-0x000000004220afff], 0x0000000001ffb000 bytes flags: 0x0
/// ```
///
/// arm64's bootmem_init prints it right after reserving crashkernel= (arch/arm64/mm/init.c, 5.10.223,
/// 6.1.192 and 6.12.95), so its reserved list less the crashkernel ranges is memblock.reserved as
/// the reservation found it. A later block replaces an earlier one.
struct MemblockDump {
    private(set) var memory: [AddressRange] = []
    private(set) var reserved: [AddressRange] = []
    private(set) var lines: [ImportedLine] = []
    private var inBlock = false

    var isEmpty: Bool { lines.isEmpty }

    /// Takes a line of the block; false for any other line (which ends the block). A line of the
    /// block's shape that does not parse is an error.
    mutating func take(_ l: LogLine) throws(ImportError) -> Bool {
        let body = l.body
        if body == "MEMBLOCK configuration:" {
            memory = []
            reserved = []
            lines = [ImportedLine(number: l.number, text: String(l.raw))]
            inBlock = true
            return true
        }
        guard inBlock else { return false }
        if body.hasPrefix("memory size = ") || body.hasPrefix("memory.cnt") || body.hasPrefix("reserved.cnt") {
            lines.append(ImportedLine(number: l.number, text: String(l.raw)))
            return true
        }
        for (name, isMemory) in [("memory[", true), ("reserved[", false)] where body.hasPrefix(name) {
            var c = LineCursor(body.dropFirst(name.count))
            guard case .success = c.hex(), c.skip("]") else {
                throw ImportError(l, "expected \"\(name)0xN]\" at the start of a memblock dump line")
            }
            c.skipBlanks()
            guard c.skip("[") else { throw ImportError(l, "expected \"[0x…-0x…]\" after the index") }
            switch c.inclusiveRange("the region") {
            case .success(let r):
                guard c.skip("]") else { throw ImportError(l, "expected ']' after the region") }
                if isMemory { memory.append(r) } else { reserved.append(r) }
            case .failure(let p): throw ImportError(l, p.message)
            }
            lines.append(ImportedLine(number: l.number, text: String(l.raw)))
            return true
        }
        inBlock = false
        return false
    }

    /// memblock.reserved before the crashkernel reservation: the dump's reserved ranges less the
    /// crashkernel ranges the log reports (taken out of free memory, so never overlapping what was
    /// reserved before).
    func reservedBefore(crashkernel: [AddressRange]) -> [AddressRange] {
        var set = RangeSet(reserved)
        for r in crashkernel { set.remove(r) }
        return set.ranges
    }
}
