import KexecModel
import Kimage

/// The version- and config-dependent arm64 rules a plan applies, as evidence (`rule.*`), and the
/// policy they add up to (what `run` and the matrix name a scenario's policy by).
extension Arm64Planner {

    /// Relocation, linear map, crashkernel protection, PAGE_SIZE, the DMA limit, the purgatory rule.
    static func ruleSet(_ sc: Scenario, policy: Arm64Policy) -> [AppliedRule] {
        let m = sc.machine
        let v = m.kernelVersion
        let type = sc.kexec?.type ?? .normal
        var out: [AppliedRule] = []
        out.append(Arm64Rules.relocation(version: v, type: type, override: policy.relocation).1)
        out.append(
            Arm64Rules.linearMap(
                version: v, config: m.config, crashkernel: !m.crashkernelRanges.isEmpty, override: policy.mappings
            ).1)
        if type == .crash && !m.crashkernelRanges.isEmpty {
            out.append(Arm64Rules.protection(version: v, override: m.crashkernelProtection).1)
        }
        let g = policy.granule
        out.append(
            AppliedRule(
                "page_size",
                "PAGE_SIZE = the \(g.rawValue) granule (\(g.size) bytes): buffer sizes and alignment, the sanity "
                    + "checks, every kimage page (control, swap, source, indirection with \(g.size / 8) entries) "
                    + "and the relocation routine's page copy; VA_BITS \(Arm64Rules.vaBits(g))",
                source: "arch/arm64/include/asm/page-def.h PAGE_SHIFT = CONFIG_ARM64_PAGE_SHIFT; kernel/kexec_core.c "
                    + "sanity_check_segment_list, kimage_add_entry, kimage_alloc_page; kernel/kexec_file.c "
                    + "kexec_add_buffer; arch/arm64/kernel/relocate_kernel.S copy_page (x6 = PAGE_SIZE), read in "
                    + "6.12.117; VA_BITS: arch/arm64/Kconfig default ARM64_VA_BITS_47 for 16K in 6.1.192, "
                    + "VA_BITS_MIN 47 for 16K when a 52-bit 6.12.117 kernel runs without LPA2 (asm/memory.h)"))
        let dma = m.arm64DmaLimit
        let dmaWhy: String
        if !m.config.zoneDma {
            dmaWhy = "no ZONE_DMA/DMA32: PHYS_MASK + 1"
        } else if let s = m.memory.usable.ranges.first?.first, s.raw > 0xffff_ffff {
            dmaWhy = "RAM starts above 4 GiB: the DMA zone covers all of it"
        } else if m.dmaRangesLimit != nil {
            dmaWhy = "min(4 GiB, device-tree dma-ranges reach, end of RAM)"
        } else {
            dmaWhy = "min(4 GiB, end of RAM)"
        }
        out.append(
            AppliedRule(
                "dma_limit", "\(hex(dma.raw)) (\(dmaWhy)): CRASH_ADDR_LOW_MAX for crashkernel=",
                source: "arch/arm64/mm/init.c zone_sizes_init / max_zone_phys, mainline 6.x"))
        if sc.kexec?.syscall == .kexecFileLoad {
            out.append(
                AppliedRule(
                    "purgatory",
                    "none: kexec_file_load enters the Image from the relocation routine (or cpu_soft_restart) "
                        + "with x0 = DTB; nothing checks a digest",
                    source: "arch/arm64/kernel/machine_kexec.c machine_kexec, kexec_image.c image_load, read in 6.x"))
        }
        return out
    }

    /// Where kexec_file_load looks for holes.
    static func placementRule(_ sc: Scenario, free: RangeSet, crashk: [AddressRange]) -> AppliedRule {
        if sc.kexec?.type == .crash {
            return AppliedRule(
                "placement_walk",
                "crashk_res only \(crashk.map(\.description).joined(separator: ", ")) (never crashk_low_res)",
                source: "kernel/kexec_file.c kexec_locate_mem_hole (crash: kexec_walk_memblock over crashk_res), 6.x")
        }
        let reserved = sc.machine.memblockReserved.count
        return AppliedRule(
            "placement_walk",
            "free memblock: RAM minus memblock.reserved (\(reserved) ranges given) and the crashkernel region, "
                + "\(free.ranges.count) free ranges",
            source: "kernel/kexec_file.c kexec_walk_memblock (for_each_free_mem_range), read in 6.x")
    }
}

extension Scenario {
    /// The arm64 policy with every rule resolved by the running kernel's version and config
    /// (`Arm64Rules`); nil on x86_64.
    public var effectiveArm64Policy: Arm64Policy? {
        guard var p = arm64Policy else { return nil }
        let v = machine.kernelVersion
        p.relocation = Arm64Rules.relocation(version: v, type: kexec?.type ?? .normal, override: p.relocation).0
        let scope = Arm64Rules.linearMap(
            version: v, config: machine.config, crashkernel: !machine.crashkernelRanges.isEmpty, override: p.mappings
        ).0
        p.mappings = scope == .wholeMapBasePages ? .basePages : .blocks
        return p
    }
}
