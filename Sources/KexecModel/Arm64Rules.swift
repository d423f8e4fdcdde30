/// The arm64 kexec rules that changed over kernel versions or depend on the first kernel's config,
/// each with the source it was read from. A policy override (`policy.relocation`,
/// `policy.linear_map.mappings`) wins over the rule; the evidence then says so.
public enum Arm64Rules {
    /// How the first kernel protects the crashkernel region in its linear map.
    public enum LinearMapScope: Sendable, Equatable {
        /// Every leaf of the linear map is a base page (rodata=full, or crashkernel= with ZONE_DMA
        /// on v5.11–v6.3).
        case wholeMapBasePages
        /// Blocks everywhere but the crashkernel region, which is mapped with base pages.
        case regionBasePages
        /// Blocks everywhere.
        case blocks
    }

    /// relocate_kernel with the MMU off (cpu_soft_restart) or on (a trans_pgd copy of the linear map).
    public static func relocation(
        version v: KernelVersion, type: ImageType, override: RelocationMode?
    ) -> (RelocationMode, AppliedRule) {
        if let o = override {
            return (
                o, AppliedRule("relocation", "\(o.rawValue) (policy override)", source: "fixture policy.relocation")
            )
        }
        if type == .crash {
            return (
                .mmuOff,
                AppliedRule(
                    "relocation",
                    "mmu-off: a crash image is loaded in place (head = IND_DONE), machine_kexec_post_load returns "
                        + "before trans_pgd_create_copy and the idmap, cpu_soft_restart enters with the MMU off",
                    source: "arch/arm64/kernel/machine_kexec.c machine_kexec_post_load / machine_kexec, read in 6.x")
            )
        }
        if v.atLeast(5, 16) {
            return (
                .mmuOn,
                AppliedRule(
                    "relocation",
                    "mmu-on: relocate_kernel copies through a trans_pgd copy of the linear map (TTBR1) and an "
                        + "idmap of the control page (TTBR0), then turns the MMU off",
                    source: "arch/arm64/kernel/machine_kexec.c machine_kexec_post_load, MMU-enabled relocation "
                        + "series merged in v5.16, read in 6.x")
            )
        }
        return (
            .mmuOff,
            AppliedRule(
                "relocation", "mmu-off: cpu_soft_restart turns the MMU off before arm64_relocate_new_kernel copies",
                source: "arch/arm64/kernel/machine_kexec.c machine_kexec (cpu_soft_restart), v4.x–v5.15")
        )
    }

    /// The first kernel's linear map: whole-map base pages, base pages over the crashkernel region
    /// only, or blocks.
    public static func linearMap(
        version v: KernelVersion, config: Arm64KernelConfig, crashkernel: Bool, override: Arm64Mappings?
    ) -> (LinearMapScope, AppliedRule) {
        if let o = override {
            let scope: LinearMapScope = o == .basePages ? .wholeMapBasePages : .blocks
            return (
                scope,
                AppliedRule(
                    "linear_map", "\(o.rawValue) (policy override)", source: "fixture policy.linear_map.mappings")
            )
        }
        if config.rodataFull {
            return (
                .wholeMapBasePages,
                AppliedRule(
                    "linear_map",
                    "base pages on the whole linear map: rodata=full makes can_set_direct_map() true, map_mem "
                        + "uses NO_BLOCK_MAPPINGS | NO_CONT_MAPPINGS",
                    source: "arch/arm64/mm/mmu.c map_mem, arch/arm64/mm/pageattr.c can_set_direct_map, read in 6.x")
            )
        }
        guard crashkernel, !v.atLeast(6, 4) else {
            let why = crashkernel ? "v6.4+ no longer protects the crashkernel region" : "no crashkernel="
            return (
                .blocks,
                AppliedRule(
                    "linear_map", "blocks: \(why)",
                    source: "arch/arm64/mm/mmu.c map_mem (crash_mem_map removed in v6.4, 0d124e96051b)")
            )
        }
        if v.atLeast(5, 11) && config.zoneDma {
            return (
                .wholeMapBasePages,
                AppliedRule(
                    "linear_map",
                    "base pages on the WHOLE linear map: crashkernel= with ZONE_DMA/DMA32 is reserved after "
                        + "the linear map is built, so map_mem cannot tell where it will be (NO_BLOCK_MAPPINGS)",
                    source: "arch/arm64/mm/mmu.c map_mem crash_mem_map, v5.11–v6.3")
            )
        }
        let why = v.atLeast(5, 11) ? "without ZONE_DMA/DMA32 the region is known" : "up to v5.10"
        return (
            .regionBasePages,
            AppliedRule(
                "linear_map", "base pages over the crashkernel region only (\(why)), blocks elsewhere",
                source: "arch/arm64/mm/mmu.c map_mem (crashk_res mapped with NO_BLOCK_MAPPINGS), v4.10–v6.3")
        )
    }

    /// Whether the loaded crash segments are unmapped from the first kernel's linear map
    /// (arch_kexec_protect_crashkres, set_memory_valid(…, 0)).
    public static func protection(version v: KernelVersion, override: CrashkernelProtection?) -> (
        CrashkernelProtection, AppliedRule
    ) {
        if let o = override {
            return (
                o,
                AppliedRule(
                    "crashkernel_protection", "\(o.rawValue) (machine.crashkernel_protection)",
                    source: "fixture machine.crashkernel_protection")
            )
        }
        if v.atLeast(6, 4) {
            return (
                .none,
                AppliedRule(
                    "crashkernel_protection", "none: arch_kexec_protect_crashkres was removed in v6.4",
                    source: "arch/arm64/kernel/machine_kexec.c, 0d124e96051b (v6.4)")
            )
        }
        return (
            .unmapped,
            AppliedRule(
                "crashkernel_protection",
                "unmapped: arch_kexec_protect_crashkres makes the loaded crash segments invalid in the linear map",
                source: "arch/arm64/kernel/machine_kexec.c arch_kexec_protect_crashkres, v4.10–v6.3")
        )
    }

    /// PAGE_SIZE is the granule: kimage pages, buffer alignment and sanity checks use it. 16K
    /// kernels run with 47-bit VAs (arch/arm64/Kconfig default ARM64_VA_BITS_47 for 16K pages in
    /// 6.1.192; from v6.9 the default is 52, which falls back to VA_BITS_MIN 47 on a CPU without
    /// FEAT_LPA2, arch/arm64/include/asm/memory.h, read in 6.12.117); 4K and 64K: 48 (Debian's
    /// arm64 config).
    public static func vaBits(_ g: Granule) -> Int { g == .g16k ? 47 : 48 }
}
