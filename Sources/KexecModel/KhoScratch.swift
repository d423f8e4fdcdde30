/// The KHO scratch areas of a machine: as given, or reserved at boot the way
/// kho_reserve_scratch does it (kernel/kexec_handover.c, the same in the stored 6.16 copy 00c010e1
/// and the 2026 copy 019fc368; mm/memblock.c memblock_reserved_kern_size and the memblock
/// allocators, read in Debian's 6.12.95 and the stored mainline copy):
///
/// 1. sizes (scratch_size_update, scratch_size_node): with `kho_scratch=N%` the low area is
///    round_up(kern(below ARCH_LOW_ADDRESS_LIMIT) × N / 100, CMA_MIN_ALIGNMENT_BYTES), the global
///    area round_up(kern(all) × N / 100 − low, CMA_MIN_ALIGNMENT_BYTES) in unsigned arithmetic (a
///    negative difference wraps and rounds up to 0), each node's round_up(kern(node) × N / 100, …);
///    kern() sums the MEMBLOCK_RSRV_KERN reservations, clipped at the limit. With explicit sizes
///    the low and global sizes are taken as given and the per-node size is rounded up.
/// 2. placement, all top-down (memblock's default direction): the kho_scratch array itself
///    (memblock_alloc(count × 16, PAGE_SIZE)), the low area in [0, ARCH_LOW_ADDRESS_LIMIT), the
///    global area anywhere, then each node's area inside that node (exact_nid), each aligned to
///    CMA_MIN_ALIGNMENT_BYTES. A size of 0 still gets an address (the top of the highest free
///    range, aligned down), as __memblock_find_range_top_down returns for size 0.
///
/// kexec-sim counts `machine.memblock_reserved` (and an imported log's reservations) and the
/// crashkernel ranges (memblock_phys_alloc_range, a MEMBLOCK_RSRV_KERN allocation) as the kernel's
/// own reservations; the KFENCE pool, allocated earlier in mm_core_init, is taken out of the free
/// memory too.
public enum KhoScratchLayout {
    /// The scratch areas, in kho_scratch array order, and where the first kernel keeps the array
    /// itself (memblock_alloc'ed at boot; unknown for given areas).
    public struct Reservation: Sendable, Equatable {
        public var areas: [KhoScratchArea]
        public var array: AddressRange?
    }

    /// The areas for `machine` (whose `kho` must be set), in kho_scratch array order.
    public static func areas(for machine: Machine) -> Result<[KhoScratchArea], KhoScratchError> {
        reservation(for: machine).map(\.areas)
    }

    /// The areas and the array's place for `machine`.
    public static func reservation(for machine: Machine) -> Result<Reservation, KhoScratchError> {
        guard let kho = machine.kho else { return .success(Reservation(areas: [])) }
        switch kho.scratch {
        case .given(let ranges):
            return .success(
                Reservation(
                    areas: ranges.enumerated().map { i, r in
                        KhoScratchArea(kind: .ofEntry(i), addr: r.first, size: r.size)
                    }))
        case .parameter(let p):
            return reserve(machine, parameter: p)
        case .handedOver(let areas, let array):
            return .success(Reservation(areas: areas, array: array))
        }
    }

    /// ARCH_LOW_ADDRESS_LIMIT as the `end` memblock is given: 0xffffffff by default
    /// (include/linux/memblock.h), arm64_dma_phys_limit − 1 on arm64 (arch/arm64/include/asm/processor.h).
    public static func lowLimit(_ machine: Machine) -> PhysAddr {
        switch machine.arch {
        case .x86_64: return PhysAddr(0xffff_ffff)
        case .arm64: return PhysAddr(machine.arm64DmaLimit.raw &- 1)
        }
    }

    /// The NUMA nodes' ranges: `machine.numa_nodes`, else one node spanning all RAM.
    public static func nodes(_ machine: Machine) -> [AddressRange] {
        if !machine.numaNodes.isEmpty { return machine.numaNodes }
        let ram = machine.memory.usable.ranges
        guard let first = ram.first, let last = ram.last, let all = AddressRange(first: first.first, last: last.last)
        else { return [] }
        return [all]
    }

