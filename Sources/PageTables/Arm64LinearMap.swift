import KexecModel

// arm64 translation tables for the kexec path: the first kernel's linear map (map_mem in
// arch/arm64/mm/mmu.c), the copy of it the MMU-on relocation runs on (trans_pgd_create_copy in
// arch/arm64/mm/trans_pgd.c), the cheaper "relocated pages only" variant, and the identity map of
// the relocation code page (trans_pgd_idmap_page). VMSAv8-64 descriptors, 48-bit VAs.

extension Granule {
    /// ARM64_MEMSTART_ALIGN: PHYS_OFFSET is the lowest RAM address rounded down to this (PUD_SIZE
    /// for 4k, CONT_PMD_SIZE for 16k, PMD_SIZE for 64k), so the linear map can use blocks.
    public var memstartAlign: UInt64 { self == .g64k ? 1 << 29 : 1 << 30 }
}

/// The linear-map layout: VA = PAGE_OFFSET + (PA - PHYS_OFFSET).
///
/// With VA_BITS = 48: PAGE_OFFSET = -(1 << 48) = 0xffff_0000_0000_0000 and PAGE_END =
/// -(1 << 47) = 0xffff_8000_0000_0000 (the layout since v5.4): 128 TiB of linear map in the lower
/// half of the TTBR1 range. PHYS_OFFSET (memstart_addr) is the lowest RAM address rounded down to
/// the granule's ARM64_MEMSTART_ALIGN; RAM below it or beyond PHYS_OFFSET + 128 TiB is not mapped.
public struct Arm64Layout: Sendable, Equatable {
    public var vaBits: Int
    public var physOffset: PhysAddr

    public init(vaBits: Int = 48, physOffset: PhysAddr) {
        self.vaBits = vaBits
        self.physOffset = physOffset
    }

    /// PHYS_OFFSET for `ram` under `granule`: its lowest address rounded down to memstartAlign.
    public init(ram: [AddressRange], granule: Granule, vaBits: Int = 48) {
        let low = ram.map(\.first.raw).min() ?? 0
        self.init(vaBits: vaBits, physOffset: PhysAddr(low & ~(granule.memstartAlign - 1)))
    }

    public var pageOffset: VirtAddr { VirtAddr(UInt64.max << UInt64(vaBits)) }
    public var pageEnd: VirtAddr { VirtAddr(UInt64.max << UInt64(vaBits - 1)) }
    /// Bytes of physical memory the linear map can hold (2^(VA_BITS-1)).
    public var linearSize: UInt64 { 1 << UInt64(vaBits - 1) }
    /// kimage->arch.phys_offset = PA - VA of any linear-map address (mod 2^64): relocate_kernel
    /// subtracts it from a physical address to get the linear-map VA.
    public var physToVirtOffset: UInt64 { physOffset.raw &- pageOffset.raw }

    public func va(_ pa: PhysAddr) -> VirtAddr? {
        guard pa >= physOffset, pa.raw - physOffset.raw < linearSize else { return nil }
        return VirtAddr(pageOffset.raw + (pa.raw - physOffset.raw))
    }
    public func pa(_ va: VirtAddr) -> PhysAddr? {
        guard va >= pageOffset, va < pageEnd else { return nil }
        return PhysAddr(physOffset.raw + (va.raw - pageOffset.raw))
    }
    /// The physical window the linear map can reach.
    public var reachable: AddressRange {
        AddressRange(first: physOffset, last: PhysAddr(min(physOffset.raw &+ (linearSize - 1), .max)))!
    }
}

/// VMSAv8-64 descriptor bits (arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h).
///
/// MAIR_EL1 the tables assume (the kernel's MAIR_EL1_SET): attr0 MT_NORMAL 0xff (write-back),
/// attr1 MT_NORMAL_TAGGED 0xff, attr2 MT_NORMAL_NC 0x44, attr3 MT_DEVICE_nGnRnE 0x00, attr4
/// MT_DEVICE_nGnRE 0x04 = `mair`. Leaves use AttrIndx 0.
public enum Arm64Descriptor {
    public static let valid: UInt64 = 1 << 0
    /// bits[1:0] = 0b11 at levels 0..2: a table; at level 3: a page. 0b01: a block.
    public static let typeTable: UInt64 = 0b11
    public static let typePage: UInt64 = 0b11
    public static let typeBlock: UInt64 = 0b01
    public static func attrIndx(_ n: UInt64) -> UInt64 { (n & 7) << 2 }
    /// AP[1]: EL0 access.
    public static let apUser: UInt64 = 1 << 6
    /// AP[2]: read-only.
    public static let apReadOnly: UInt64 = 1 << 7
    /// SH[1:0] = 0b11, inner shareable.
    public static let shInner: UInt64 = 3 << 8
    public static let accessFlag: UInt64 = 1 << 10
    /// DBM, the kernel's PTE_WRITE.
    public static let dbm: UInt64 = 1 << 51
    public static let pxn: UInt64 = 1 << 53
    public static let uxn: UInt64 = 1 << 54
    /// Output / next-table address bits [47:12] (the granule's low bits are masked per granule).
    public static let addressMask: UInt64 = 0x0000_ffff_ffff_f000

