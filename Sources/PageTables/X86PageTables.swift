import KexecModel

/// x86_64 page-table entry bits (arch/x86/include/asm/pgtable_types.h).
public enum X86PTE {
    public static let present: UInt64 = 1 << 0
    public static let writable: UInt64 = 1 << 1
    public static let accessed: UInt64 = 1 << 5
    public static let dirty: UInt64 = 1 << 6
    /// PS: a leaf at the pud (1 GiB) or pmd (2 MiB) level.
    public static let pageSize: UInt64 = 1 << 7
    public static let global: UInt64 = 1 << 8
    public static let noExecute: UInt64 = 1 << 63
    /// Physical address bits 12..51.
    public static let addressMask: UInt64 = 0x000f_ffff_ffff_f000

    /// _KERNPG_TABLE: a non-leaf entry pointing at the next table page.
    public static let tableFlags: UInt64 = present | writable | accessed | dirty  // 0x63
    /// __PAGE_KERNEL_LARGE_EXEC: a 2 MiB or 1 GiB identity-map leaf (executable: no NX).
    public static let largeLeafFlags: UInt64 = present | writable | accessed | dirty | pageSize | global  // 0x1e3
    /// The transition PTE: PAGE_KERNEL_EXEC with the global bit masked off, as
    /// __default_kernel_pte_mask leaves it when page-table isolation is on.
    public static let transitionPTEFlags: UInt64 = present | writable | accessed | dirty  // 0x63
}

/// A leaf of the tables: one translation of `size` bytes.
public struct Leaf: Sendable, Hashable, CustomStringConvertible {
    public var va: VirtAddr
    public var pa: PhysAddr
    public var size: PageSize
    /// The table level holding the leaf entry: "pud" (1 GiB), "pmd" (2 MiB) or "pte" (4 KiB).
    public var level: String
    public init(va: VirtAddr, pa: PhysAddr, size: PageSize, level: String) {
        self.va = va
        self.pa = pa
        self.size = size
        self.level = level
    }
    /// The physical range the leaf maps.
    public var physRange: AddressRange { AddressRange(start: pa, size: size.bytes)! }
    public var description: String { "\(level) \(size) \(va) -> \(pa)" }
}

/// Why a software walk found no translation: the table level whose entry is not present, the
/// entry's index in that table and the table page itself.
public struct MissingLevel: Error, Sendable, Hashable, CustomStringConvertible {
    /// "pgd", "p4d", "pud", "pmd" or "pte"; "non-canonical" for an address the CPU rejects before
    /// any walk (index -1).
    public var level: String
    public var index: Int
    /// The page holding the missing entry (the root for a non-canonical address).
    public var table: PhysAddr
    public init(level: String, index: Int, table: PhysAddr) {
        self.level = level
        self.index = index
        self.table = table
    }
    public var description: String {
        index < 0 ? "\(level) address" : "\(level)[\(index)] not present (table \(table))"
    }
}

/// How many page-table pages a map costs, per level.
public struct TableCost: Sendable, Equatable, Codable, CustomStringConvertible {
    public var policy: String
    public var pgd: Int
    public var p4d: Int
    public var pud: Int
    public var pmd: Int
    public var pte: Int
    /// pgd + p4d + pud + pmd + pte (the transition pages excluded).
    public var pages: Int
    /// pages * 4096.
    public var bytes: UInt64
    /// Pages allocated only for the transition mapping of the control page.
    public var transition: Int

    public init(policy: String, pgd: Int, p4d: Int, pud: Int, pmd: Int, pte: Int, transition: Int) {
        self.policy = policy
        self.pgd = pgd
        self.p4d = p4d
        self.pud = pud
        self.pmd = pmd
        self.pte = pte
        self.pages = pgd + p4d + pud + pmd + pte
        self.bytes = UInt64(pages) * 4096
        self.transition = transition
    }

    public var description: String {
        var parts = ["\(pgd) pgd"]
        if p4d > 0 { parts.append("\(p4d) p4d") }
        parts.append("\(pud) pud")
        parts.append("\(pmd) pmd")
        if pte > 0 { parts.append("\(pte) pte") }
        return "\(policy): " + parts.joined(separator: " + ")
            + " = \(pages) pages (\(formatSize(bytes))), transition \(transition)"
    }
}

