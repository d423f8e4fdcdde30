import KexecModel
import Kimage

/// x86_64 kexec_file_load placement as a given running kernel does it (kernel/kexec_file.c,
/// arch/x86/kernel/kexec-bzimage64.c, arch/x86/kernel/crash.c), rule by rule.
///
/// Each rule that changed over time is picked by `version` and listed in `applied` (the plan's
/// `rules`, the verdict's `rule.*` evidence) with the file and the kernel version it was read in.
/// Sources read: Debian's linux-source-5.10 (5.10.262) for the 5.10 side, linux-source-6.1
/// (6.1.192) for the 6.1 side of every rule; mainline torvalds/linux (the stored copy, newer than
/// 6.17: it has kexec_random_range_start and KHO) for the new side; the change's own commit or
/// patch for the version it entered; and the recorded placement of Debian's 5.10.262, 6.1.192 and
/// 6.12.95 under QEMU (Fixtures/kernel-truth) for the sizes only a built kernel knows (its
/// purgatory, its configuration). A version between two read ones (5.14, 5.15) gets each rule by
/// the mainline release its change entered; stable backports are modelled only where named.
public struct X86FileLoadRules: Sendable, Equatable {
    public var version: KernelVersion

    public init(version: KernelVersion) { self.version = version }

    // MARK: The RAM walk

    /// kexec_walk_resources for a normal image: v6.8+ walks System RAM in reverse when the buffer
    /// is top-down (walk_system_ram_res_rev, b3ba234171cd "kexec_file: load kernel at top of system
    /// RAM if required"); before, always forward (walk_system_ram_res), so the first range that
    /// fits wins and the buffer goes top-down inside it. 6.1.192 still walks forward (not
    /// backported). Neither side leaves out the crashkernel region for a normal image: Debian's
    /// 6.1 places its kernel at 0xbc000000 inside crashk_res 0xaf000000-0xbeffffff (pc-4g), and
    /// mainline's only exclusion hook, arch_check_excluded_range, is powerpc's.
    public var reverseWalk: Bool { version.atLeast(6, 8) }

    /// locate_mem_hole_top_down's first candidate: before v6.8 `end - memsz` (one byte low, so a
    /// range ending on a page boundary gives a buffer one alignment step below its top: Debian
    /// 6.1's crash purgatory sits at 0xbeffa000, not 0xbeffb000, under crashk_res end 0xbeffffff);
    /// v6.8+ `end - memsz + 1` (Yuntao Wang, "kexec_file: fix incorrect temp_start value in
    /// locate_mem_hole_top_down()", December 2023; Debian's 6.12.95 places it at 0xbeffb000).
    public var topDownOffByOne: Bool { !version.atLeast(6, 8) }

    // MARK: Buffers

    /// The kernel's buf_min: v6.9+ max(pref_address, MIN_KERNEL_LOAD_ADDR) (43b1d3e68ee7 "kexec:
    /// Allocate kernel above bzImage's pref_address", tip x86/boot February 2024); before,
    /// MIN_KERNEL_LOAD_ADDR (1 MiB) whatever pref_address says.
    public func kernelBufMin(prefAddress: UInt64) -> PhysAddr {
        let minimum: UInt64 = 0x10_0000
        return PhysAddr(version.atLeast(6, 9) ? max(prefAddress, minimum) : minimum)
    }

    /// The purgatory segment, as kexec_purgatory_setup_kbuf (kernel/kexec_file.c, the same in
    /// 5.10.262 and 6.1.192) sizes it from the built purgatory.ro: every SHF_ALLOC PROGBITS section
    /// at its alignment, the sum aligned to .bss's (4 KiB: purgatory's stack), plus .bss for memsz.
    /// .data is 4 KiB aligned, so the text in front of it decides whether it starts at 0x2000 or
    /// 0x3000. Before v5.11, lib/crypto/sha256.c (linked into purgatory, arch/x86/purgatory/Makefile)
    /// unrolled all 64 rounds of sha256_transform: Debian 5.10.262's purgatory has .text 0x2351, so
    /// .data sits at 0x3000: bufsz 0x5000, memsz 0x6000 (what its kernel prints). 63642d5c141f
    /// ("crypto: lib/sha256 - Unroll SHA256 loop 8 times intead of 64", in Herbert Xu's crypto pull
    /// for 5.11, based on v5.10-rc1) put the round constants in .rodata and loops over them: 6.1.192's
    /// .text is 0x119f and 6.12.95's 0x1323, .data at 0x2000: bufsz 0x4000, memsz 0x5000. The
    /// section tables were read from the purgatory.ro each Debian image embeds; 5.10.262's
    /// lib/crypto/sha256.c still has the 64 unrolled rounds (not backported to 5.10.y). Our own
    /// purgatory runs inside (its bytes first, zeros up to bufsz).
    public var purgatorySize: (bufsz: ByteCount, memsz: ByteCount) {
        version.atLeast(5, 11) ? (ByteCount(0x4000), ByteCount(0x5000)) : (ByteCount(0x5000), ByteCount(0x6000))
    }