    /// MAIR_EL1 matching AttrIndx 0 = normal write-back memory.
    public static let mair: UInt64 = 0x0000_0004_0044_ffff
    /// PMD_TYPE_TABLE: a table descriptor (no hierarchical attributes).
    public static let table: UInt64 = typeTable
    /// PAGE_KERNEL at level 3: valid page, AttrIndx 0, inner shareable, AF, writable (AP[2] = 0,
    /// DBM), PXN and UXN (data only).
    public static let kernelPage: UInt64 = typePage | attrIndx(0) | shInner | accessFlag | dbm | pxn | uxn
    /// PROT_SECT_NORMAL: the same as a block.
    public static let kernelBlock: UInt64 = typeBlock | attrIndx(0) | shInner | accessFlag | dbm | pxn | uxn
    /// PAGE_KERNEL_ROX: the identity-mapped relocation code page (read-only, executable at EL1).
    public static let kernelROXPage: UInt64 = typePage | attrIndx(0) | shInner | accessFlag | apReadOnly | uxn
}

/// Page-table pages per level and in total; `bytes` = pages × granule size.
public struct Arm64TableCost: Sendable, Equatable, Codable, CustomStringConvertible {
    public var granule: Granule
    public var mappings: Arm64Mappings
    /// Table pages at levels 0, 1, 2, 3 (0 for levels above the start level).
    public var levels: [Int]
    public var pages: Int
    public var bytes: UInt64

    public init(granule: Granule, mappings: Arm64Mappings, levels: [Int]) {
        precondition(levels.count == 4, "one count per level 0..3")
        self.granule = granule
        self.mappings = mappings
        self.levels = levels
        pages = levels.reduce(0, +)
        bytes = UInt64(pages) * granule.size
    }

    public var description: String {
        "\(granule) \(mappings): L0 \(levels[0]) + L1 \(levels[1]) + L2 \(levels[2]) + L3 \(levels[3]) = \(pages) pages"
            + " (\(formatSize(bytes)))"
    }
}

public enum Arm64TableError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The allocator returned an address that is not a granule-aligned page below 2^48.
    case badPage(PhysAddr, Granule)
    /// The allocator returned a page it had already handed out.
    case pageReused(PhysAddr)
    case unsupportedVABits(Int)

    public var description: String {
        switch self {
        case .badPage(let pa, let g): return "page-table page \(pa) is not a \(g) page below 2^48"
        case .pageReused(let pa): return "page-table page \(pa) handed out twice"
        case .unsupportedVABits(let n): return "VA_BITS \(n) is not supported (36...48)"
        }
    }
}

/// Built tables: every table page (granule-sized, `entriesPerTable` entries) with its level.
public struct Arm64Tables: Sendable {
    public let root: PhysAddr
    public let granule: Granule
    public let mappings: Arm64Mappings
    /// Input VA bits of the walk (64 - TxSZ) and which TTBR the root goes in.
    public let vaBits: Int
    public let ttbr: Int
    public private(set) var pages: [PhysAddr: [UInt64]]
    public private(set) var levelOf: [PhysAddr: Int]
    /// Physical ranges asked for that the linear map cannot reach (below PHYS_OFFSET or beyond
    /// PHYS_OFFSET + 2^(VA_BITS-1)): left unmapped.
    public let unmappable: [AddressRange]
    public let cost: Arm64TableCost

    /// TxSZ for this walk.
    public var txsz: Int { 64 - vaBits }