    /// The reservations kexec-sim counts as the kernel's own (MEMBLOCK_RSRV_KERN).
    public static func kernelReservations(_ machine: Machine) -> [AddressRange] {
        (machine.memblockReserved + machine.crashkernelRanges).sorted()
    }

    /// memblock_reserved_kern_size(limit, nid): the kernel's reservations below `limit` (a region
    /// crossing it counts up to limit − base), of node `node` (nil: every node).
    public static func kernelReservedSize(_ machine: Machine, limit: UInt64 = .max, node: Int? = nil) -> UInt64 {
        let nodes = self.nodes(machine)
        var total: UInt64 = 0
        for r in kernelReservations(machine) {
            if r.first.raw > limit { break }
            var size = r.size.raw
            if r.last.raw >= limit { size = limit - r.first.raw }
            if let node {
                guard node < nodes.count, nodes[node].contains(r.first) else { continue }
            }
            total &+= size
        }
        return total
    }

    /// The kernel's round_up for a power-of-two alignment, in wrapping arithmetic: ((x − 1) | (a − 1)) + 1.
    static func roundUp(_ x: UInt64, _ a: UInt64) -> UInt64 { ((x &- 1) | (a - 1)) &+ 1 }

    /// The sizes scratch_size_update and scratch_size_node give: (low, global, per node).
    public static func sizes(_ machine: Machine, parameter: KhoScratchParameter) -> Result<
        (lowmem: ByteCount, global: ByteCount, nodes: [ByteCount]), KhoScratchError
    > {
        let align = KhoRules.cmaMinAlignment.raw
        let nodeCount = nodes(machine).count
        switch parameter {
        case .sizes(let l, let g, let n):
            return .success((l, g, Array(repeating: ByteCount(roundUp(n.raw, align)), count: nodeCount)))
        case .scale(let pct):
            guard !kernelReservations(machine).isEmpty else {
                return .failure(
                    .init(
                        "\(parameter) scales the kernel's own memblock reservations (MEMBLOCK_RSRV_KERN), and this "
                            + "machine lists none: give machine.memblock_reserved, or kho.scratch, or "
                            + "kho_scratch=lowmem,global,pernode"))
            }
            func scaled(_ v: UInt64) -> UInt64? {
                let (m, o) = v.multipliedReportingOverflow(by: UInt64(pct))
                return o ? nil : m / 100
            }
            guard let low = scaled(kernelReservedSize(machine, limit: lowLimit(machine).raw)),
                let all = scaled(kernelReservedSize(machine))
            else { return .failure(.init("\(parameter): the scaled size does not fit in 64 bits")) }
            let lowmem = roundUp(low, align)
            let global = roundUp(all &- lowmem, align)
            var perNode: [ByteCount] = []
            for n in 0..<nodeCount {
                guard let s = scaled(kernelReservedSize(machine, node: n)) else {
                    return .failure(.init("\(parameter): node \(n)'s scaled size does not fit in 64 bits"))
                }
                perNode.append(ByteCount(roundUp(s, align)))
            }
            return .success((ByteCount(lowmem), ByteCount(global), perNode))
        }
    }

