/// The decoded form of a fixture (see ../shared/DESIGN.md "Fixture format").
/// FixtureDecoder.swift turns YAML into these; every field keeps where it came from.

public enum Arch: String, Sendable, CaseIterable { case x86_64, arm64 }
public enum Platform: String, Sendable, CaseIterable { case generic, uv }
public enum PagingLevels: String, Sendable, CaseIterable {
    case fourLevel = "4-level"
    case fiveLevel = "5-level"
    public var levels: Int { self == .fourLevel ? 4 : 5 }
}

/// arm64: whether the first kernel unmaps the crashkernel region from its linear map
/// (set_memory_valid(…, 0), 2023) so nothing can stamp the loaded crash kernel.
public enum CrashkernelProtection: String, Sendable, CaseIterable { case none, unmapped }

public struct Machine: Sendable {
    public var name: String?
    public var arch: Arch
    public var platform: Platform
    public var memory: MemoryMap
    /// Ranges a mapping must never cover (UV BIOS-reserved).
    public var hazards: [AddressRange]
    /// Movable / hot-removable ranges.
    public var hotpluggable: [AddressRange]
    /// `crashkernel=` text as given on the first kernel's command line.
    public var crashkernel: String?
    /// Reserved crashkernel ranges given directly (as a boot log prints them).
    public var crashkernelRanges: [AddressRange]
    /// EFI system table address, mapped by init_pgtable when present (map_efi_systab).
    public var efiSystemTable: PhysAddr?
    /// The EFI configuration table array (`efi.config_tables` of the fixture: the system table's
    /// `tables` field) and its entry count (`nr_tables`). Since v6.12 (stable: 6.1.113, 6.6.55,
    /// 6.10.14, 6.11.3) init_pgtable maps it too (arch/x86/kernel/machine_kexec_64.c map_efi_systab).
    public var efiConfigTables: EfiConfigTables?
    /// Bytes of the EFI runtime memory map the first kernel keeps (`efi.runtime_map_size`:
    /// efi_get_runtime_map_size, entries × descriptor size, drivers/firmware/efi/runtime-map.c;
    /// /sys/firmware/efi/runtime-map lists the entries). kexec_file_load copies it into the
    /// boot_params segment (bzImage64_load). nil: none (a BIOS boot).
    public var efiRuntimeMapSize: ByteCount?
    /// `mem=` limit of the first kernel: RAM above it is not direct-mapped (pfn_mapped).
    public var memLimit: ByteCount?
    public var paging: PagingLevels
    /// arm64: nil means by the running kernel's version (`Arm64Rules.protection`).
    public var crashkernelProtection: CrashkernelProtection?
    /// The running (first) kernel's version (`machine.kernel`, a log's banner, or `--kernel`);
    /// nil: the newest modelled (`kernelVersion`).
    public var kernel: KernelVersion?
    /// What the first kernel had reserved in memblock before crashkernel= (`memblock_reserved`,
    /// an imported log's RAMDISK, image and log buffer); the reservation searches around it.
    public var earlyReservations: FirstKernelReservations = .none
    /// Where `crashkernelRanges` came from: only `.parameter` ranges are recomputed for another version.
    public var crashkernelOrigin: CrashkernelOrigin = .none
    /// arm64: the DMA zone limit an imported log gives (the low limit of the reservation).
    public var dmaZoneLimit: PhysAddr?
    /// arm64: the first kernel's config (`machine.config`), Debian's by default.
    public var config: Arm64KernelConfig = .debian
    /// arm64: the CPU's ID_AA64MMFR0_EL1 (`machine.id_aa64mmfr0`): PARange and the FEAT_LPA2
    /// TGran fields; by default 48-bit PAs without FEAT_LPA2.
    public var idAA64MMFR0 = Arm64MMFR0(physicalAddressBits: 48)
    /// Reservations memblock made after crashkernel= that an imported log names (CMA and DMA
    /// pools, memblock=debug lines); with `earlyReservations` they make `memblockReserved`.
    public var laterReservations: [AddressRange] = []
    /// Ranges memblock.reserved held when kexec ran: what was reserved before crashkernel=
    /// (`machine.memblock_reserved`, an imported log's image, initrd and log buffer) and after it
    /// (CMA and pools an imported log names). kexec_file_load on arm64 places nothing there.
    public var memblockReserved: [AddressRange] { earlyReservations.ranges + laterReservations }
    /// arm64: the end (exclusive) of the CPU addresses the device tree's dma-ranges reach
    /// (of_dma_get_max_cpu_address + 1, `machine.dma_ranges_limit`); nil: no dma-ranges limit.
    public var dmaRangesLimit: PhysAddr?
    /// x86_64: the CPU a followed next kernel sees through CPUID (`machine.cpu`); nil: the engine's.
    public var cpu: X86CpuModel?
    /// Possible CPUs (`machine.cpus`): one PT_NOTE each in a crash load's ELF core header.
    public var cpus: Int = 1
    /// x86_64: boot_params.acpi_rsdp_addr of the first kernel (`machine.acpi_rsdp`), which
    /// kexec-tools reads from /sys/kernel/boot_params and appends as `acpi_rsdp=` to a crash
    /// kernel's command line (kexec/arch/i386/crashdump-x86.c cmdline_add_efi, 2.0.25).
    public var acpiRsdp: PhysAddr?
    /// x86_64 EFI boots: the entries of /sys/firmware/efi/runtime-map (`machine.efi_runtime_map`;
    /// it exists only when the first kernel booted through EFI with /sys/firmware/efi/systab),
    /// which kexec-tools passes on as an EFI memory map segment (setup_efi_data, 2.0.25); 0: none.
    public var efiRuntimeMapEntries: Int = 0
    /// The first kernel's /proc/iomem as it was read (an import of it, a truth recording); nil:
    /// derived from the memory map (`Machine.iomemView`).
    public var iomem: [IomemResource]?
    /// arm64: the first kernel's /sys/firmware/fdt, which kexec-tools edits into the next kernel's
    /// DTB; nil: a tree built from the memory map.
    public var firstKernelFdt: [UInt8]?
    /// The NUMA nodes' memory (`machine.numa_nodes`: node N is the Nth range); empty: one node.
    public var numaNodes: [AddressRange] = []
    /// Kexec HandOver state of the first kernel (`machine.kho`, v6.16+); nil: KHO off.
    public var kho: KhoConfig?
    public var source: String