    /// The page's bytes as the CPU reads them (granule size, entries little-endian); zeros for a page
    /// that is not part of these tables.
    public func encodedPage(_ pa: PhysAddr) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Int(granule.size))
        guard let entries = pages[pa] else { return bytes }
        for (i, e) in entries.enumerated() where e != 0 {
            for b in 0..<8 { bytes[i * 8 + b] = UInt8(truncatingIfNeeded: e >> (8 * UInt64(b))) }
        }
        return bytes
    }

    /// Pure software walk (valid bit, table / block / page): the PA, leaf size and leaf level for
    /// `va`, or the level ("L0".."L3") whose entry is invalid.
    public func translate(_ va: VirtAddr) -> Result<(pa: PhysAddr, leafSize: UInt64, level: Int), MissingLevel> {
        let top = va.raw >> UInt64(vaBits)
        guard top == (ttbr == 1 ? UInt64.max >> UInt64(vaBits) : 0) else {
            return .failure(MissingLevel(level: "out-of-range", index: -1, table: root))
        }
        let start = granule.startLevel(vaBits: vaBits)
        var table = root
        for level in start...3 {
            let shift = granule.levelShift(level)
            let bits = level == start ? vaBits - shift : granule.stride
            let index = Int((va.raw >> UInt64(shift)) & ((1 << UInt64(bits)) - 1))
            let e = pages[table]?[index] ?? 0
            guard e & Arm64Descriptor.valid != 0 else {
                return .failure(MissingLevel(level: "L\(level)", index: index, table: table))
            }
            let size = UInt64(1) << UInt64(shift)
            if level == 3 || e & 2 == 0 {
                let base = e & Arm64Descriptor.addressMask & ~(size - 1)
                return .success((PhysAddr(base | (va.raw & (size - 1))), size, level))
            }
            table = PhysAddr(e & Arm64Descriptor.addressMask & ~(granule.size - 1))
        }
        return .failure(MissingLevel(level: "L3", index: -1, table: table))  // unreachable
    }

    /// TCR_EL1 for running on these tables in TTBR1 with `idmapT0SZ` for TTBR0 (both halves on this
    /// granule): TxSZ, inner-shareable write-back walks, TG0 / TG1, IPS = 48 bits.
    public func tcr(idmapT0SZ: Int = 16) -> UInt64 {
        Arm64LinearMap.tcr(granule: granule, t0sz: idmapT0SZ, t1sz: txsz)
    }
}

/// One range to map at its linear VA; `blocks`: whether blocks may be used; `valid`: whether the
/// leaves are valid (protected ranges have their valid bit cleared, as set_memory_valid(…, 0) does).
struct Arm64MapRequest {
    var va: UInt64
    var end: UInt64  // exclusive
    var pa: UInt64
    var blocks: Bool
    var valid: Bool
}

public enum Arm64LinearMap {
    /// Which tables the MMU-on relocation runs on.
    public enum RelocationTables: String, Sendable, CaseIterable, Codable {
        /// trans_pgd_create_copy(PAGE_OFFSET, PAGE_END): the whole linear map, same shape, same cost.
        case linearMapCopy = "linear-map-copy"
        /// Base pages over only what the relocation touches (list pages, sources, destinations):
        /// ≈ relocated size / 512 with 4 KiB pages — the figure quoted for the 2019–2021 series.
        case relocatedOnly = "relocated-only"
    }

    /// TCR_EL1 with T0SZ / T1SZ, TG0 / TG1 = `granule`, IRGN/ORGN write-back write-allocate, inner
    /// shareable, IPS = 0b101 (48 bits), TBI off, EPD off.
    public static func tcr(granule: Granule, t0sz: Int, t1sz: Int) -> UInt64 {
        let half: UInt64 = (1 << 8) | (1 << 10) | (3 << 12)  // IRGN 01, ORGN 01, SH 11
        return UInt64(t0sz & 0x3f) | half | (granule.tg0 << 14) | (UInt64(t1sz & 0x3f) << 16) | (half << 16)
            | (granule.tg1 << 30) | (5 << 32)
    }

