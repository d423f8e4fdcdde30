import KexecModel

/// The identity map the x86_64 kexec path builds (init_pgtable in arch/x86/kernel/machine_kexec_64.c,
/// kernel_ident_mapping_init in arch/x86/mm/ident_map.c), under a policy.
public enum X86IdentityMap {
    /// Which leaves ident_pud_init makes.
    enum LeafRule: String, Sendable {
        /// No gbpages: a pmd page per GiB, 2 MiB leaves.
        case twoM = "2m"
        /// direct_gbpages: a 1 GiB leaf for every pud entry not already present.
        case oneG = "1g"
        /// The 2024 rule: a 1 GiB leaf only where [addr, next) is the whole GiB, else 2 MiB leaves.
        case oneGExact = "1g-exact"
    }

    /// The leaves under `policy`; `.kernel` follows kernel `kernel`'s X86IdentityMapRule.
    static func leafRule(
        _ policy: IdentityMapPolicy, platform: Platform, gbpagesSupported: Bool, kernel: KernelVersion
    ) -> LeafRule {
        guard gbpagesSupported else { return .twoM }
        switch policy {
        case .kernel: return X86IdentityMapRule.of(kernel).gbpages == .full ? .oneG : .oneGExact
        case .ram2m, .kdumpOnly: return .twoM
        case .ram1g: return .oneG
        case .gbpagesExact: return .oneGExact
        case .gbpagesExceptUV: return platform == .uv ? .oneGExact : .oneG
        }
    }

    static let size2M: UInt64 = 1 << 21
    static let size1G: UInt64 = 1 << 30

    /// Clips requests to what an identity map can reach: [first, end) pieces, plus what was cut.
    static func clip(_ requests: [IdentityMapRequest], limit: UInt64) -> (
        pieces: [(first: UInt64, end: UInt64)], cut: [AddressRange]
    ) {
        var pieces: [(first: UInt64, end: UInt64)] = []
        var cut: [AddressRange] = []
        for r in requests {
            if r.range.first.raw < limit { pieces.append((r.range.first.raw, min(r.range.last.raw, limit - 1) + 1)) }
            if r.range.last.raw >= limit {
                cut.append(AddressRange(first: PhysAddr(max(r.range.first.raw, limit)), last: r.range.last)!)
            }
        }
        return (pieces, cut)
    }

    /// Builds the tables. `allocate` hands out zeroed 4 KiB page-table pages (physical addresses; the
    /// caller takes them from kexec control pages) and may throw when it runs out; its error passes
    /// through. The root (pgd) is allocated first, then pages in the order the kernel asks for them;
    /// the transition mapping (`transition.va` → `transition.pa`, one 4 KiB PTE) comes last and the
    /// pages it alone needs are counted under `cost.transition`. init_transition_pgtable takes those
    /// from get_zeroed_page, ordinary pages (`allocateTransition`; `allocate` when nil).
    public static func build(
        requests: [IdentityMapRequest], policy: IdentityMapPolicy, platform: Platform, levels: Int,
        gbpagesSupported: Bool = true, kernel: KernelVersion = .newestModelled,
        transition: (va: VirtAddr, pa: PhysAddr)?, allocate: () throws -> PhysAddr,
        allocateTransition: (() throws -> PhysAddr)? = nil
    ) throws -> X86PageTables {
        guard let paging = X86Paging(levels: levels) else { throw PageTableError.unsupportedLevels(levels) }
        let rule = leafRule(policy, platform: platform, gbpagesSupported: gbpagesSupported, kernel: kernel)
        var b = Builder(paging: paging, rule: rule)
        let root = try b.newPage(depth: 0, transition: false, allocate)
        let (pieces, cut) = clip(requests, limit: paging.identityLimit)
        for piece in pieces {
            try b.map(table: 0, depth: 0, addr: piece.first, end: piece.end, allocate)
        }
        if let transition {
            if let allocateTransition {
                try b.mapTransition(root: root, va: transition.va, pa: transition.pa, allocateTransition)
            } else {
                try b.mapTransition(root: root, va: transition.va, pa: transition.pa, allocate)
            }
        }
        var counts = [String: Int]()
        for (i, name) in b.levelNames.enumerated() where !b.isTransition[i] { counts[name, default: 0] += 1 }
        let cost = TableCost(
            policy: policy.rawValue, pgd: counts["pgd"] ?? 0, p4d: counts["p4d"] ?? 0, pud: counts["pud"] ?? 0,
            pmd: counts["pmd"] ?? 0, pte: counts["pte"] ?? 0, transition: b.isTransition.filter { $0 }.count)
        var pages = [PhysAddr: [UInt64]](minimumCapacity: b.store.count)
        var levelOf = [PhysAddr: String](minimumCapacity: b.store.count)
        for (i, pa) in b.pas.enumerated() {
            pages[pa] = b.store[i]
            levelOf[pa] = b.levelNames[i]
        }
        return X86PageTables(
            root: root, levels: levels, policy: policy, effectiveLeafRule: rule.rawValue, pages: pages,
            levelOf: levelOf, transitionPages: b.pas.indices.filter { b.isTransition[$0] }.map { b.pas[$0] },
            unmappable: cut, cost: cost)
    }