    /// The version whose rules apply.
    public var kernelVersion: KernelVersion { kernel ?? .newestModelled }

    public init(
        name: String? = nil, arch: Arch, platform: Platform = .generic, memory: MemoryMap,
        hazards: [AddressRange] = [], hotpluggable: [AddressRange] = [], crashkernel: String? = nil,
        crashkernelRanges: [AddressRange] = [], efiSystemTable: PhysAddr? = nil, memLimit: ByteCount? = nil,
        paging: PagingLevels = .fourLevel, source: String = "<memory>"
    ) {
        self.name = name
        self.arch = arch
        self.platform = platform
        self.memory = memory
        self.hazards = hazards
        self.hotpluggable = hotpluggable
        self.crashkernel = crashkernel
        self.crashkernelRanges = crashkernelRanges
        self.efiSystemTable = efiSystemTable
        self.memLimit = memLimit
        self.paging = paging
        self.source = source
    }
}

public enum KexecSyscall: String, Sendable { case kexecLoad = "kexec_load", kexecFileLoad = "kexec_file_load" }
public enum ImageType: String, Sendable { case normal, crash }
public enum PlacementOrder: String, Sendable { case topDown = "top-down", bottomUp = "bottom-up" }

/// Who chooses kexec_load's segments (`kexec.loader`): the fixture itself (`user`, the segments it
/// lists), or Debian 12's kexec-tools 2.0.25 (`kexec-tools`: `kexec -l` / `kexec -p` place the
/// kernel, initrd, boot data and their own purgatory, see KexecTools in KexecSim).
public enum KexecLoader: String, Sendable, CaseIterable { case user, kexecTools = "kexec-tools" }