    /// The requests map_mem makes: RAM (rounded out to the granule, merged, clipped to what the
    /// layout reaches) minus the protected ranges, then each protected range alone with base pages
    /// (NO_BLOCK_MAPPINGS) and its leaves invalid. Protected ranges split RAM, so blocks straddling
    /// their edges become smaller mappings too.
    static func requests(
        ram: [AddressRange], protected: [AddressRange], granule: Granule, mappings: Arm64Mappings,
        layout: Arm64Layout
    ) -> (requests: [Arm64MapRequest], unmappable: [AddressRange]) {
        let reach = layout.reachable
        var inside = RangeSet()
        var cut = RangeSet()
        for r in ram {
            let out = r.alignedOut(ByteCount(granule.size))
            if let i = out.intersection(reach) { inside.insert(i) }
            if out.first < reach.first, let below = AddressRange(first: out.first, last: PhysAddr(reach.first.raw - 1))
            {
                cut.insert(below.intersection(out) ?? below)
            }
            if out.last > reach.last, let above = AddressRange(first: PhysAddr(reach.last.raw + 1), last: out.last) {
                cut.insert(above)
            }
        }
        var prot = RangeSet()
        for p in protected {
            for piece in inside.ranges {
                if let i = p.alignedOut(ByteCount(granule.size)).intersection(piece) { prot.insert(i) }
            }
        }
        var plain = inside
        for p in prot.ranges { plain.remove(p) }
        func request(_ r: AddressRange, blocks: Bool, valid: Bool) -> Arm64MapRequest {
            let va = layout.va(r.first)!.raw
            return Arm64MapRequest(va: va, end: va + r.size.raw, pa: r.first.raw, blocks: blocks, valid: valid)
        }
        let out =
            plain.ranges.map { request($0, blocks: mappings == .blocks, valid: true) }
            + prot.ranges.map { request($0, blocks: false, valid: false) }
        return (out, cut.ranges)
    }

    /// The first kernel's linear map of `ram` (TTBR1), as map_mem builds it. `protected` ranges (a
    /// crashkernel region the kernel guards with set_memory_valid(…, 0)) are mapped with base pages
    /// and left invalid. `allocate` hands out zeroed, granule-aligned table pages (physical
    /// addresses); the root is allocated first, then pages in the order the kernel asks for them.
    public static func build(
        ram: [AddressRange], protected: [AddressRange] = [], granule: Granule, mappings: Arm64Mappings,
        layout: Arm64Layout, allocate: () throws -> PhysAddr
    ) throws -> Arm64Tables {
        let (reqs, cut) = requests(ram: ram, protected: protected, granule: granule, mappings: mappings, layout: layout)
        return try make(
            reqs, granule: granule, mappings: mappings, vaBits: layout.vaBits, ttbr: 1, unmappable: cut,
            allocate: allocate)
    }

    /// Counts the table pages `build` would allocate, without materialising entries (for machines
    /// of many TiB). Equal to `build(…).cost` for the same arguments.
    public static func cost(
        ram: [AddressRange], protected: [AddressRange] = [], granule: Granule, mappings: Arm64Mappings,
        layout: Arm64Layout
    ) -> Arm64TableCost {
        let reqs = requests(ram: ram, protected: protected, granule: granule, mappings: mappings, layout: layout)
        return count(reqs.requests, granule: granule, mappings: mappings, vaBits: layout.vaBits)
    }

    /// trans_pgd_create_copy(PAGE_OFFSET, PAGE_END) of `source`: a fresh table page for every table
    /// page of the source, blocks copied as blocks, valid leaves copied with AP[2] (read-only)
    /// cleared, invalid leaves left out. Same shape, so the same cost.
    public static func copy(_ source: Arm64Tables, allocate: () throws -> PhysAddr) throws -> Arm64Tables {
        var b = Arm64Builder(granule: source.granule, vaBits: source.vaBits)
        let start = source.granule.startLevel(vaBits: source.vaBits)
        func visit(_ src: PhysAddr, level: Int) throws -> PhysAddr {
            let dst = try b.newPage(level: level, allocate)
            let d = b.store.count - 1
            guard let entries = source.pages[src] else { return dst }
            for (i, e) in entries.enumerated() where e & Arm64Descriptor.valid != 0 {
                if level < 3 && e & 2 != 0 {
                    let child = try visit(PhysAddr(e & Arm64Descriptor.addressMask), level: level + 1)
                    b.store[d][i] = (e & ~Arm64Descriptor.addressMask) | child.raw
                } else {
                    b.store[d][i] = e & ~Arm64Descriptor.apReadOnly
                }
            }
            return dst
        }
        let root = try visit(source.root, level: start)
        return b.finish(
            root: root, mappings: source.mappings, ttbr: source.ttbr, unmappable: source.unmappable)
    }

    /// Base-page tables at linear-map VAs over only `ranges` (physical: the list pages, source pages
    /// and destinations of a relocation). The variant whose cost is ≈ relocated size / 512 (4k).
    public static func relocatedOnly(
        _ ranges: [AddressRange], granule: Granule, layout: Arm64Layout, allocate: () throws -> PhysAddr
    ) throws -> Arm64Tables {
        let (reqs, cut) = relocatedRequests(ranges, granule: granule, layout: layout)
        return try make(
            reqs, granule: granule, mappings: .basePages, vaBits: layout.vaBits, ttbr: 1, unmappable: cut,
            allocate: allocate)
    }

