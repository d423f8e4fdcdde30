/// `crashkernel=` reserved as a given kernel version reserves it, with that version's messages.
///
/// Two x86_64 codes are modelled, picked by the running kernel's version:
///
/// - **x86 reserve_crashkernel** (5.2 ..< 6.7; read in Debian's linux-source-6.1, 6.1.192,
///   arch/x86/kernel/setup.c): CRASH_ALIGN 16 MiB, CRASH_ADDR_LOW_MAX 4 GiB, CRASH_ADDR_HIGH_MAX
///   64 TiB. A plain size searches [16 MiB, 4 GiB) and then [16 MiB, 64 TiB); `,high` searches
///   [16 MiB, 64 TiB) at once. `size@offset` asks memblock for exactly that range at 1 MiB alignment
///   and fails if it gets anything else. A base at or above 4 GiB takes a low part
///   (reserve_crashkernel_low: `,low` or max(swiotlb + 8 MiB, 256 MiB), searched in [0, 4 GiB)).
/// - **reserve_crashkernel_generic** (6.7+ on x86_64, 6.2+ on arm64; read in kernel/crash_reserve.c
///   of torvalds/linux at 35c18f29, a 6.17+ tree with `,cma`, and of Debian's linux-source-6.12
///   6.12.95): a plain size searches [0, low max) and then [low max, high max) with the default low
///   part; `,high` searches [low max, high max) and then [0, low max); `size@offset` searches
///   [offset, offset + size) at CRASH_ALIGN. On arm64 (arch/arm64/include/asm/crash_reserve.h,
///   6.12.95) CRASH_ALIGN is 2 MiB, the low max arm64_dma_phys_limit, the default low part 128 MiB.
/// - **arm64 before 6.2**: arch/arm64/mm/init.c's own reserve_crashkernel, in two generations
///   (5.10 and 6.1), modelled in CrashkernelArm64.
///
/// Before 5.2 x86_64 searched only below 896 MiB (a stored pre-5.2 setup.c, torvalds/linux at
/// 007b7560); every modelled version (5.10 on) is later, so that rule is not modelled.
///
/// Both search memblock top-down (memblock_find_in_range_node) in memory that is RAM and not yet
/// reserved: the first 1 MiB, the running kernel's image, its initrd (`RAMDISK: [mem …]`) and the
/// early allocations made before the reservation (FirstKernelReservations).

/// Which reservation code a kernel runs.
public enum CrashkernelRules: String, Sendable, Equatable {
    /// arch/x86/kernel/setup.c reserve_crashkernel (5.2 ..< 6.7).
    case x86Legacy = "x86 reserve_crashkernel"
    /// kernel/crash_reserve.c reserve_crashkernel_generic (x86_64 from 6.7; arm64 from 6.2, whose own
    /// code it was before 6.9 moved it there).
    case generic = "reserve_crashkernel_generic"
    /// arch/arm64/mm/init.c reserve_crashkernel before 5.19 (read in 5.10.223): crashkernel=X[@offset]
    /// below the DMA limit only.
    case arm64LowOnly = "arm64 reserve_crashkernel (5.10: below the DMA limit only)"
    /// arch/arm64/mm/init.c reserve_crashkernel 5.19 ..< 6.2 (read in 6.1.192): `,high` without a
    /// default low part, no fallback between low and high memory.
    case arm64NoFallback = "arm64 reserve_crashkernel (6.1: ,high, no fallback)"

    /// x86_64 moved to the generic code in 6.7 ("x86: kdump: use generic interface to simplify
    /// crashkernel reservation code"). arm64: see CrashkernelArm64 for the boundaries.
    public static func of(_ arch: Arch, _ version: KernelVersion) -> CrashkernelRules {
        switch arch {
        case .x86_64: return version.atLeast(6, 7) ? .generic : .x86Legacy
        case .arm64:
            if !version.atLeast(5, 19) { return .arm64LowOnly }
            return version.atLeast(6, 2) ? .generic : .arm64NoFallback
        }
    }
}

/// What the first kernel had reserved in memblock when it reserved crashkernel=.
public struct FirstKernelReservations: Sendable, Equatable {
    /// Fixed reservations: the kernel image, the initrd, allocations a log names.
    public var ranges: [AddressRange]
    /// Sizes the kernel allocated top-down (memblock_alloc) before the reservation, in order:
    /// setup_log_buf's buffers. Placed before `ranges` is consulted for anything but room.
    public var allocations: [ByteCount]

    public init(ranges: [AddressRange] = [], allocations: [ByteCount] = []) {
        self.ranges = ranges
        self.allocations = allocations
    }

    public static let none = FirstKernelReservations()
    public var isEmpty: Bool { ranges.isEmpty && allocations.isEmpty }