/// What went wrong while building tables (allocator errors pass through unchanged).
public enum PageTableError: Error, Sendable, Equatable, CustomStringConvertible {
    case unsupportedLevels(Int)
    /// The allocator returned an address that is not a 4 KiB page inside 52 physical bits.
    case badPage(PhysAddr)
    /// The allocator returned a page it had already handed out.
    case pageReused(PhysAddr)
    case nonCanonicalTransition(VirtAddr)
    /// The transition VA falls inside a large identity leaf at `level`.
    case transitionConflict(VirtAddr, level: String)

    public var description: String {
        switch self {
        case .unsupportedLevels(let n): return "paging levels must be 4 or 5, not \(n)"
        case .badPage(let pa): return "page-table page \(pa) is not a 4 KiB page below 2^52"
        case .pageReused(let pa): return "page-table page \(pa) handed out twice"
        case .nonCanonicalTransition(let va): return "transition address \(va) is not canonical"
        case .transitionConflict(let va, let level):
            return "transition address \(va) lies inside a \(level) leaf of the identity map"
        }
    }
}

/// The level layout of x86_64 paging: names and the VA shift each level's index is taken at.
struct X86Paging: Sendable {
    let levels: Int
    let names: [String]
    /// The VA bit each level's 9-bit index starts at.
    let shifts: [UInt64]
    init?(levels: Int) {
        guard levels == 4 || levels == 5 else { return nil }
        self.levels = levels
        names = levels == 5 ? ["pgd", "p4d", "pud", "pmd", "pte"] : ["pgd", "pud", "pmd", "pte"]
        shifts = levels == 5 ? [48, 39, 30, 21, 12] : [39, 30, 21, 12]
    }
    /// Depth of the pud level (1 GiB entries): 1 under 4-level paging, 2 under 5-level.
    var pudDepth: Int { levels - 3 }
    /// Depth of the pmd level (2 MiB entries).
    var pmdDepth: Int { levels - 2 }
    /// Number of VA bits: 48 or 57.
    var vaBits: UInt64 { levels == 5 ? 57 : 48 }
    /// Identity VAs equal PAs, so an identity map ends where the lower canonical half does (2^47)
    /// under 4-level paging and at the 52-bit physical limit under 5-level paging.
    var identityLimit: UInt64 { levels == 5 ? 1 << 52 : 1 << 47 }

    func isCanonical(_ va: UInt64) -> Bool {
        let top = va >> (vaBits - 1)
        return top == 0 || top == (UInt64.max >> (vaBits - 1))
    }
    /// Sign-extends a VA assembled from table indices.
    func canonical(_ va: UInt64) -> UInt64 {
        va & (1 << (vaBits - 1)) != 0 ? va | ~((1 << vaBits) - 1) : va
    }
}

/// x86_64 page tables built for the kexec path: every page (512 entries) with its physical address
/// and level, the root that goes in CR3, and the cost.
public struct X86PageTables: Sendable {
    public let root: PhysAddr
    public let levels: Int
    /// The policy asked for.
    public let policy: IdentityMapPolicy
    /// The leaf rule actually applied: "2m" (2 MiB leaves), "1g" (1 GiB leaves) or "1g-exact"
    /// (1 GiB leaves only for whole GiBs inside one request, 2 MiB leaves elsewhere).
    public let effectiveLeafRule: String
    /// Each page: 512 entries.
    public private(set) var pages: [PhysAddr: [UInt64]]
    /// "pgd", "p4d", "pud", "pmd", "pte" for every page, transition pages included.
    public private(set) var levelOf: [PhysAddr: String]
    /// Pages allocated only for the transition mapping, in allocation order.
    public let transitionPages: [PhysAddr]
    /// Parts of requests beyond what an identity map can reach (2^47 under 4-level paging, 2^52
    /// under 5-level): left unmapped.
    public let unmappable: [AddressRange]
    public let cost: TableCost

    init(
        root: PhysAddr, levels: Int, policy: IdentityMapPolicy, effectiveLeafRule: String,
        pages: [PhysAddr: [UInt64]], levelOf: [PhysAddr: String], transitionPages: [PhysAddr],
        unmappable: [AddressRange], cost: TableCost
    ) {
        self.root = root
        self.levels = levels
        self.policy = policy
        self.effectiveLeafRule = effectiveLeafRule
        self.pages = pages
        self.levelOf = levelOf
        self.transitionPages = transitionPages
        self.unmappable = unmappable
        self.cost = cost
    }

    var paging: X86Paging { X86Paging(levels: levels)! }

