import KexecModel

/// A block of preserved memory as KHO tracks it: 2^order pages from `pfn` (pfn order-aligned).
public struct KhoBlock: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var pfn: UInt64
    public var order: Int

    public init(pfn: UInt64, order: Int) {
        self.pfn = pfn
        self.order = order
    }

    public var phys: PhysAddr { PhysAddr(pfn << 12) }
    /// [phys, phys + 4 KiB << order), clipped at the top of the address space.
    public var range: AddressRange {
        AddressRange(start: phys, size: ByteCount(UInt64(0x1000) << UInt64(min(order, 51))))
            ?? AddressRange(first: phys, last: PhysAddr(.max))!
    }
    public static func < (a: KhoBlock, b: KhoBlock) -> Bool { (a.pfn, a.order) < (b.pfn, b.order) }
    public var description: String { "\(hex(phys.raw)) order \(order)" }
}

/// The preserved-memory map KHO hands over, in both ABIs, with 4 KiB pages: built into
/// page-sized metadata objects at the addresses an allocator gives, and read back from memory.
///
/// - kho-v1 (kernel/kexec_handover.c, stored 6.16 copy 00c010e1; bitmap size from a2fff99f92da):
///   per order, bitmaps of PRESERVE_BITS bits (bit i: pfn >> order = index × PRESERVE_BITS + i);
///   kho_mem_serialize lists them in khoser_mem_chunk pages, one order per chunk, orders and
///   indices ascending: header { u64 next; u32 order; u32 num_elms } then 255 × { u64 phys_start;
///   u64 bitmap }, phys_start = (index × PRESERVE_BITS) << (order + PAGE_SHIFT).
/// - kho-v2 (include/linux/kho/abi/kexec_handover.h and kernel/liveupdate/kexec_handover.c at
///   3f2ad90060f6, stored copy 019fc368): one radix tree for every order. key = 1 << (52 − order) |
///   phys >> (12 + order); levels 5 … 1 are tables of 512 u64 physical addresses indexed by key
///   bits [(L − 1) × 9 + 15, +9), level 0 a 32768-bit bitmap indexed by key bits [0, 15).
///
/// Bitmaps are the kernel's unsigned long arrays: bit i is bit i % 8 of byte i / 8 (little endian).
public enum KhoMemoryMap {
    /// A piece of KHO metadata in the first kernel's memory: where it is and its bytes.
    public struct Object: Sendable, Equatable {
        public var pa: PhysAddr
        public var bytes: [UInt8]
        public var what: String
        /// The blocks a bitmap describes: its order and physical span (nil: the whole map, as a
        /// chunk, a table or the FDT does).
        public var describes: (order: Int, span: AddressRange)?
        public init(pa: PhysAddr, bytes: [UInt8], what: String, describes: (order: Int, span: AddressRange)? = nil) {
            self.pa = pa
            self.bytes = bytes
            self.what = what
            self.describes = describes
        }

        public static func == (a: Object, b: Object) -> Bool {
            a.pa == b.pa && a.bytes == b.bytes && a.what == b.what && a.describes?.order == b.describes?.order
                && a.describes?.span == b.describes?.span
        }

        /// Whether losing this object loses `block` (nil `describes`: every block).
        public func describes(_ block: KhoBlock) -> Bool {
            guard let d = describes else { return true }
            return d.order == block.order && d.span.contains(block.phys)
        }
    }

    /// What an allocation is for (the allocator decides where: slab, KFENCE, buddy).
    public enum ObjectKind: Sendable, Equatable {
        case bitmap(order: Int, bytes: Int)
        case chunk
        case radixNode(level: Int)
    }