/// An initrd the tool builds itself (`initrd: { builtin: test-init }`).
public enum BuiltinInitrd: String, Sendable, CaseIterable {
    /// The test initrd: a newc cpio with /init from Sources/GuestCode/c/test-init (arm64), which
    /// prints `kexec-sim: /init reached`, its command line and /proc/vmcore's size, then powers off.
    case testInit = "test-init"
}

/// Contents of a kernel or initrd: a synthetic payload of a size, a file, or (initrd only) a
/// built-in one.
public struct PayloadSpec: Sendable, Equatable {
    public var size: ByteCount?
    public var file: String?
    public var builtin: BuiltinInitrd?
    /// A synthetic kernel's init_size (`kernel: { size, init_size }`): the x86_64 kernel segment's
    /// memsz before page alignment. nil: estimated from `size`.
    public var initSize: ByteCount?
    /// A synthetic bzImage's real-mode setup part, (setup_sects + 1) × 512 bytes
    /// (`kernel: { size, setup_size }`), which kexec-tools sizes real_mode_data by; nil: Debian
    /// 6.1's and 6.12's 0x5000 (setup_sects 39).
    public var setupSize: ByteCount?
    public init(
        size: ByteCount? = nil, file: String? = nil, initSize: ByteCount? = nil, setupSize: ByteCount? = nil,
        builtin: BuiltinInitrd? = nil
    ) {
        self.size = size
        self.file = file
        self.builtin = builtin
        self.initSize = initSize
        self.setupSize = setupSize
    }
}

/// A kexec_load segment with a user-given destination.
public struct SegmentSpec: Sendable, Equatable {
    public var name: String
    public var mem: PhysAddr
    public var memsz: ByteCount
    /// Bytes of buffer (<= memsz, else EINVAL); defaults to memsz.
    public var bufsz: ByteCount
    public var source: SourceLocation?
    public init(name: String, mem: PhysAddr, memsz: ByteCount, bufsz: ByteCount, source: SourceLocation? = nil) {
        self.name = name
        self.mem = mem
        self.memsz = memsz
        self.bufsz = bufsz
        self.source = source
    }
}

/// Deliberate damage applied after planning, to reproduce a bug.
public enum Injection: Sendable, Equatable {
    /// Store a digest in purgatory that does not match the segments.
    case wrongDigest
    /// Flip one byte of the named segment's source data at `offset` after the digest was taken.
    case flipSourceByte(segment: String, offset: ByteCount)
    /// A corrupted kimage list: IND_DONE replaced by a link back to the first indirection page
    /// (relocate_kernel swaps pages forever).
    case listCycle
    /// The list sends one more page to the control page: relocate_kernel overwrites its own code.
    case overwriteControlPage
    /// The list walks a destination over every page from 1 MiB up, forever (a runaway copy).
    case scribble
    /// relocate_kernel returns to this address instead of purgatory.
    case startAddress(PhysAddr)
    /// Purgatory's first instruction is replaced by an invalid opcode (ud2).
    case invalidOpcode
    /// The identity map's leaf over the start address (purgatory's entry) has NX set: the jump
    /// there faults on the fetch (EFER.NXE is on, as the first kernel leaves it).
    case nxStart
    /// While the relocation runs, the first kernel writes one byte at this physical address (a CPU
    /// that did not stop, or a device still doing the DMA it was set up for): memory that must not
    /// change does, and the run ends in `stray-write` naming the page.
    case firstKernelWrite(PhysAddr)
    /// A kernel before the KHO scratch-overlap check (e38f65d317df, or built without
    /// CONFIG_KEXEC_HANDOVER_DEBUG): memory preserved in scratch is accepted and handed over.
    case khoBeforeScratchCheck
    /// The first kernel hands the next kernel a pointer that is not where its boot_params (x86_64
    /// rsi) or DTB (arm64 x0) lie: purgatory's `entry_arg` (or, on arm64 kexec_file_load without
    /// purgatory, the DTB argument of the relocation routine) carries it instead of the real one.
    case handoffPointer(HandoffPointer)
}