    /// With CRASH_HOTPLUG (6.6+) purgatory's digest leaves the elfcorehdr out (it is rewritten on
    /// CPU and memory hotplug): kernel/kexec_file.c kexec_calculate_store_digests, v6.6 patch.
    public var elfcorehdrExcludedFromDigest: Bool { version.atLeast(6, 6) }

    /// MAX_ELFCOREHDR_STR_LEN: room for `elfcorehdr=0x<64-bit value>` in the command line.
    public static let maxElfcorehdrStrLen: UInt64 = 30
    /// sizeof(struct boot_params).
    public static let bootParamsStruct: UInt64 = 0x1000

    /// Whether bzImage64_load makes room for a SETUP_RNG_SEED setup_data (16 + RNG_SEED_LENGTH 32
    /// bytes): from v6.0 (68b8e9713c8e "x86/setup: Use rng seeds from setup_data", tip x86/kdump
    /// July 2022, merged for 6.0); 6.1.192 has it, 5.10.262's kexec-bzimage64.c does not (not
    /// backported to 5.10.y: its 5.10 kernel prints 0x10c0 where 6.1 prints 0x10f0).
    public var bootParamsRngSeed: Bool { version.atLeast(6, 0) }

    /// bzImage64_load's boot_params segment: ALIGN(sizeof(boot_params) + cmdline_len +
    /// MAX_ELFCOREHDR_STR_LEN, 16) + ALIGN(efi_map_sz, 16) + setup_data + efi_setup_data (16 + 96)
    /// + (v6.0+, `bootParamsRngSeed`) setup_data + RNG_SEED_LENGTH (16 + 32): read in 5.10.262,
    /// 6.1.192 and mainline. Debian builds neither IMA_KEXEC nor KEXEC_HANDOVER (their setup_data
    /// would add 16 + 16 / 16 + 16): the truth's 0x10f0 (6.1, 6.12) and 0x10c0 (5.10) for a
    /// 45-byte command line are exactly this. `cmdlineLength` counts the NUL kexec-tools passes.
    /// `efiRuntimeMapSize` is efi_get_runtime_map_size (drivers/firmware/efi/runtime-map.c:
    /// entries × descriptor size), 0 on a BIOS boot.
    public func bootParamsBufsz(cmdlineLength: Int, efiRuntimeMapSize: ByteCount = ByteCount(0)) -> ByteCount {
        func align16(_ v: UInt64) -> UInt64 { (v + 15) & ~15 }
        let params = align16(Self.bootParamsStruct + UInt64(cmdlineLength) + Self.maxElfcorehdrStrLen)
        let rngSeed: UInt64 = bootParamsRngSeed ? 16 + 32 : 0
        return ByteCount(params + align16(efiRuntimeMapSize.raw) + 16 + 96 + rngSeed)
    }

    /// Where bzImage64_load puts the SETUP_EFI setup_data in the boot_params buffer:
    /// efi_setup_data_offset = efi_map_offset + ALIGN(efi_map_sz, 16), efi_map_offset =
    /// params_cmdline_sz (arch/x86/kernel/kexec-bzimage64.c, v6.1.192).
    public static func efiSetupDataOffset(cmdlineLength: Int, efiRuntimeMapSize: UInt64 = 0) -> Int {
        func align16(_ v: UInt64) -> UInt64 { (v + 15) & ~15 }
        return Int(align16(bootParamsStruct + UInt64(cmdlineLength) + maxElfcorehdrStrLen) + align16(efiRuntimeMapSize))
    }

    /// What a crash load's command line becomes: `elfcorehdr=0x<addr> ` in front
    /// (setup_cmdline: "elfcorehdr=0x%lx ", image->elf_load_addr).
    public static func crashCommandLine(_ cmdline: String, elfcorehdr: PhysAddr) -> String {
        "elfcorehdr=0x" + String(elfcorehdr.raw, radix: 16) + " " + cmdline
    }

    /// NR_CPUS of Debian's amd64 kernels (KEXEC-FACTS §9).
    public static let nrCPUs: UInt64 = 8192
    /// CONFIG_CRASH_MAX_MEMORY_RANGES (default 8192).
    public static let crashMaxMemoryRanges: UInt64 = 8192