    /// setup_log_buf(1) with `log_buf_len=len` (kernel/printk/printk.c, 6.1.192 and 6.12): the text
    /// buffer, then len >> PRB_AVGBITS (5) descriptors of 24 bytes (struct prb_desc) and as many
    /// struct printk_info of 88 bytes, three memblock_alloc calls in that order. Nothing when `len`
    /// is not above the built-in buffer (Debian: CONFIG_LOG_BUF_SHIFT 17, 128 KiB).
    public static func logBuffer(length len: ByteCount) -> [ByteCount] {
        guard len > .kib(128) else { return [] }
        let count = len.raw >> 5
        let (descs, o1) = count.multipliedReportingOverflow(by: 24)
        let (infos, o2) = count.multipliedReportingOverflow(by: 88)
        guard !o1, !o2 else { return [] }
        return [len, ByteCount(descs), ByteCount(infos)]
    }

    /// `log_buf_len=` of a kernel command line (memparse; the last one wins), rounded up to a power
    /// of two as log_buf_len_update does; nil when absent or unreadable.
    public static func logBufLen(commandLine: String) -> ByteCount? {
        var found: ByteCount?
        for word in commandLine.split(separator: " ") where word.hasPrefix("log_buf_len=") {
            var sc = Crashkernel.Scanner(word.dropFirst("log_buf_len=".count))
            guard let v = try? sc.memparse("log_buf_len", what: "a size"), v > 0, v <= 1 << 40 else { continue }
            var p: UInt64 = 1
            while p < v { p <<= 1 }
            found = ByteCount(p)
        }
        return found
    }
}

/// What a kernel does with a crashkernel= value: the ranges it reserves and what it prints.
public struct CrashkernelOutcome: Sendable, Equatable {
    public var version: KernelVersion
    public var rules: CrashkernelRules
    /// crashk_res first, then crashk_low_res when there is one; empty when nothing was reserved.
    public var ranges: [AddressRange]
    /// The lines the kernel prints, in its order (the low part's line comes before the main line).
    /// Empty when it prints nothing (a value it rejects without a word).
    public var messages: [String]
    /// Why nothing was reserved, in kexec-sim's words; nil when something was.
    public var failure: String?

    public var reserved: Bool { !ranges.isEmpty }
}

extension Crashkernel {
    /// x86's CRASH_ADDR_HIGH_MAX on 64-bit (both codes): 64 TiB.
    static let x86HighMax = PhysAddr(ByteCount.tib(64).raw)

    /// Parses and reserves `text` as `version` of the kernel does on `arch`, in `memory` minus what
    /// `early` reserved. Syntax errors throw; everything the kernel answers (a failure included) is
    /// an outcome.
    public static func reserve(
        _ text: String, in memory: MemoryMap, arch: CrashkernelArch, version: KernelVersion,
        early: FirstKernelReservations = .none
    ) throws(CrashkernelError) -> CrashkernelOutcome {
        let archName: Arch = arch == .x86_64 ? .x86_64 : .arm64
        let rules = CrashkernelRules.of(archName, version)
        var out = CrashkernelOutcome(version: version, rules: rules, ranges: [], messages: [], failure: nil)
        let spec: CrashkernelSpec
        do throws(CrashkernelError) {
            guard let s = try parse(text, systemRAM: memory.totalRAM) else {
                out.failure = "crashkernel=\(text) asks for nothing on \(memory.totalRAM) of RAM"
                if text.contains(":") { out.messages = ["crashkernel size resulted in zero bytes"] }
                return out
            }
            spec = s
        } catch {
            // The range form's "size below RAM" check reads as a syntax error to fixtures.
            var rangeTooLarge = false
            if case .syntax(let m) = error, m.contains("is not smaller than the RAM") { rangeTooLarge = true }
            if case .tooLarge = error {
                rangeTooLarge = rangeTooLarge || text.contains(":")
            } else if !rangeTooLarge {
                throw error
            }
            out.failure = error.description
            if rangeTooLarge {
                // parse_crashkernel_mem (6.1.192 and 5.10.223 kernel/crash_core.c; crash_reserve.c alike).
                out.messages = ["crashkernel: invalid size"]
            } else if rules == .x86Legacy {
                // 6.1 parses a plain size without comparing it to RAM: memblock finds no room.
                out.messages = ["crashkernel reservation failed - No suitable area found."]
            } else if rules == .arm64NoFallback || (rules == .arm64LowOnly && !text.contains(",high")),
                case .tooLarge(_, let size, _) = error
            {
                // arm64 before 6.2 does not compare the size with RAM either: the search fails.
                out.messages = ["cannot allocate crashkernel (size:\(hex(size.alignedUpToPage.raw)))"]
            }
            // Generic: parse_crashkernel returns -EINVAL for size >= system RAM, silently.
            return out
        }
        let free = freeMemory(memory, arch: arch, early: early)
        switch rules {
        case .x86Legacy: legacyX86(spec, free: free, memory: memory, version: version, into: &out)
        case .generic: generic(spec, free: free, memory: memory, arch: arch, into: &out)
        case .arm64LowOnly: arm64LowOnly(spec, free: free, memory: memory, arch: arch, into: &out)
        case .arm64NoFallback: arm64NoFallback(spec, free: free, memory: memory, arch: arch, into: &out)
        }
        // Before 5.13 reserve_real_mode() called crash_reserve_low_1M() (arch/x86/kernel/crash.c)
        // whenever crashkernel= was given, which printed first; 5.13 removed it when the whole low
        // 1 MiB became reserved anyway. Seen in Debian 5.10.262's log (Fixtures/kernel-truth/5.10).
        if archName == .x86_64 && version < KernelVersion(5, 13) {
            out.messages.insert("kexec: Reserving the low 1M of memory for crashkernel", at: 0)
        }
        return out
    }

