/// What an arm64 machine's first kernel was built and booted with, as far as kexec's rules depend
/// on it: the kernel config (`machine.config`), the memory memblock had reserved when kexec ran
/// (`machine.memblock_reserved`), and the device tree's DMA reach (`machine.dma_ranges_limit`).

/// The first kernel's build options that kexec rules depend on (`machine.config`). The default is
/// Debian's arm64 config (/boot/config-6.1.0-57-arm64: CONFIG_ZONE_DMA=y, CONFIG_ZONE_DMA32=y,
/// CONFIG_RODATA_FULL_DEFAULT_ENABLED=y, 4K pages, VA_BITS=48).
public struct Arm64KernelConfig: Sendable, Equatable {
    /// CONFIG_ZONE_DMA / CONFIG_ZONE_DMA32 (`zone_dma`).
    public var zoneDma: Bool
    /// rodata=full (CONFIG_RODATA_FULL_DEFAULT_ENABLED, or `rodata=full` on the command line)
    /// (`rodata_full`): can_set_direct_map() is true and the linear map uses base pages only.
    public var rodataFull: Bool
    /// CONFIG_ARM64_VA_BITS_52 (`va_bits: 52`; 48, the default, is every other choice): the
    /// kernel uses 52-bit VAs when the CPU can (FEAT_LPA2 for 4K / 16K pages, v6.9+), else
    /// VA_BITS_MIN (`Arm64Rules.virtualAddressing`).
    public var vaBits52: Bool

    public init(zoneDma: Bool = true, rodataFull: Bool = true, vaBits52: Bool = false) {
        self.zoneDma = zoneDma
        self.rodataFull = rodataFull
        self.vaBits52 = vaBits52
    }

    /// Debian's arm64 kernels (6.1, 6.12).
    public static let debian = Arm64KernelConfig()
}

extension Machine {
    /// PHYS_MASK + 1 with 48-bit physical addresses (CONFIG_ARM64_PA_BITS=48).
    public static let arm64PhysLimit = PhysAddr(1 << 48)

    /// arm64_dma_phys_limit, the end (exclusive) of ZONE_DMA, which is also CRASH_ADDR_LOW_MAX
    /// (arch/arm64/mm/init.c zone_sizes_init and max_zone_phys, mainline 6.x, read in the
    /// "max_zone_phys(phys_addr_t zone_limit)" form):
    /// - no ZONE_DMA / ZONE_DMA32 in the config: PHYS_MASK + 1;
    /// - zone_dma_limit = min(U32_MAX, the highest CPU address the device tree's dma-ranges reach);
    /// - RAM that starts above 4 GiB: the zone covers all of it (zone_limit = PHYS_ADDR_MAX);
    ///   RAM that starts above zone_dma_limit: the limit becomes U32_MAX;
    /// - the result is min(zone_limit, end of DRAM - 1) + 1.
    public var arm64DmaLimit: PhysAddr {
        guard config.zoneDma else { return Machine.arm64PhysLimit }
        let ram = memory.usable.ranges
        guard let start = ram.first?.first, let last = ram.last?.last else { return PhysAddr(1 << 32) }
        var zoneLimit: UInt64 = 0xffff_ffff
        if let dt = dmaRangesLimit, dt.raw > 0 { zoneLimit = min(zoneLimit, dt.raw - 1) }
        if start.raw > 0xffff_ffff {
            zoneLimit = .max
        } else if start.raw > zoneLimit {
            zoneLimit = 0xffff_ffff
        }
        let top = min(zoneLimit, last.raw)
        return top == .max ? PhysAddr(.max) : PhysAddr(top + 1)
    }

    /// Memory the first kernel's memblock had free when kexec_file_load walked it
    /// (kexec_walk_memblock's for_each_free_mem_range): usable RAM minus memblock.reserved.
    public var freeMemblock: RangeSet {
        var free = memory.usable
        for r in memblockReserved { free.remove(r) }
        return free
    }
}