    /// The elfcorehdr segment (crash_load_segments). bufsz: ALIGN(Elf64_Ehdr + phdrs × 56, 4096)
    /// with one phdr per CPU, vmcoreinfo, each System RAM range left after cutting out the low
    /// 1 MiB and the crashkernel ranges, and the kernel text (crash_prepare_elf64_headers, the same
    /// in 5.10.262 and 6.1.192; Debian 5.10's e_phnum 5 on pc-2g is exactly this). memsz: the
    /// same before v6.6; v6.6+ with CRASH_HOTPLUG room for hotplug, Ehdr + (2 + NR_CPUS +
    /// CRASH_MAX_MEMORY_RANGES) × 56 (Debian 6.12.95 prints memsz 0xe1000 = PAGE_ALIGN(0xe00b0)).
    /// `cpus`: the CPUs the first kernel has possible (1: the truth cases run with -smp 1).
    public func elfcorehdr(ramRanges: Int, cpus: Int = 1) -> (bufsz: ByteCount, memsz: ByteCount) {
        let phdrs = UInt64(cpus) + 1 + UInt64(ramRanges) + 1
        let raw = 64 + 56 * phdrs
        let bufsz = (raw + 0xfff) & ~0xfff
        guard version.atLeast(6, 6) else { return (ByteCount(bufsz), ByteCount(bufsz)) }
        let hotplug = 64 + 56 * (2 + Self.nrCPUs + Self.crashMaxMemoryRanges)
        return (ByteCount(bufsz), ByteCount(max(bufsz, (hotplug + 0xfff) & ~0xfff)))
    }

    // MARK: Synthetic kernels

    /// A synthetic `kernel: { size: S }` behaves like a bzImage whose protected-mode payload is S
    /// bytes: pref_address 16 MiB (CONFIG_PHYSICAL_START), kernel_alignment 2 MiB (Debian's
    /// CONFIG_PHYSICAL_ALIGN: 6.12.95 places its kernel at 0x3c600000 and 0x13c800000, only 2 MiB
    /// aligned; every 6.1 placement is 2 MiB aligned as well).
    public static let syntheticPrefAddress: UInt64 = 0x100_0000
    public static let syntheticKernelAlignment = ByteCount.mib(2)

    /// init_size of a synthetic kernel when the fixture gives none: 4 × the payload, page aligned.
    /// The estimate follows Debian's images: 6.12.95's payload 0xb757c0 has init_size 0x37ee000
    /// (4.9×, zstd), 6.1.192's 0x7d87c0 has 0x3f98000 (8.1×, xz); 4× is the lower, so the kernel
    /// segment is at least the decompressed image's size and the run's copy stays affordable.
    public static func syntheticInitSize(payload: ByteCount) -> ByteCount? {
        let (v, o) = payload.raw.multipliedReportingOverflow(by: 4)
        return o ? nil : ByteCount(v).alignedUp(kexecPageSize)
    }

    // MARK: Evidence