    /// memblock's free memory at reservation time: usable RAM without the first 1 MiB (x86_64:
    /// reserved unconditionally since 5.13, and by trim_low_memory_range/realmode before), the given
    /// ranges, then each early allocation placed top-down (memblock_alloc: [PAGE_SIZE,
    /// current_limit), LOG_ALIGN alignment).
    public static func freeMemory(_ memory: MemoryMap, arch: CrashkernelArch, early: FirstKernelReservations)
        -> RangeSet
    {
        var free = memory.usable
        if arch == .x86_64, let firstMiB = AddressRange(start: PhysAddr(0), size: .mib(1)) { free.remove(firstMiB) }
        for r in early.ranges { free.remove(r) }
        for size in early.allocations {
            guard let b = allocTopDown(free, size: size, align: ByteCount(8), start: PhysAddr(0), end: PhysAddr(.max)),
                let r = AddressRange(start: b, size: size)
            else { continue }
            free.remove(r)
        }
        return free
    }

    /// 6.1.192 arch/x86/kernel/setup.c reserve_crashkernel and reserve_crashkernel_low.
    static func legacyX86(
        _ spec: CrashkernelSpec, free: RangeSet, memory: MemoryMap, version: KernelVersion,
        into out: inout CrashkernelOutcome
    ) {
        let align = ByteCount.mib(16)
        let lowMax = PhysAddr(1 << 32)
        let size = spec.size
        var base: PhysAddr
        switch spec.placement {
        case .fixed(let at) where at.raw != 0:
            // memblock_phys_alloc_range(size, SZ_1M, base, base + size) must return base.
            guard let end = at.adding(size),
                let got = allocTopDown(free, size: size, align: .mib(1), start: at, end: end), got == at
            else {
                out.messages = ["crashkernel reservation failed - memory is in use."]
                out.failure = "\(spec.size) at \(hex(at.raw)) is not free RAM (reserved, not RAM, or not 1 MiB aligned)"
                return
            }
            base = at
        case .auto, .fixed, .high:
            var found: PhysAddr?
            if spec.placement != .high {
                found = allocTopDown(free, size: size, align: align, start: PhysAddr(align.raw), end: lowMax)
            }
            if found == nil {
                found = allocTopDown(free, size: size, align: align, start: PhysAddr(align.raw), end: x86HighMax)
            }
            guard let b = found else {
                out.messages = ["crashkernel reservation failed - No suitable area found."]
                out.failure = "no 16 MiB-aligned free range of \(size) between 16 MiB and 64 TiB"
                return
            }
            base = b
        }
        let main = AddressRange(start: base, size: size)!
        let totalMB = memory.totalRAM.raw >> 20
        var low: AddressRange?
        if base >= lowMax {
            let lowSize = spec.lowSize ?? CrashkernelArch.x86_64.defaultLowSize
            if lowSize.raw > 0 {
                guard let lb = allocTopDown(free, size: lowSize, align: align, start: PhysAddr(0), end: lowMax) else {
                    out.messages = [
                        "Cannot reserve \(lowSize.raw >> 20)MB crashkernel low memory, please try smaller size."
                    ]
                    out.failure = "the low part of \(lowSize) does not fit below 4 GiB; the main range is freed"
                    return
                }
                low = AddressRange(start: lb, size: lowSize)!
                // "low RAM limit" = min(RAM, 4 GiB): 6.1.192's arch/x86/kernel/setup.c, and what Debian's
                // 5.10.262 printed too (Fixtures/kernel-truth/5.10/pc-8g-high.json).
                let tail = "low RAM limit: \(min(memory.totalRAM.raw, lowMax.raw) >> 20)MB"
                out.messages.append(
                    "Reserving \(lowSize.raw >> 20)MB of low memory at \(lb.raw >> 20)MB for crashkernel (\(tail))")
            }
        }
        out.messages.append(
            "Reserving \(size.raw >> 20)MB of memory at \(base.raw >> 20)MB for crashkernel (System RAM: \(totalMB)MB)")
        out.ranges = [main] + (low.map { [$0] } ?? [])
    }