    /// Cost of the relocation tables: for `.linearMapCopy` that of the linear map of `ram` under
    /// `mappings` (the relocated payload does not matter); for `.relocatedOnly` base pages over
    /// `relocated`.
    public static func relocationCost(
        _ variant: RelocationTables, ram: [AddressRange], relocated: [AddressRange], granule: Granule,
        mappings: Arm64Mappings, layout: Arm64Layout
    ) -> Arm64TableCost {
        switch variant {
        case .linearMapCopy:
            return cost(ram: ram, granule: granule, mappings: mappings, layout: layout)
        case .relocatedOnly:
            let reqs = relocatedRequests(relocated, granule: granule, layout: layout).requests
            return count(reqs, granule: granule, mappings: .basePages, vaBits: layout.vaBits)
        }
    }

    static func relocatedRequests(_ ranges: [AddressRange], granule: Granule, layout: Arm64Layout) -> (
        requests: [Arm64MapRequest], unmappable: [AddressRange]
    ) {
        requests(ram: ranges, protected: [], granule: granule, mappings: .basePages, layout: layout)
    }

    /// trans_pgd_idmap_page: an identity map (TTBR0, VA = PA) of the one page holding the relocation
    /// code, PAGE_KERNEL_ROX, one table per level from level 3 up to the level covering VA bit 47
    /// (T0SZ 16: four tables with 4k and 16k, three with 64k).
    public static func identityMapPage(
        _ pa: PhysAddr, granule: Granule, allocate: () throws -> PhysAddr
    ) throws -> Arm64Tables {
        let page = pa.raw & ~(granule.size - 1)
        let req = Arm64MapRequest(va: page, end: page + granule.size, pa: page, blocks: false, valid: true)
        return try make(
            [req], granule: granule, mappings: .basePages, vaBits: 48, ttbr: 0, unmappable: [],
            leaf: Arm64Descriptor.kernelROXPage, allocate: allocate)
    }

    static func make(
        _ reqs: [Arm64MapRequest], granule: Granule, mappings: Arm64Mappings, vaBits: Int, ttbr: Int,
        unmappable: [AddressRange], leaf: UInt64 = Arm64Descriptor.kernelPage, allocate: () throws -> PhysAddr
    ) throws -> Arm64Tables {
        guard (36...48).contains(vaBits) else { throw Arm64TableError.unsupportedVABits(vaBits) }
        var b = Arm64Builder(granule: granule, vaBits: vaBits)
        b.pageLeaf = leaf
        let root = try b.newPage(level: granule.startLevel(vaBits: vaBits), allocate)
        for r in reqs {
            try b.map(table: 0, level: granule.startLevel(vaBits: vaBits), va: r.va, end: r.end, pa: r.pa, r, allocate)
        }
        return b.finish(root: root, mappings: mappings, ttbr: ttbr, unmappable: unmappable)
    }

    /// Table pages per level for `reqs`: at each level, the distinct tables (VA >> the span one table
    /// covers) among the VAs still needing an entry there; a level's blocks (full, aligned chunks of
    /// one request whose PA is aligned too) remove their VAs from the levels below.
    static func count(_ reqs: [Arm64MapRequest], granule: Granule, mappings: Arm64Mappings, vaBits: Int)
        -> Arm64TableCost
    {
        let start = granule.startLevel(vaBits: vaBits)
        var levels = [0, 0, 0, 0]
        levels[start] = 1
        // Pending pieces per request: [first, last] inclusive VAs that need entries at `level`.
        var pending: [(first: UInt64, last: UInt64, req: Int)] = reqs.enumerated().compactMap {
            $1.end > $1.va ? ($1.va, $1.end - 1, $0) : nil
        }
        for level in start..<3 {
            // Entries at `level` point at level+1 tables: count the distinct level+1 tables.
            let entryShift = UInt64(granule.levelShift(level))
            let size = UInt64(1) << entryShift
            var next: [(first: UInt64, last: UInt64, req: Int)] = []
            for p in pending {
                let r = reqs[p.req]
                if r.blocks && mappings == .blocks && granule.blockAllowed(level: level)
                    && (r.va &- r.pa) & (size - 1) == 0
                {
                    // Full aligned chunks inside [first, last] become blocks.
                    let lo = (p.first + size - 1) & ~(size - 1)
                    let hiEnd = (p.last &+ 1) & ~(size - 1)  // exclusive; p.last + 1 cannot wrap below PAGE_END
                    if lo < hiEnd && lo >= p.first {
                        if lo > p.first { next.append((p.first, lo - 1, p.req)) }
                        if hiEnd <= p.last { next.append((hiEnd, p.last, p.req)) }
                        continue
                    }
                }
                next.append(p)
            }
            var tables = UnitSet()
            for p in next { tables.insert(p.first >> entryShift, p.last >> entryShift) }
            levels[level + 1] = Int(tables.count)
            pending = next
        }
        return Arm64TableCost(granule: granule, mappings: mappings, levels: levels)
    }
}

