/// arm64's own crashkernel= reservation before it moved to reserve_crashkernel_generic.
///
/// Two generations are modelled, picked by the running kernel's version (CrashkernelRules.of):
///
/// - **5.10** (`arm64LowOnly`, before 5.19; read in Debian's linux-source-5.10 5.10.223,
///   arch/arm64/mm/init.c reserve_crashkernel and kernel/crash_core.c): only `crashkernel=X[@offset]`
///   and the range form. get_last_crashkernel(suffix NULL) skips values ending in `,high` / `,low`,
///   so `X,high` reserves nothing and prints nothing. A plain size is searched top-down,
///   2 MiB aligned, in [0, arm64_dma_phys_limit) (memblock_find_in_range), with no fallback; a size
///   is not compared with the RAM (parse_crashkernel_simple), so one too large fails the search. An
///   `@offset` is taken as given after three checks, each with its own message: inside memory
///   (memblock_is_region_memory), not overlapping memblock.reserved, 2 MiB aligned.
/// - **6.1** (`arm64NoFallback`, 5.19 ..< 6.2; read in Debian's linux-source-6.1 6.1.192,
///   arch/arm64/mm/init.c reserve_crashkernel): a plain size is searched in [0, arm64_dma_phys_limit)
///   only; `X,high` in [0, PHYS_MASK + 1) (top-down: the top of RAM), with a low part only when
///   `Y,low` is given (no DEFAULT_CRASH_KERNEL_LOW_SIZE in 6.1.192), reserved in
///   [0, arm64_dma_phys_limit) when the main range landed at or above it; `@offset` is
///   memblock_phys_alloc_range(size, 2 MiB, offset, offset + size), which fails for an unaligned or
///   busy offset with the same message as a failed search.
///
/// From 6.2 arm64 falls back from low to high memory (and back for `,high`) with a 128 MiB default
/// low part; that is the code kernel/crash_reserve.c took over as reserve_crashkernel_generic (read
/// in Debian's linux-source-6.12 6.12.95), modelled in CrashkernelByVersion. The 5.19 and 6.2
/// boundaries are mainline's ("arm64: kdump: Reimplement crashkernel=X", "arm64: kdump: Support
/// crashkernel=X fall back to reserve region above DMA zones"); only 5.10, 6.1 and 6.12 were read.
///
/// Both generations print `crashkernel reserved: 0x%016llx - 0x%016llx (%lld MB)` and search
/// memblock's free memory (memory minus memblock.reserved) top-down.
extension Crashkernel {
    /// arm64 5.10: arch/arm64/mm/init.c reserve_crashkernel (Debian 5.10.223).
    static func arm64LowOnly(
        _ spec: CrashkernelSpec, free: RangeSet, memory: MemoryMap, arch: CrashkernelArch,
        into out: inout CrashkernelOutcome
    ) {
        let align = arch.alignment
        let size = spec.size.alignedUpToPage
        switch spec.placement {
        case .high:
            out.failure = "\(spec): before 5.19 arm64 reads only crashkernel=X[@offset]; ,high and ,low are skipped"
            return
        case .fixed(let at) where at.raw != 0:
            guard let r = AddressRange(start: at, size: size), memory.usable.covers(r) else {
                out.messages = ["cannot reserve crashkernel: region is not memory"]
                out.failure = "\(size) at \(hex(at.raw)) is not all memory"
                return
            }
            guard free.covers(r) else {
                out.messages = ["cannot reserve crashkernel: region overlaps reserved memory"]
                out.failure = "\(size) at \(hex(at.raw)) overlaps memblock.reserved"
                return
            }
            guard at.isAligned(align) else {
                out.messages = ["cannot reserve crashkernel: base address is not 2MB aligned"]
                out.failure = "\(hex(at.raw)) is not \(align) aligned"
                return
            }
            out.ranges = [r]
        case .auto, .fixed:
            guard let b = allocTopDown(free, size: size, align: align, start: PhysAddr(0), end: arch.lowLimit) else {
                out.messages = ["cannot allocate crashkernel (size:\(hex(size.raw)))"]
                out.failure = "no \(align)-aligned free range of \(size) below \(hex(arch.lowLimit.raw))"
                return
            }
            out.ranges = [AddressRange(start: b, size: size)!]
        }
        out.messages = [reservedLine(out.ranges[0])]
    }

    /// arm64 6.1: arch/arm64/mm/init.c reserve_crashkernel and reserve_crashkernel_low (Debian 6.1.192).
    static func arm64NoFallback(
        _ spec: CrashkernelSpec, free: RangeSet, memory: MemoryMap, arch: CrashkernelArch,
        into out: inout CrashkernelOutcome
    ) {
        let align = arch.alignment
        let lowMax = arch.lowLimit
        let size = spec.size.alignedUpToPage
        var start = PhysAddr(0)
        var end = lowMax
        var lowSize = ByteCount.zero
        switch spec.placement {
        case .fixed(let at) where at.raw != 0:
            start = at
            end = at.adding(size) ?? PhysAddr(.max)
        case .high:
            end = arch.highLimit(memory)
            lowSize = spec.lowSize ?? .zero
        case .auto, .fixed:
            break
        }
        guard let base = allocTopDown(free, size: size, align: align, start: start, end: end) else {
            out.messages = ["cannot allocate crashkernel (size:\(hex(size.raw)))"]
            out.failure = "no \(align)-aligned free range of \(size) in [\(hex(start.raw)), \(hex(end.raw)))"
            return
        }
        // The main range lies at or above lowMax, so the low part (below lowMax) cannot meet it.
        finishHighAndLow(
            main: AddressRange(start: base, size: size)!, lowSize: lowSize, align: align, lowMax: lowMax, free: free,
            into: &out)
    }
}

extension ByteCount {
    /// PAGE_ALIGN with 4 KiB pages (Debian's arm64 kernels), saturating at the top.
    var alignedUpToPage: ByteCount {
        let (v, o) = raw.addingReportingOverflow(0xfff)
        return o ? ByteCount(raw) : ByteCount(v & ~0xfff)
    }
}