    /// The rules a plan of this kind applied, for `Plan.rules`.
    public func applied(crash: Bool, syntheticKernel: Bool) -> [AppliedRule] {
        let k = "read in"
        var out: [AppliedRule] = []
        if crash {
            out.append(
                AppliedRule(
                    "placement_walk",
                    "crash image: crashk_res only (never crashk_low_res), elfcorehdr bottom-up at its start, the rest top-down",
                    source:
                        "kernel/kexec_file.c kexec_walk_resources, arch/x86/kernel/crash.c crash_load_segments, \(k) 6.1.192 and mainline"
                ))
        } else if reverseWalk {
            out.append(
                AppliedRule(
                    "placement_walk", "reverse: System RAM from the top (walk_system_ram_res_rev), top-down inside",
                    source: "kernel/kexec_file.c kexec_walk_resources, b3ba234171cd, \(k) mainline (v6.8+)"))
        } else {
            out.append(
                AppliedRule(
                    "placement_walk",
                    "forward: first System RAM range that fits (walk_system_ram_res), top-down inside",
                    source: "kernel/kexec_file.c kexec_walk_resources, \(k) 5.10.262 and 6.1.192"))
        }
        out.append(
            topDownOffByOne
                ? AppliedRule(
                    "top_down_start", "end - memsz (one byte low: a page-aligned end loses one step)",
                    source: "kernel/kexec_file.c locate_mem_hole_top_down, \(k) 5.10.262 and 6.1.192")
                : AppliedRule(
                    "top_down_start", "end - memsz + 1",
                    source: "kernel/kexec_file.c locate_mem_hole_top_down, \(k) mainline (fixed for v6.8)"))
        out.append(
            version.atLeast(6, 9)
                ? AppliedRule(
                    "kernel_buf_min", "max(pref_address, 1 MiB)",
                    source: "arch/x86/kernel/kexec-bzimage64.c bzImage64_load, 43b1d3e68ee7, \(k) mainline (v6.9+)")
                : AppliedRule(
                    "kernel_buf_min", "MIN_KERNEL_LOAD_ADDR (1 MiB)",
                    source: "arch/x86/kernel/kexec-bzimage64.c bzImage64_load, \(k) 5.10.262 and 6.1.192"))
        let purgatory = purgatorySize
        out.append(
            AppliedRule(
                "purgatory_size",
                "bufsz 0x\(String(purgatory.bufsz.raw, radix: 16)), memsz 0x\(String(purgatory.memsz.raw, radix: 16))",
                source: version.atLeast(5, 11)
                    ? "kernel/kexec_file.c kexec_purgatory_setup_kbuf over Debian 6.1.192 / 6.12.95's purgatory.ro (sha256 rolled up by 63642d5c141f, v5.11)"
                    : "kernel/kexec_file.c kexec_purgatory_setup_kbuf over Debian 5.10.262's purgatory.ro (64 unrolled sha256 rounds, before v5.11)"
            ))
        out.append(
            bootParamsRngSeed
                ? AppliedRule(
                    "boot_params_size",
                    "ALIGN(4096 + cmdline + 30, 16) + ALIGN(efi_map, 16) + 16 + 96 + 16 + 32 (RNG seed; no IMA, no KHO setup_data)",
                    source:
                        "arch/x86/kernel/kexec-bzimage64.c bzImage64_load, 68b8e9713c8e (v6.0), \(k) 6.1.192 and mainline"
                )
                : AppliedRule(
                    "boot_params_size", "ALIGN(4096 + cmdline + 30, 16) + ALIGN(efi_map, 16) + 16 + 96 (no RNG seed)",
                    source:
                        "arch/x86/kernel/kexec-bzimage64.c bzImage64_load, \(k) 5.10.262 (before 68b8e9713c8e, v6.0)"))
        if crash {
            out.append(
                version.atLeast(6, 6)
                    ? AppliedRule(
                        "elfcorehdr_size", "CRASH_HOTPLUG: memsz 64 + (2 + NR_CPUS + 8192) x 56",
                        source: "arch/x86/kernel/crash.c crash_load_segments (v6.6+); memsz measured on Debian 6.12.95")
                    : AppliedRule(
                        "elfcorehdr_size", "memsz = bufsz = ALIGN(64 + (CPUs + 2 + RAM ranges) x 56, 4096)",
                        source: "kernel/kexec_file.c crash_prepare_elf64_headers, \(k) 5.10.262 and 6.1.192"))
        }
        if syntheticKernel {
            out.append(
                AppliedRule(
                    "synthetic_kernel", "bzImage-like: pref_address 16 MiB, kernel_alignment 2 MiB, init_size 4 x size",
                    source: "kexec-sim estimate from Debian 6.1.192 / 6.12.95 images (Fixtures/kernel-truth)"))
        }
        return out
    }
}

extension X86FileLoadRules {
    /// crashk_res among the machine's crashkernel ranges: the only one, or with a low part
    /// (`,high`, or a plain size that fell back above 4 GiB) the higher one; crashk_low_res, the
    /// low part, is never used for placement (kexec_walk_resources walks crashk_res only).
    public static func crashkRes(_ ranges: [AddressRange]) -> AddressRange? {
        ranges.max { $0.first < $1.first }
    }

    /// The low 1 MiB elf_header_exclude_ranges always cuts out ("always reserved";
    /// arch/x86/kernel/crash.c in 5.10.262, 6.1.192 and 6.12.95 alike).
    public static let lowMegabyte = AddressRange(first: PhysAddr(0), last: PhysAddr(0xf_ffff))!

    /// How many System RAM ranges the ELF core header describes: each System RAM resource
    /// (walk_system_ram_res) with the low 1 MiB and the crashkernel ranges cut out of it
    /// (elf_header_exclude_ranges), empty pieces dropped.
    public static func ramRangesOutside(_ ram: [AddressRange], _ cut: [AddressRange]) -> Int {
        var pieces = ram
        for c in [lowMegabyte] + cut {
            pieces = pieces.flatMap { r -> [AddressRange] in
                guard r.overlaps(c) else { return [r] }
                var out: [AddressRange] = []
                if r.first < c.first, let below = AddressRange(first: r.first, last: PhysAddr(c.first.raw - 1)) {
                    out.append(below)
                }
                if c.last < r.last, let above = AddressRange(first: PhysAddr(c.last.raw + 1), last: r.last) {
                    out.append(above)
                }
                return out
            }
        }
        return pieces.count
    }
}