    /// The page's 4096 bytes as the CPU reads them (entries little-endian); zeros for a page that is
    /// not part of these tables.
    public func encodedPage(_ pa: PhysAddr) -> [UInt8] {
        guard let entries = pages[pa] else { return [UInt8](repeating: 0, count: 4096) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        for (i, e) in entries.enumerated() where e != 0 {
            for b in 0..<8 { bytes[i * 8 + b] = UInt8(truncatingIfNeeded: e >> (8 * UInt64(b))) }
        }
        return bytes
    }

    /// Pure software walk of these tables (no emulator): the PA and leaf size for a VA, or the level
    /// whose entry is missing.
    public func translate(_ va: VirtAddr) -> Result<(pa: PhysAddr, leaf: PageSize), MissingLevel> {
        let p = paging
        guard p.isCanonical(va.raw) else {
            return .failure(MissingLevel(level: "non-canonical", index: -1, table: root))
        }
        var table = root
        for depth in 0..<levels {
            let index = Int((va.raw >> p.shifts[depth]) & 511)
            let entry = pages[table]?[index] ?? 0
            let name = p.names[depth]
            guard entry & X86PTE.present != 0 else {
                return .failure(MissingLevel(level: name, index: index, table: table))
            }
            let size: PageSize? =
                name == "pte"
                ? .size4K
                : entry & X86PTE.pageSize != 0 ? (name == "pud" ? .size1G : name == "pmd" ? .size2M : nil) : nil
            if let size {
                let base = entry & X86PTE.addressMask & ~(size.rawValue - 1)
                return .success((PhysAddr(base | (va.raw & (size.rawValue - 1))), size))
            }
            table = PhysAddr(entry & X86PTE.addressMask)
        }
        return .failure(MissingLevel(level: "pte", index: -1, table: table))  // unreachable: pte entries are leaves
    }

    /// Every leaf, sorted by VA (transition PTE included).
    public var leaves: [Leaf] { leaves(overlapping: VirtAddr(0), VirtAddr(.max)) }

    /// The leaves whose VA range meets [first, last], sorted by VA; subtrees outside are skipped, so
    /// asking about a hazard range on a huge machine stays cheap.
    public func leaves(overlapping first: VirtAddr, _ last: VirtAddr) -> [Leaf] {
        var out: [Leaf] = []
        walk(paging, table: root, depth: 0, prefix: 0, first: first.raw, last: last.raw) { out.append($0) }
        return out
    }

    /// The physical ranges mapped at VA == PA, coalesced (the transition PTE, which maps a high VA,
    /// is not part of it).
    public var identityCoverage: RangeSet {
        var runs: [AddressRange] = []
        var runFirst: UInt64 = 0
        var runEnd: UInt64 = 0
        var open = false
        walk(paging, table: root, depth: 0, prefix: 0, first: 0, last: .max) { leaf in
            guard leaf.va.raw == leaf.pa.raw else { return }
            if open && leaf.pa.raw == runEnd {
                runEnd = leaf.pa.raw + leaf.size.rawValue
            } else {
                if open { runs.append(AddressRange(start: PhysAddr(runFirst), end: PhysAddr(runEnd))!) }
                runFirst = leaf.pa.raw
                runEnd = leaf.pa.raw + leaf.size.rawValue
                open = true
            }
        }
        if open { runs.append(AddressRange(start: PhysAddr(runFirst), end: PhysAddr(runEnd))!) }
        return RangeSet(runs)
    }

    private func walk(
        _ p: X86Paging, table: PhysAddr, depth: Int, prefix: UInt64, first: UInt64, last: UInt64,
        _ visit: (Leaf) -> Void
    ) {
        guard let entries = pages[table] else { return }
        let shift = p.shifts[depth]
        let name = p.names[depth]
        for index in 0..<512 {
            let entry = entries[index]
            guard entry & X86PTE.present != 0 else { continue }
            let va = p.canonical(prefix | (UInt64(index) << shift))
            let span = UInt64(1) << shift
            let vaLast = va + (span - 1)
            if vaLast < first || va > last { continue }
            let isLeaf = name == "pte" || (entry & X86PTE.pageSize != 0 && (name == "pud" || name == "pmd"))
            if isLeaf {
                let size: PageSize = name == "pte" ? .size4K : name == "pmd" ? .size2M : .size1G
                visit(
                    Leaf(
                        va: VirtAddr(va), pa: PhysAddr(entry & X86PTE.addressMask & ~(span - 1)), size: size,
                        level: name))
            } else {
                walk(
                    p, table: PhysAddr(entry & X86PTE.addressMask), depth: depth + 1,
                    prefix: prefix | (UInt64(index) << shift), first: first, last: last, visit)
            }
        }
    }
}