    /// kho_reserve_scratch on this machine.
    static func reserve(_ machine: Machine, parameter: KhoScratchParameter) -> Result<Reservation, KhoScratchError> {
        let sz: (lowmem: ByteCount, global: ByteCount, nodes: [ByteCount])
        switch sizes(machine, parameter: parameter) {
        case .failure(let e): return .failure(e)
        case .success(let s): sz = s
        }
        let nodeRanges = nodes(machine)
        var free = machine.memory.usable
        for r in kernelReservations(machine) { free.remove(r) }
        if let k = machine.kho?.kfencePool { free.remove(k) }
        let align = KhoRules.cmaMinAlignment
        let top = PhysAddr(machine.memory.usable.ranges.last?.endSaturated ?? 0)
        func take(_ size: ByteCount, _ align: ByteCount, in pool: RangeSet, end: PhysAddr) -> PhysAddr? {
            guard let at = allocTopDown(pool, size: size, align: align, end: end) else { return nil }
            if let r = AddressRange(start: at, size: size) { free.remove(r) }
            return at
        }
        // memblock_alloc(kho_scratch_cnt * sizeof(*kho_scratch), PAGE_SIZE).
        let count = nodeRanges.count + 2
        let arraySize = ByteCount(UInt64(count * KhoScratchArea.entrySize))
        guard let arrayAt = take(arraySize, kexecPageSize, in: free, end: top) else {
            return .failure(
                .init("no page for the kho_scratch array: the kernel prints \"Failed to reserve scratch array\""))
        }
        var out: [KhoScratchArea] = []
        func fail(_ what: String, _ size: ByteCount, _ below: PhysAddr) -> KhoScratchError {
            .init(
                "\(parameter): no \(align)-aligned free range of \(size) for the \(what) scratch area below "
                    + "\(hex(below.raw)); the kernel prints \"Failed to reserve \(what) scratch buffer\" and "
                    + "disables KHO (\"Failed to reserve scratch area, disabling kexec handover\")")
        }
        let low = lowLimit(machine)
        guard let l = take(sz.lowmem, align, in: free, end: low) else {
            return .failure(fail("lowmem", sz.lowmem, low))
        }
        out.append(KhoScratchArea(kind: .lowmem, addr: l, size: sz.lowmem))
        guard let g = take(sz.global, align, in: free, end: top) else {
            return .failure(fail("global", sz.global, top))
        }
        out.append(KhoScratchArea(kind: .global, addr: g, size: sz.global))
        for (n, node) in nodeRanges.enumerated() {
            var inNode = RangeSet()
            for r in free.ranges { if let x = r.intersection(node) { inNode.insert(x) } }
            guard let a = take(sz.nodes[n], align, in: inNode, end: top) else {
                return .failure(fail("nid \(n)", sz.nodes[n], PhysAddr(node.endSaturated)))
            }
            out.append(KhoScratchArea(kind: .node(n), addr: a, size: sz.nodes[n]))
        }
        return .success(Reservation(areas: out, array: AddressRange(start: arrayAt, size: arraySize)))
    }

    /// memblock_find_in_range_node top-down over `free` below `end`, from PAGE_SIZE up; a size of 0
    /// gives the highest aligned end of a free range.
    static func allocTopDown(_ free: RangeSet, size: ByteCount, align: ByteCount, end: PhysAddr) -> PhysAddr? {
        if size.raw > 0 {
            return Crashkernel.allocTopDown(free, size: size, align: align, start: PhysAddr(0), end: end)
        }
        for r in free.ranges.reversed() {
            let thisStart = max(r.first.raw, kexecPageSize.raw)
            let thisEnd = min(r.endSaturated, end.raw)
            guard thisEnd > thisStart else { continue }
            let cand = PhysAddr(thisEnd).alignedDown(align)
            if cand.raw >= thisStart { return cand }
        }
        return nil
    }

    /// "lowmem 0x…+16MiB, global 0x…+1GiB, node0 …": the areas as the rejection names them.
    public static func describe(_ areas: [KhoScratchArea]) -> String {
        areas.map(\.description).joined(separator: ", ")
    }

    /// The kho_scratch array's bytes (struct kho_scratch, little endian): what the scratch segment holds.
    public static func arrayBytes(_ areas: [KhoScratchArea]) -> [UInt8] {
        var out: [UInt8] = []
        for a in areas {
            for v in [a.addr.raw, a.size.raw] {
                out += (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
            }
        }
        return out
    }

    /// Reads a kho_scratch array back (little endian pairs); kinds by position.
    public static func areas(fromArray bytes: [UInt8]) -> [KhoScratchArea] {
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[o + $1]) << (8 * UInt64($1)) } }
        return stride(from: 0, to: bytes.count - bytes.count % 16, by: 16).enumerated().map { i, o in
            KhoScratchArea(kind: .ofEntry(i), addr: PhysAddr(u64(o)), size: ByteCount(u64(o + 8)))
        }
    }
}

/// Why the first kernel could not reserve its scratch areas (it then runs with KHO off).
public struct KhoScratchError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