    /// kernel/crash_reserve.c reserve_crashkernel_generic and reserve_crashkernel_low.
    static func generic(
        _ spec: CrashkernelSpec, free: RangeSet, memory: MemoryMap, arch: CrashkernelArch,
        into out: inout CrashkernelOutcome
    ) {
        let align = arch.alignment
        let lowMax = arch.lowLimit
        let highMax = arch == .x86_64 ? x86HighMax : arch.highLimit(memory)
        let size = spec.size
        var lowSize = ByteCount.zero
        var base: PhysAddr
        switch spec.placement {
        case .fixed(let at) where at.raw != 0:
            guard let end = at.adding(size), let got = allocTopDown(free, size: size, align: align, start: at, end: end)
            else {
                out.messages = ["crashkernel reservation failed - memory is in use."]
                out.failure = "\(size) at \(hex(at.raw)) is not free RAM (reserved, not RAM, or not \(align) aligned)"
                return
            }
            base = got
        case .high:
            lowSize = spec.lowSize ?? arch.defaultLowSize
            if let b = allocTopDown(free, size: size, align: align, start: lowMax, end: highMax) {
                base = b
            } else if let b = allocTopDown(free, size: size, align: align, start: PhysAddr(0), end: lowMax) {
                base = b
            } else {
                out.messages = ["cannot allocate crashkernel (size:\(hex(size.raw)))"]
                out.failure = "no \(align)-aligned free range of \(size) below \(hex(highMax.raw))"
                return
            }
        case .auto, .fixed:
            if let b = allocTopDown(free, size: size, align: align, start: PhysAddr(0), end: lowMax) {
                base = b
            } else if let b = allocTopDown(free, size: size, align: align, start: lowMax, end: highMax) {
                base = b
                lowSize = arch.defaultLowSize
            } else {
                out.messages = ["cannot allocate crashkernel (size:\(hex(size.raw)))"]
                out.failure = "no \(align)-aligned free range of \(size) below \(hex(highMax.raw))"
                return
            }
        }
        finishHighAndLow(
            main: AddressRange(start: base, size: size)!, lowSize: lowSize, align: align, lowMax: lowMax, free: free,
            into: &out)
    }

    /// The end both reserve_crashkernel_generic (kernel/crash_reserve.c, 6.12.95) and arm64's
    /// 6.1 reserve_crashkernel (arch/arm64/mm/init.c, 6.1.192) share: a main range at or above
    /// `lowMax` with a low size gets its low part top-down below `lowMax` (failing that, the main
    /// range is freed and the failure printed), then the `crashkernel reserved:` line; ranges main
    /// first.
    static func finishHighAndLow(
        main: AddressRange, lowSize: ByteCount, align: ByteCount, lowMax: PhysAddr, free: RangeSet,
        into out: inout CrashkernelOutcome
    ) {
        var low: AddressRange?
        if main.first >= lowMax, lowSize.raw > 0 {
            guard let lb = allocTopDown(free, size: lowSize, align: align, start: PhysAddr(0), end: lowMax) else {
                out.messages = ["cannot allocate crashkernel low memory (size:\(hex(lowSize.raw)))."]
                out.failure =
                    "the low part of \(lowSize) does not fit below \(hex(lowMax.raw)); the main range is freed"
                return
            }
            low = AddressRange(start: lb, size: lowSize)!
            out.messages.append(
                "crashkernel low memory reserved: \(hex0(lb.raw, 8)) - \(hex0(lb.raw + lowSize.raw, 8)) "
                    + "(\(lowSize.raw >> 20) MB)")
        }
        out.messages.append(reservedLine(main))
        out.ranges = [main] + (low.map { [$0] } ?? [])
    }

    /// `crashkernel reserved: 0x%016llx - 0x%016llx (%lld MB)` (the end is exclusive).
    static func reservedLine(_ r: AddressRange) -> String {
        "crashkernel reserved: \(hex0(r.first.raw, 16)) - \(hex0(r.endSaturated, 16)) (\(r.size.raw >> 20) MB)"
    }

    /// printf's `%#0Nllx`-like `0x%0Nllx`.
    static func hex0(_ v: UInt64, _ width: Int) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