    /// kho_preserve_pages (kho_preserve_phys in 6.16): blocks of order
    /// min(count_trailing_zeros(pfn), ilog2(end_pfn − pfn)) from the start.
    public static func blocks(of range: AddressRange) -> [KhoBlock] {
        var pfn = range.first.raw >> 12
        let end = pfn + (range.size.raw >> 12)
        var out: [KhoBlock] = []
        while pfn < end {
            let tz = pfn == 0 ? 63 : pfn.trailingZeroBitCount
            let fit = 63 - (end - pfn).leadingZeroBitCount
            let order = min(tz, fit)
            out.append(KhoBlock(pfn: pfn, order: order))
            pfn += 1 << UInt64(order)
        }
        return out
    }

    /// The blocks as merged ranges.
    public static func ranges(of blocks: [KhoBlock]) -> [AddressRange] {
        RangeSet(blocks.map(\.range)).ranges
    }

    // MARK: kho-v1

    public static let chunkCapacity = (4096 - 16) / 16

    /// kho-v1: bitmaps allocated as the blocks are preserved (in the given order), then the chunk
    /// list at finalize. Returns the first chunk's address and every object.
    public static func chunkList(
        blocks: [KhoBlock], bitmapBytes: Int, allocate: (ObjectKind) throws -> PhysAddr
    ) rethrows -> (root: PhysAddr, objects: [Object]) {
        let bits = UInt64(bitmapBytes * 8)
        var bitmaps: [Int: [UInt64: (pa: PhysAddr, bytes: [UInt8])]] = [:]
        for b in blocks {
            let high = b.pfn >> UInt64(b.order)
            let index = high / bits
            if bitmaps[b.order]?[index] == nil {
                let pa = try allocate(.bitmap(order: b.order, bytes: bitmapBytes))
                bitmaps[b.order, default: [:]][index] = (pa, [UInt8](repeating: 0, count: bitmapBytes))
            }
            let bit = Int(high % bits)
            bitmaps[b.order]![index]!.bytes[bit / 8] |= 1 << UInt8(bit % 8)
        }
        var objects: [Object] = []
        for order in bitmaps.keys.sorted() {
            for (index, bm) in bitmaps[order]!.sorted(by: { $0.key < $1.key }) {
                let start = (index * bits) << UInt64(order + 12)
                objects.append(
                    Object(
                        pa: bm.pa, bytes: bm.bytes,
                        what: "preserved-memory bitmap (order \(order), from \(hex(start)))",
                        describes: (
                            order, AddressRange(start: PhysAddr(start), size: ByteCount(bits << UInt64(order + 12)))!
                        )))
            }
        }
        var chunks: [(pa: PhysAddr, order: Int, elms: [(UInt64, UInt64)])] = []
        for order in bitmaps.keys.sorted() {
            chunks.append((try allocate(.chunk), order, []))
            for (index, bm) in bitmaps[order]!.sorted(by: { $0.key < $1.key }) {
                if chunks[chunks.count - 1].elms.count == chunkCapacity {
                    chunks.append((try allocate(.chunk), order, []))
                }
                chunks[chunks.count - 1].elms.append(((index * bits) << UInt64(order + 12), bm.pa.raw))
            }
        }
        for (i, c) in chunks.enumerated() {
            var page = [UInt8](repeating: 0, count: 4096)
            put64(&page, 0, i + 1 < chunks.count ? chunks[i + 1].pa.raw : 0)
            put32(&page, 8, UInt32(c.order))
            put32(&page, 12, UInt32(c.elms.count))
            for (j, e) in c.elms.enumerated() {
                put64(&page, 16 + j * 16, e.0)
                put64(&page, 24 + j * 16, e.1)
            }
            objects.append(Object(pa: c.pa, bytes: page, what: "khoser_mem_chunk \(i) (order \(c.order))"))
        }
        return (chunks.first?.pa ?? PhysAddr(0), objects)
    }

