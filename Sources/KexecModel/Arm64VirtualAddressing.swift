/// The first kernel's kernel-VA size and table depth, and what trans_pgd_create_copy does with
/// them, by version, config and CPU.
extension Arm64Rules {
    /// vabits_actual and the number of table levels the first kernel runs with.
    public struct VirtualAddressing: Sendable, Equatable {
        /// vabits_actual: 52 with FEAT_LPA2 (4K / 16K) on a VA_BITS_52 kernel, else VA_BITS_MIN.
        public var vaBits: Int
        /// ARM64_HW_PGTABLE_LEVELS(vabits_actual): 5 for 4K pages over 52 bits (the p4d is real,
        /// pgtable_l5_enabled()); 4 for 4K / 48 and 16K / 52; 3 for 16K / 47 and 64K.
        public var levels: Int
        /// Whether the kernel turned FEAT_LPA2 on (TCR_EL1.DS).
        public var lpa2: Bool

        public init(vaBits: Int, levels: Int, lpa2: Bool) {
            self.vaBits = vaBits
            self.levels = levels
            self.lpa2 = lpa2
        }
    }

    /// The first kernel's VA size: VA_BITS_52 (`config.vaBits52`) gives 52-bit VAs with 4K or 16K
    /// pages only from v6.9 (the LPA2 series; 6.1.192's ARM64_VA_BITS_52 depends on 64K pages) and
    /// only on a CPU whose ID_AA64MMFR0_EL1.TGran4 / TGran16 says 52_BIT (cpu_has_lpa2); otherwise
    /// VA_BITS_MIN (arch/arm64/kernel/pi/map_kernel.c early_map_kernel, arch/arm64/Kconfig,
    /// asm/memory.h VA_BITS_MIN, asm/pgtable-hwdef.h ARM64_HW_PGTABLE_LEVELS, read in 6.12.117).
    /// 64K pages keep 48 bits here (FEAT_LVA, ID_AA64MMFR2_EL1.VARange, is not modelled).
    public static func virtualAddressing(
        version v: KernelVersion, config: Arm64KernelConfig, granule g: Granule, cpu: Arm64MMFR0
    ) -> (VirtualAddressing, AppliedRule) {
        let source =
            "arch/arm64/kernel/pi/map_kernel.c early_map_kernel (cpu_has_lpa2), asm/memory.h VA_BITS_MIN, "
            + "asm/pgtable-hwdef.h ARM64_HW_PGTABLE_LEVELS, read in 6.12.117; ARM64_VA_BITS_52 needs 64K pages in 6.1.192"
        let min = vaBits(g)
        func levels(_ bits: Int) -> Int { (bits - 4) / (g.shift - 3) }
        let why: String
        if !config.vaBits52 {
            why = "VA_BITS \(min) (config)"
        } else if g == .g64k {
            why = "VA_BITS_52 with 64K pages: FEAT_LVA is not modelled, VA_BITS_MIN \(min)"
        } else if !v.atLeast(6, 9) {
            why = "VA_BITS_52 with \(g) pages exists from v6.9 (LPA2): VA_BITS_MIN \(min)"
        } else if !cpu.lpa2(g) {
            why = "VA_BITS_52 on a CPU without FEAT_LPA2 for \(g) (\(cpu)): VA_BITS_MIN \(min)"
        } else {
            let va = VirtualAddressing(vaBits: 52, levels: levels(52), lpa2: true)
            return (
                va,
                AppliedRule(
                    "va_bits",
                    "52 (VA_BITS_52, FEAT_LPA2 for \(g) in \(cpu)): \(va.levels) table levels"
                        + (va.levels == 5 ? ", the p4d level is real (pgtable_l5_enabled)" : ""),
                    source: source)
            )
        }
        let va = VirtualAddressing(vaBits: min, levels: levels(min), lpa2: false)
        return (va, AppliedRule("va_bits", "\(why): \(va.levels) table levels", source: source))
    }

    /// What trans_pgd_create_copy (machine_kexec_post_load, normal images) does with the first
    /// kernel's levels.
    public enum TransPgdCopy: Sendable, Equatable {
        /// It copies the linear map.
        case copies
        /// v6.9–v6.12 with a real p4d level (5 levels): copy_p4d never allocates the copy's p4d
        /// table and reads through the empty pgd entry of the fresh copy: p4d_offset() gives
        /// __va(0) + p4d_index(start), and copy_pud reads that address (an oops in the first
        /// kernel, during the load).
        case readsThroughEmptyPgd
    }

    /// trans_pgd_create_copy by version: with 4 or fewer levels the p4d is folded and the copy is
    /// right. With 5 levels, arch/arm64/mm/trans_pgd.c copy_p4d in 6.12.117 takes
    /// `p4d_offset(dst_pgdp, start)` without populating `*dst_pgdp`; the fixed copy_p4d first
    /// allocates it (`if (pgd_none(*dst_pgdp)) … pgd_populate`, read in torvalds/linux tree
    /// 3648027de1fa; the fixing commit and its first release were not established, so first
    /// kernels newer than 6.12 with 5 levels are not modelled: nil).
    public static func transPgdCopy(version v: KernelVersion, levels: Int) -> (TransPgdCopy, AppliedRule)? {
        let source = "arch/arm64/mm/trans_pgd.c copy_page_tables / copy_p4d / copy_pud, read in 6.12.117"
        guard levels == 5 else {
            return (
                .copies,
                AppliedRule(
                    "trans_pgd_copy", "copies the linear map (\(levels) levels: the p4d is folded into the pgd)",
                    source: source)
            )
        }
        guard v.major == 6 && v.minor >= 9 && v.minor <= 12 else { return nil }
        return (
            .readsThroughEmptyPgd,
            AppliedRule(
                "trans_pgd_copy",
                "5 levels: copy_p4d does not populate the copy's empty pgd entry, p4d_offset() turns it into "
                    + "__va(0) + p4d_index(start) and copy_pud reads there",
                source: source)
        )
    }
}