    /// Counts the pages `build` would allocate for the same requests, without materialising entries
    /// (for machines of many TiB). `transition`: count the transition mapping's pages too.
    /// Equal to `build(…).cost` whenever build succeeds. `levels` other than 5 count as 4-level
    /// (build rejects them).
    public static func cost(
        requests: [IdentityMapRequest], policy: IdentityMapPolicy, platform: Platform, levels: Int,
        gbpagesSupported: Bool = true, kernel: KernelVersion = .newestModelled, transition: VirtAddr? = nil
    ) -> TableCost {
        let paging = X86Paging(levels: levels == 5 ? 5 : 4)!
        let rule = leafRule(policy, platform: platform, gbpagesSupported: gbpagesSupported, kernel: kernel)
        let pieces = clip(requests, limit: paging.identityLimit).pieces
        // touched[d]: entries present in level-d tables, as unit indices at that level's shift.
        var touched = [UnitSet](repeating: UnitSet(), count: paging.levels - 1)
        var giantLeaves = UnitSet()  // GiBs mapped by one 1 GiB leaf
        var pmdPages: UInt64 = 0
        for piece in pieces {
            let last = piece.end - 1
            for d in 0..<(paging.levels - 1) where d != paging.pudDepth {
                let shift = paging.shifts[d]
                touched[d].insert(piece.first >> shift, last >> shift)
            }
            let g0 = piece.first >> 30
            let g1 = last >> 30
            // GiBs whose whole extent lies in [first, end).
            let f0 = (piece.first + size1G - 1) >> 30
            let f1 = piece.end >> 30  // exclusive
            for gap in touched[paging.pudDepth].gaps(g0, g1) {
                let n = gap.last - gap.first + 1
                switch rule {
                case .twoM: pmdPages += n
                case .oneG: giantLeaves.insert(gap.first, gap.last)
                case .oneGExact:
                    let lo = max(gap.first, f0)
                    let hi = min(gap.last + 1, f1)
                    if lo < hi {
                        giantLeaves.insert(lo, hi - 1)
                        pmdPages += n - (hi - lo)
                    } else {
                        pmdPages += n
                    }
                }
            }
            touched[paging.pudDepth].insert(g0, g1)
        }
        var transitionPages = 0
        if let va = transition?.raw, paging.isCanonical(va) {
            // Walk down the VA's path; the first absent entry means a new page for every level below.
            for d in 0..<(paging.levels - 1) {
                let unit = (va >> paging.shifts[d]) & ((1 << (paging.vaBits - paging.shifts[d])) - 1)
                if !touched[d].contains(unit) {
                    transitionPages = paging.levels - 1 - d
                    break
                }
                if d == paging.pudDepth && giantLeaves.contains(unit) { break }  // conflict: build throws
            }
        }
        // Every present pgd (and p4d) entry points at one page of the next level.
        let fiveLevel = paging.levels == 5
        return TableCost(
            policy: policy.rawValue, pgd: 1, p4d: fiveLevel ? Int(touched[0].count) : 0,
            pud: Int(touched[paging.pudDepth - 1].count), pmd: Int(pmdPages), pte: 0, transition: transitionPages)
    }
}

/// Builds the tables page by page, as the kernel's ident_*_init helpers do.
struct Builder {
    let paging: X86Paging
    let rule: X86IdentityMap.LeafRule
    var store: [[UInt64]] = []
    var pas: [PhysAddr] = []
    var levelNames: [String] = []
    var isTransition: [Bool] = []
    var indexOf: [PhysAddr: Int] = [:]