/// The pointer a `handoff-pointer` injection hands over: an address, or the real boot_params / DTB
/// address moved on by a byte count (a loader that miscomputed it).
public enum HandoffPointer: Sendable, Equatable {
    case address(PhysAddr)
    case offset(ByteCount)

    /// The pointer handed over instead of `real`; nil when `real + offset` does not fit 64 bits.
    public func pointer(real: PhysAddr) -> PhysAddr? {
        switch self {
        case .address(let a): return a
        case .offset(let n):
            let (sum, overflow) = real.raw.addingReportingOverflow(n.raw)
            return overflow ? nil : PhysAddr(sum)
        }
    }
}

extension KexecRequest {
    /// The argument the next kernel is handed: `real` (boot_params / the DTB), or the injected
    /// `handoff-pointer` (the last one when a fixture gives several; nil when `real + offset`
    /// overflows).
    public func handedArgument(real: PhysAddr) -> PhysAddr? {
        var handed: PhysAddr? = real
        for case .handoffPointer(let h) in inject { handed = h.pointer(real: real) }
        return handed
    }
}

public struct KexecRequest: Sendable {
    public var syscall: KexecSyscall
    public var type: ImageType
    public var kernel: PayloadSpec?
    public var initrd: PayloadSpec?
    public var cmdline: String
    public var placement: PlacementOrder
    /// kexec_load only: the segments as userspace passes them.
    public var segments: [SegmentSpec]
    /// kexec_load only: entry point (defaults to the first segment's start + 0x200).
    public var entry: PhysAddr?
    public var inject: [Injection]
    /// kexec_load only: who places the segments (`user`: `segments`; `kexec-tools`: the tool).
    public var loader: KexecLoader = .user
    /// kexec-tools on x86_64: getrandom(GRND_NONBLOCK) gave 32 bytes, so setup_rng_seed adds an
    /// RNG seed setup_data segment (kexec/arch/i386/x86-linux-setup.c, 2.0.25). False when the
    /// first kernel's random pool was not yet initialized (early boot under QEMU TCG, where the
    /// kernel-truth recordings ran). `kexec.rng_seed`.
    public var rngSeed: Bool = true
    public init(
        syscall: KexecSyscall = .kexecFileLoad, type: ImageType = .normal, kernel: PayloadSpec? = nil,
        initrd: PayloadSpec? = nil, cmdline: String = "console=ttyS0", placement: PlacementOrder = .topDown,
        segments: [SegmentSpec] = [], entry: PhysAddr? = nil, inject: [Injection] = []
    ) {
        self.syscall = syscall
        self.type = type
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.placement = placement
        self.segments = segments
        self.entry = entry
        self.inject = inject
    }
}

public enum VerdictKind: String, Sendable, CaseIterable, Codable {
    case landed
    case rejected
    case pageFault = "page-fault"
    case halt
    case hang
    case strayWrite = "stray-write"
    case corruption
    /// `--follow`: the next kernel's own memory lines differ from the memory kexec handed it.
    case memoryMismatch = "memory-mismatch"
}

/// How far `--follow` runs the next kernel (`follow:` in a fixture, `--until` on the command
/// line): the first exception it handles through its own vectors (x86_64: the bzImage
/// decompressor's page-fault handler, installed by load_stage2_idt after sev_enable and the
/// relocation, arch/x86/boot/compressed/head_64.S v6.1.192), its `Linux version` banner, its own
/// view of memory (the `Memory:` line, after the zone and node ranges on arm64, the e820 table on
/// x86_64), or the marker its initrd's /init prints. Ordered: a later goal implies the earlier
/// ones (`handler` only where the kernel takes an exception before its banner: x86_64).
public enum FollowGoal: String, Sendable, CaseIterable, Comparable {
    case handler, banner, memory
    case initProcess = "init"