    /// kho_mem_deserialize: the blocks a chunk list names, read through `read`.
    public static func readChunkList(
        root: PhysAddr, bitmapBytes: Int, read: (PhysAddr, Int) -> [UInt8]?
    ) throws(KhoMapError) -> [KhoBlock] {
        let bits = UInt64(bitmapBytes * 8)
        var out: [KhoBlock] = []
        var at = root
        var seen = Set<UInt64>()
        while at.raw != 0 {
            guard seen.insert(at.raw).inserted, seen.count <= 1 << 16 else { throw .loop(at) }
            guard let page = read(at, 4096) else { throw .unreadable(at, "khoser_mem_chunk") }
            let order = Int(get32(page, 8))
            let n = Int(get32(page, 12))
            guard order < 40, n <= chunkCapacity else { throw .malformed(at, "chunk order \(order), \(n) entries") }
            for j in 0..<n {
                let start = get64(page, 16 + j * 16)
                let bmAt = PhysAddr(get64(page, 24 + j * 16))
                guard let bm = read(bmAt, bitmapBytes) else { throw .unreadable(bmAt, "bitmap") }
                for bit in 0..<Int(bits) where bm[bit / 8] & (1 << UInt8(bit % 8)) != 0 {
                    let phys = start &+ (UInt64(bit) << UInt64(order + 12))
                    out.append(KhoBlock(pfn: phys >> 12, order: order))
                }
            }
            at = PhysAddr(get64(page, 0))
        }
        return out.sorted()
    }

    // MARK: kho-v2

    public static let orderZeroLog2 = 52
    public static let tableSizeLog2 = 9
    public static let bitmapSizeLog2 = 15
    /// KHO_TREE_MAX_DEPTH: 5 table levels and the bitmap level.
    public static let treeDepth = 6

    /// kho_radix_encode_key.
    public static func key(_ b: KhoBlock) -> UInt64 {
        (1 << UInt64(orderZeroLog2 - b.order)) | (b.pfn >> UInt64(b.order))
    }

    /// kho_radix_decode_key: nil for a key without a valid order bit.
    public static func block(key: UInt64) -> KhoBlock? {
        guard key != 0 else { return nil }
        let msb = 63 - key.leadingZeroBitCount
        guard msb <= orderZeroLog2 else { return nil }
        let order = orderZeroLog2 - msb
        let pfnHigh = key & ((1 << UInt64(msb)) - 1)
        return KhoBlock(pfn: pfnHigh << UInt64(order), order: order)
    }

    /// kho_radix_add_page for each block (in order) into a tree whose root is at `root`; missing
    /// tables are allocated as they are needed. Returns every node, the root first.
    public static func radixTree(
        blocks: [KhoBlock], root: PhysAddr, allocate: (ObjectKind) throws -> PhysAddr
    ) rethrows -> [Object] {
        var nodes: [UInt64: [UInt8]] = [root.raw: [UInt8](repeating: 0, count: 4096)]
        var order: [(UInt64, String)] = [(root.raw, "radix tree root (level 5)")]
        var leaves: [UInt64: (order: Int, span: AddressRange)] = [:]
        for b in blocks {
            let k = key(b)
            var node = root.raw
            for level in stride(from: treeDepth - 1, through: 1, by: -1) {
                let idx = Int((k >> UInt64((level - 1) * tableSizeLog2 + bitmapSizeLog2)) & 511)
                var next = get64(nodes[node]!, idx * 8)
                if next == 0 {
                    next = try allocate(.radixNode(level: level - 1)).raw
                    nodes[next] = [UInt8](repeating: 0, count: 4096)
                    order.append(
                        (next, level == 1 ? "radix tree bitmap (level 0)" : "radix tree table (level \(level - 1))"))
                    put64(&nodes[node]!, idx * 8, next)
                    if level == 1, let first = block(key: k & ~((1 << UInt64(bitmapSizeLog2)) - 1)),
                        bitmapSizeLog2 + 12 + first.order < 64,
                        let span = AddressRange(
                            start: first.phys, size: ByteCount(1 << UInt64(bitmapSizeLog2 + 12 + first.order)))
                    {
                        leaves[next] = (first.order, span)
                    }
                }
                node = next
            }
            let bit = Int(k & ((1 << UInt64(bitmapSizeLog2)) - 1))
            nodes[node]![bit / 8] |= 1 << UInt8(bit % 8)
        }
        return order.map { Object(pa: PhysAddr($0.0), bytes: nodes[$0.0]!, what: $0.1, describes: leaves[$0.0]) }
    }