/// Builds tables page by page, as __create_pgd_mapping does.
struct Arm64Builder {
    let granule: Granule
    let vaBits: Int
    var pageLeaf = Arm64Descriptor.kernelPage
    var store: [[UInt64]] = []
    var pas: [PhysAddr] = []
    var levels: [Int] = []
    var indexOf: [PhysAddr: Int] = [:]

    init(granule: Granule, vaBits: Int) {
        self.granule = granule
        self.vaBits = vaBits
    }

    mutating func newPage(level: Int, _ allocate: () throws -> PhysAddr) throws -> PhysAddr {
        let pa = try allocate()
        guard pa.raw & (granule.size - 1) == 0, pa.raw < 1 << 48 else { throw Arm64TableError.badPage(pa, granule) }
        guard indexOf[pa] == nil else { throw Arm64TableError.pageReused(pa) }
        indexOf[pa] = store.count
        store.append([UInt64](repeating: 0, count: granule.entriesPerTable))
        pas.append(pa)
        levels.append(level)
        return pa
    }

    func index(_ va: UInt64, level: Int) -> Int {
        let shift = granule.levelShift(level)
        let start = granule.startLevel(vaBits: vaBits)
        let bits = level == start ? vaBits - shift : granule.stride
        return Int((va >> UInt64(shift)) & ((1 << UInt64(bits)) - 1))
    }

    mutating func map(
        table: Int, level: Int, va: UInt64, end: UInt64, pa: UInt64, _ r: Arm64MapRequest,
        _ allocate: () throws -> PhysAddr
    ) throws {
        let size = UInt64(1) << UInt64(granule.levelShift(level))
        var addr = va
        while addr < end {
            let next = min((addr | (size - 1)) &+ 1, end)
            let phys = pa + (addr - va)
            let i = index(addr, level: level)
            if level == 3 {
                let e = (phys & Arm64Descriptor.addressMask) | pageLeaf
                store[table][i] = r.valid ? e : e & ~Arm64Descriptor.valid
            } else if r.blocks && granule.blockAllowed(level: level) && (addr | next | phys) & (size - 1) == 0 {
                store[table][i] = (phys & Arm64Descriptor.addressMask) | Arm64Descriptor.kernelBlock
            } else {
                let e = store[table][i]
                if e & 3 == Arm64Descriptor.typeTable {
                    let child = indexOf[PhysAddr(e & Arm64Descriptor.addressMask)]!
                    try map(table: child, level: level + 1, va: addr, end: next, pa: phys, r, allocate)
                } else {
                    let childPA = try newPage(level: level + 1, allocate)
                    store[table][i] = childPA.raw | Arm64Descriptor.table
                    try map(table: store.count - 1, level: level + 1, va: addr, end: next, pa: phys, r, allocate)
                }
            }
            addr = next
        }
    }

    func finish(root: PhysAddr, mappings: Arm64Mappings, ttbr: Int, unmappable: [AddressRange]) -> Arm64Tables {
        var counts = [0, 0, 0, 0]
        for l in levels { counts[l] += 1 }
        var pages = [PhysAddr: [UInt64]](minimumCapacity: store.count)
        var levelOf = [PhysAddr: Int](minimumCapacity: store.count)
        for (i, pa) in pas.enumerated() {
            pages[pa] = store[i]
            levelOf[pa] = levels[i]
        }
        return Arm64Tables(
            root: root, granule: granule, mappings: mappings, vaBits: vaBits, ttbr: ttbr, pages: pages,
            levelOf: levelOf, unmappable: unmappable,
            cost: Arm64TableCost(granule: granule, mappings: mappings, levels: counts))
    }
}