    public static func < (a: FollowGoal, b: FollowGoal) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

public struct Expectation: Sendable, Equatable {
    public var verdict: VerdictKind
    /// page-fault: faulting address; stray-write: page; corruption: the differing address.
    public var address: UInt64?
    /// rejected: EINVAL, EADDRNOTAVAIL, ENOMEM, EBUSY.
    public var errno: String?
    /// `--follow`: the milestone the next kernel must have reached (`expect: { milestone: init }`).
    public var milestone: FollowGoal?
    public init(verdict: VerdictKind, address: UInt64? = nil, errno: String? = nil, milestone: FollowGoal? = nil) {
        self.verdict = verdict
        self.address = address
        self.errno = errno
        self.milestone = milestone
    }
}

public struct Scenario: Sendable {
    public var name: String
    public var machine: Machine
    /// nil for a machine fixture alone.
    public var kexec: KexecRequest?
    /// Further loads of a Kexec HandOver chain (`kexec:` given as a list): each runs from the
    /// kernel the previous one started, which reuses the scratch it was handed.
    public var chain: [KexecRequest] = []
    /// The kernel's table / relocation policy, of `machine.arch`'s case: the decoder only builds
    /// that one, `init` defaults to it, and the planners refuse a scenario whose case differs.
    public var policy: Policy
    public var nextKernelTouches: [PhysAddr]
    public var expect: Expectation?
    /// Expectations under other identity-map policies (`expect_by_policy:`, x86_64 only), for
    /// policy matrices.
    public var expectByPolicy: [IdentityMapPolicy: Expectation] = [:]
    /// Instruction budget for the whole run (nil: the default).
    public var budget: UInt64?
    /// Follow the next kernel past the hand-off, up to this milestone (`follow:`; nil: stop at
    /// the entry).
    public var follow: FollowGoal?
    /// The most wall time, in seconds, the follow run needs (`follow_timeout:`; nil: the run's
    /// `--follow-timeout`): a fixture whose kernel gives up early in a spin says so, and the
    /// smaller of the two limits applies.
    public var followTimeoutSeconds: UInt64?
    /// How purgatory's sha256 runs (`purgatory:`; nil: the default, `native`).
    public var purgatory: PurgatoryMode?
    public var file: String
    public init(
        name: String, machine: Machine, kexec: KexecRequest?, policy: Policy? = nil,
        nextKernelTouches: [PhysAddr] = [], expect: Expectation? = nil, budget: UInt64? = nil, file: String = "<memory>"
    ) {
        self.name = name
        self.machine = machine
        self.kexec = kexec
        self.policy = policy ?? .default(for: machine.arch)
        self.nextKernelTouches = nextKernelTouches
        self.expect = expect
        self.budget = budget
        self.file = file
    }

    /// What the run should give under `policy`: `expect_by_policy[policy]`, else `expect` when
    /// `policy` is the fixture's own (x86_64), else nothing.
    public func expectation(for policy: IdentityMapPolicy) -> Expectation? {
        expectByPolicy[policy] ?? (policy == x86Policy?.identityMap ? expect : nil)
    }
}

/// Where the EFI configuration table array lies: `nr_tables` entries of efi_config_table_64_t
/// (a 16-byte GUID and a u64 pointer, include/linux/efi.h) from `address` on x86_64.
public struct EfiConfigTables: Sendable, Equatable {
    public var address: PhysAddr
    public var count: UInt64
    /// sizeof(efi_config_table_64_t).
    public static let entrySize: UInt64 = 24

    public init(address: PhysAddr, count: UInt64) {
        self.address = address
        self.count = count
    }

    /// [address, address + count × 24), nil when empty or past 2^64.
    public var range: AddressRange? {
        let (bytes, o1) = count.multipliedReportingOverflow(by: Self.entrySize)
        guard !o1, bytes > 0 else { return nil }
        return AddressRange(start: address, size: ByteCount(bytes))
    }
}