    /// kho_radix_walk_tree from `root`: every block whose bit is set, read through `read`.
    public static func readRadixTree(root: PhysAddr, read: (PhysAddr, Int) -> [UInt8]?) throws(KhoMapError)
        -> [KhoBlock]
    {
        var out: [KhoBlock] = []
        var visited = 0
        func walk(_ at: PhysAddr, level: Int, start: UInt64) throws(KhoMapError) {
            visited += 1
            guard visited <= 1 << 16 else { throw .loop(at) }
            guard let page = read(at, 4096) else { throw .unreadable(at, "radix tree level \(level)") }
            if level == 0 {
                for bit in 0..<(1 << bitmapSizeLog2) where page[bit / 8] & (1 << UInt8(bit % 8)) != 0 {
                    guard let b = block(key: start | UInt64(bit)) else {
                        throw .malformed(at, "key \(hex(start | UInt64(bit))) has no order bit")
                    }
                    out.append(b)
                }
                return
            }
            for i in 0..<512 {
                let next = get64(page, i * 8)
                guard next != 0 else { continue }
                let shift = UInt64((level - 1) * tableSizeLog2 + bitmapSizeLog2)
                try walk(PhysAddr(next), level: level - 1, start: start | (UInt64(i) << shift))
            }
        }
        try walk(root, level: treeDepth - 1, start: 0)
        return out.sorted()
    }

    // MARK: The FDT

    /// KHO_FDT_MEMORY_MAP_PROP_NAME.
    public static let memoryMapProperty = "preserved-memory-map"

    /// The root KHO FDT (kho_finalize in 6.16, kho_out_fdt_setup in 2026): `compatible` and
    /// `preserved-memory-map`, a u64 written in the CPU's byte order (little endian), not as FDT cells.
    public static func fdt(compatible: String, mapRoot: PhysAddr) -> Fdt {
        var value = [UInt8](repeating: 0, count: 8)
        put64(&value, 0, mapRoot.raw)
        return Fdt(
            root: FdtNode("", properties: [.string("compatible", compatible), FdtProperty(memoryMapProperty, value)]))
    }

    /// The map's root from a KHO FDT blob: (compatible, root).
    public static func readFdt(_ blob: [UInt8]) throws(KhoMapError) -> (compatible: String, mapRoot: PhysAddr) {
        let t: Fdt
        do throws(DtbError) {
            t = try Fdt.decode(blob)
        } catch {
            throw .badFdt(error.description)
        }
        guard let c = t.root.property("compatible")?.stringValue else { throw .badFdt("no compatible on /") }
        guard let p = t.root.property(memoryMapProperty), p.value.count == 8 else {
            throw .badFdt("no 8-byte \(memoryMapProperty) on /")
        }
        return (c, PhysAddr(get64(p.value, 0)))
    }

    static func put64(_ b: inout [UInt8], _ o: Int, _ v: UInt64) {
        for i in 0..<8 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
    static func put32(_ b: inout [UInt8], _ o: Int, _ v: UInt32) {
        for i in 0..<4 { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
    }
    static func get64(_ b: [UInt8], _ o: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) }
    }
    static func get32(_ b: [UInt8], _ o: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) }
    }
}

/// Why a handed-over map could not be read back.
public enum KhoMapError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(PhysAddr, String)
    case malformed(PhysAddr, String)
    case loop(PhysAddr)
    case badFdt(String)

    public var description: String {
        switch self {
        case .unreadable(let a, let w): return "\(w) at \(hex(a.raw)) is not in memory"
        case .malformed(let a, let w): return "malformed map at \(hex(a.raw)): \(w)"
        case .loop(let a): return "the map loops (or is too large) at \(hex(a.raw))"
        case .badFdt(let w): return "KHO FDT: \(w)"
        }
    }
}