    init(paging: X86Paging, rule: X86IdentityMap.LeafRule) {
        self.paging = paging
        self.rule = rule
    }

    mutating func newPage(depth: Int, transition: Bool, _ allocate: () throws -> PhysAddr) throws -> PhysAddr {
        let pa = try allocate()
        guard pa.isAligned(kexecPageSize), pa.raw & ~X86PTE.addressMask == 0 else {
            throw PageTableError.badPage(pa)
        }
        guard indexOf[pa] == nil else { throw PageTableError.pageReused(pa) }
        indexOf[pa] = store.count
        store.append([UInt64](repeating: 0, count: 512))
        pas.append(pa)
        levelNames.append(paging.names[depth])
        isTransition.append(transition)
        return pa
    }

    private static func present(_ e: UInt64) -> Bool { e & X86PTE.present != 0 }
    private static func leaf(_ e: UInt64) -> Bool { e & X86PTE.pageSize != 0 }

    /// kernel_ident_mapping_init / ident_p4d_init / ident_pud_init / ident_pmd_init over [addr, end)
    /// in the table page stored at `table` (end <= 2^52, so nothing here can overflow).
    mutating func map(table: Int, depth: Int, addr start: UInt64, end: UInt64, _ allocate: () throws -> PhysAddr)
        throws
    {
        let shift = paging.shifts[depth]
        let span = UInt64(1) << shift
        if depth == paging.pmdDepth {  // pmd: 2 MiB leaves over whole aligned units, present ones kept
            var addr = start & ~(span - 1)
            while addr < end {
                let index = Int((addr >> shift) & 511)
                if !Self.present(store[table][index]) { store[table][index] = addr | X86PTE.largeLeafFlags }
                addr += span
            }
            return
        }
        var addr = start
        while addr < end {
            let index = Int((addr >> shift) & 511)
            let next = min((addr & ~(span - 1)) + span, end)
            defer { addr = next }
            let e = store[table][index]
            if depth == paging.pudDepth {
                switch rule {
                case .oneG:
                    if !Self.present(e) { store[table][index] = (addr & ~(span - 1)) | X86PTE.largeLeafFlags }
                    continue
                case .oneGExact:
                    if Self.present(e) && Self.leaf(e) { continue }
                    if !Self.present(e) && addr & (span - 1) == 0 && next & (span - 1) == 0 {
                        store[table][index] = addr | X86PTE.largeLeafFlags
                        continue
                    }
                case .twoM:
                    if Self.present(e) && Self.leaf(e) { continue }
                }
            }
            if Self.present(e) {
                let child = indexOf[PhysAddr(e & X86PTE.addressMask)]!
                try map(table: child, depth: depth + 1, addr: addr, end: next, allocate)
            } else {
                let childPA = try newPage(depth: depth + 1, transition: false, allocate)
                try map(table: store.count - 1, depth: depth + 1, addr: addr, end: next, allocate)
                store[table][index] = childPA.raw | X86PTE.tableFlags
            }
        }
    }

    /// init_transition_pgtable: one 4 KiB PTE for `va`, allocating the missing tables on its path.
    mutating func mapTransition(root: PhysAddr, va: VirtAddr, pa: PhysAddr, _ allocate: () throws -> PhysAddr) throws {
        guard paging.isCanonical(va.raw) else { throw PageTableError.nonCanonicalTransition(va) }
        var table = indexOf[root]!
        for depth in 0..<(paging.levels - 1) {
            let index = Int((va.raw >> paging.shifts[depth]) & 511)
            let e = store[table][index]
            if Self.present(e) {
                if Self.leaf(e) && depth >= paging.pudDepth {
                    throw PageTableError.transitionConflict(va, level: paging.names[depth])
                }
                table = indexOf[PhysAddr(e & X86PTE.addressMask)]!
            } else {
                let child = try newPage(depth: depth + 1, transition: true, allocate)
                store[table][index] = child.raw | X86PTE.tableFlags
                table = store.count - 1
            }
        }
        store[table][Int((va.raw >> 12) & 511)] = (pa.raw & X86PTE.addressMask) | X86PTE.transitionPTEFlags
    }
}
