import KexecModel

/// The size of the elfcorehdr segment a crash load adds (arch/x86/kernel/crash.c
/// crash_load_segments and prepare_elf_headers, kernel/kexec_file.c crash_prepare_elf64_headers).
/// Placement is the planner's; this only says how big the buffer and the segment are.
public enum ElfCoreHeader {
    /// sizeof(Elf64_Ehdr), sizeof(Elf64_Phdr).
    static let ehdrSize: UInt64 = 64
    static let phdrSize: UInt64 = 56
    /// ELF_CORE_HEADER_ALIGN.
    static let align: UInt64 = 4096

    public struct Size: Sendable, Equatable {
        /// The headers as built: one PT_NOTE per possible CPU, one for vmcoreinfo, one PT_LOAD per
        /// RAM range left after the exclusions, one for the kernel text; aligned to 4 KiB.
        public var bufsz: ByteCount
        /// The segment: `bufsz` before CRASH_HOTPLUG; with it (v6.6+) room for every CPU and memory
        /// range hotplug may add, page aligned by kexec_add_buffer.
        public var memsz: ByteCount
        /// v6.6+ (CRASH_HOTPLUG): kexec_calculate_store_digests skips the elfcorehdr segment, which
        /// hotplug rewrites after the load.
        public var excludedFromDigest: Bool
        /// The RAM ranges counted (System RAM minus [0, 1 MiB) and the crashkernel ranges).
        public var ramRanges: Int
        public var rule: AppliedRule
    }

    /// The elfcorehdr of a crash load on `machine` under its kernel version, with `possibleCPUs`
    /// (num_possible_cpus()), Debian's CONFIG_NR_CPUS_DEFAULT (8192, MAXSMP) and
    /// CONFIG_CRASH_MAX_MEMORY_RANGES (8192) for the hotplug sizing.
    public static func size(
        machine: Machine, possibleCPUs: Int = 1, nrCpusDefault: UInt64 = 8192, crashMaxMemoryRanges: UInt64 = 8192
    ) -> Size {
        let ranges = excludedRanges(machine)
        let phdrs = UInt64(max(possibleCPUs, 1)) + 1 + UInt64(ranges.count) + 1
        let buf = alignUp(ehdrSize + phdrs * phdrSize)
        guard machine.kernelVersion.atLeast(6, 6) else {
            return Size(
                bufsz: ByteCount(buf), memsz: ByteCount(buf), excludedFromDigest: false, ramRanges: ranges.count,
                rule: AppliedRule(
                    "elfcorehdr_size",
                    "\(hex(buf)): 64 + 56 × (\(possibleCPUs) CPUs + vmcoreinfo + \(ranges.count) RAM ranges + kernel text)",
                    source: "arch/x86/kernel/crash.c prepare_elf_headers, kernel/kexec_file.c "
                        + "crash_prepare_elf64_headers, read in 6.1.192"))
        }
        let pnum = 2 + nrCpusDefault + crashMaxMemoryRanges
        let mem = alignUp(pnum * phdrSize + ehdrSize)
        return Size(
            bufsz: ByteCount(buf), memsz: ByteCount(mem), excludedFromDigest: true, ramRanges: ranges.count,
            rule: AppliedRule(
                "elfcorehdr_size",
                "memsz \(hex(mem)): (2 + \(nrCpusDefault) + \(crashMaxMemoryRanges)) × 56 + 64 (CRASH_HOTPLUG), "
                    + "bufsz \(hex(buf)); not in the digest",
                source:
                    "arch/x86/kernel/crash.c crash_load_segments (CRASH_HOTPLUG, ea53ad9cf73b), read in the v6.6 patch"
            ))
    }

    /// walk_system_ram_res, then elf_header_exclude_ranges: [0, 1 MiB), crashk_res and
    /// crashk_low_res cut out (crash_exclude_mem_range splits a range around a hole inside it).
    static func excludedRanges(_ machine: Machine) -> [AddressRange] {
        var out = machine.memory.usable.ranges
        let holes = [X86Hole.firstMiB] + machine.crashkernelRanges
        for hole in holes {
            var next: [AddressRange] = []
            for r in out {
                guard r.intersection(hole) != nil else {
                    next.append(r)
                    continue
                }
                if r.first < hole.first, let below = AddressRange(first: r.first, last: PhysAddr(hole.first.raw - 1)) {
                    next.append(below)
                }
                if r.last > hole.last, let above = AddressRange(first: PhysAddr(hole.last.raw + 1), last: r.last) {
                    next.append(above)
                }
            }
            out = next
        }
        return out
    }

    static func alignUp(_ v: UInt64) -> UInt64 { (v + align - 1) & ~(align - 1) }
}

private enum X86Hole {
    static let firstMiB = AddressRange(first: PhysAddr(0), last: PhysAddr(0xf_ffff))!
}
