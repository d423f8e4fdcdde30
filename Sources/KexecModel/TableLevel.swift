/// A level of the x86_64 paging hierarchy, named as the kernel names it (arch/x86/include/asm/
/// pgtable_types.h): pgd at the top, p4d only with LA57 (5-level paging), pte at the bottom.
public enum X86TableLevel: String, Sendable, Equatable, Hashable, CaseIterable, Codable {
    case pgd, p4d, pud, pmd, pte

    /// The level counting the pte as 1; the pgd is 4, or 5 with LA57 (`levels` = 5).
    public func number(levels: Int) -> Int {
        switch self {
        case .pte: return 1
        case .pmd: return 2
        case .pud: return 3
        case .p4d: return 4
        case .pgd: return levels
        }
    }

    /// The levels a walk visits, top first.
    public static func walk(levels: Int) -> [X86TableLevel] {
        levels == 5 ? [.pgd, .p4d, .pud, .pmd, .pte] : [.pgd, .pud, .pmd, .pte]
    }
}

/// A level of an AArch64 VMSAv8-64 translation table walk: L0 at the top (4K granule, 48-bit
/// VAs), L3 the page level (Arm ARM D8.2); L-1 above L0 only for a 4K walk over more than 48 VA
/// bits (FEAT_LPA2, TCR_EL1.DS = 1).
public enum Arm64TableLevel: Int, Sendable, Equatable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    case lMinus1 = -1, l0, l1, l2, l3
    public var description: String { "L\(rawValue)" }
}

/// A table level of either architecture, for evidence shared by both.
public enum TableLevel: Sendable, Equatable, Hashable, CustomStringConvertible {
    case x86(X86TableLevel)
    case arm64(Arm64TableLevel)

    /// The kernel's name for it: "pmd", "L2".
    public var description: String {
        switch self {
        case .x86(let l): return l.rawValue
        case .arm64(let l): return l.description
        }
    }
}
