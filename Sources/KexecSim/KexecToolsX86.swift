import KexecModel
import Kimage

/// What Debian 12's kexec-tools 2.0.25 does for `kexec -l` / `kexec -p` of a bzImage on x86_64
/// (kexec_load, `loader: kexec-tools`): read from kexec/arch/x86_64/kexec-bzImage64.c
/// do_bzImage64_load, kexec/arch/i386/kexec-x86-common.c get_memory_ranges,
/// kexec/arch/i386/x86-linux-setup.c and kexec/arch/i386/crashdump-x86.c (KexecToolsX86Crash),
/// all of kexec-tools 2.0.25 (Debian 1:2.0.25-3+deb12u3; its patches change none of this).
///
/// The memory ranges are /sys/firmware/memmap: the firmware's e820 table (the machine's memory
/// map), RAM starting below 0x400 moved up to 0x400 (the real-mode IVT). A crash load narrows
/// mem_min / mem_max to the last "Crash kernel" range of /proc/iomem.
///
/// The segments, in the order kexec-tools adds them (each through locate_hole, `KexecToolsMemory`):
/// 1. crash only: the backup region and the ELF core header (load_crashdump_segments);
/// 2. its purgatory: top-down, at least 0x3000 (`KexecToolsPurgatory` gives its size);
/// 3. real_mode_data and the command line: max(setup part, 4 KiB) + command line with its NUL +
///    PURGATORY_CMDLINE_SIZE (64) bytes, top-down, 16-byte aligned, at least 0x3000;
/// 4. the kernel: the file past its setup sectors as the buffer, PAGE_ALIGN(init_size) in memory,
///    on kernel_alignment, at least 1 MiB, top-down;
/// 5. the initrd: page aligned, at least 16 MiB (INITRD_BASE), no upper limit, top-down;
/// 6. setup_linux_system_parameters' setup_data, each bottom-up from 1 MiB: under EFI the SETUP_EFI
///    entry (16 + 96 bytes) and the runtime map (40 bytes per entry), e820 entries past 128
///    (SETUP_E820_EXT), and the RNG seed (16 + 32 bytes) when getrandom had entropy.
/// kexec_load receives them sorted by address; the entry is purgatory's entry64 (its base +
/// 0x760), which jumps to the kernel at its load address + 0x200 with rsi = real_mode_data.
enum KexecToolsX86 {
    /// x86-linux-setup.h / kexec-bzImage64.c constants.
    static let purgatoryCmdlineSize: UInt64 = 64
    static let commandLineSize = 2048
    static let minPurgatory: UInt64 = 0x3000
    static let minKernel: UInt64 = 0x10_0000
    static let initrdBase: UInt64 = 0x100_0000
    static let setupDataMin: UInt64 = 0x10_0000
    /// struct setup_data's header (next, type, len) and struct efi_setup_data.
    static let setupDataHeader: UInt64 = 16
    static let efiSetupData: UInt64 = 96
    /// sizeof(struct efi_mem_descriptor).
    static let efiMemDescriptor: UInt64 = 40
    /// E820MAX and sizeof(struct e820entry).
    static let e820Max = 128
    static let e820Entry: UInt64 = 20
    /// The setup part of a synthetic kernel: Debian's 6.1 and 6.12 images have setup_sects 39,
    /// (39 + 1) × 512 bytes.
    static let syntheticSetupBytes: UInt64 = 0x5000

    /// The kernel as do_bzImage64_load reads it.
    struct Kernel {
        /// (setup_sects + 1) × 512: the real-mode part, not loaded.
        var setupBytes: UInt64
        /// The rest of the file: the kernel segment's buffer.
        var payloadBytes: UInt64
        var initSize: UInt64
        var alignment: UInt64
        var cmdlineSize: UInt64
        /// xloadflags XLF_EFI_KEXEC: kexec-tools passes EFI data (bzImage_support_efi_boot).
        var efiKexec: Bool
        var file: RealImages.X86Kernel?
    }

    /// The layout and what the run needs to build the contents.
    struct Layout {
        var segments: [KexecToolsMemory.Placed]
        var entry: PhysAddr
        var purgatoryBase: PhysAddr
        var realModeData: PhysAddr
        var kernelLoad: PhysAddr
        var commandLine: String
        /// Offset of the command line inside real_mode_data (max(setup part, 4 KiB)).
        var commandLineOffset: UInt64
        /// The e820 table handed on (memory ranges, or the crash kernel's memmap).
        var e820: [KexecToolsMemory.MemoryRange]
        var e820Types: [UInt32]
        var rules: [AppliedRule]
    }

    /// /sys/firmware/memmap as get_memory_ranges reads it on x86 (firmware_memmap.c sorts it,
    /// fixup_memory_ranges merges same-type overlaps, the first RAM range below 0x400 starts at
    /// 0x400), with each range's e820 type.
    static func firmwareRanges(_ m: Machine) -> [(range: KexecToolsMemory.MemoryRange, type: UInt32)] {
        var out: [(KexecToolsMemory.MemoryRange, UInt32)] = m.memory.regions.sorted { $0.range.first < $1.range.first }
            .map {
                (
                    KexecToolsMemory.MemoryRange(
                        first: $0.range.first.raw, last: $0.range.last.raw, isRAM: $0.type == .usable),
                    e820Type($0.type)
                )
            }
        if let i = out.firstIndex(where: { $0.0.isRAM && $0.0.first < 0x400 }) {
            out[i].0.first = 0x400
        }
        return out
    }

    /// The e820 type kexec-tools hands on for a range type (add_e820_map_from_mr).
    static func e820Type(_ t: RegionType) -> UInt32 {
        switch t {
        case .usable: return 1
        case .acpi: return 3
        case .nvs: return 4
        case .persistent: return 12
        case .reserved, .softReserved, .unusable: return 2
        }
    }

    /// Places everything `kexec -l` / `kexec -p` places; a failure is kexec-tools' (EFAILED) with
    /// its message.
    static func layout(machine: Machine, request req: KexecRequest, kernel: Kernel, initrdSize: UInt64?)
        throws(Rejection) -> Layout
    {
        let purgatory = KexecToolsPurgatory.x86_64
        let firmware = firmwareRanges(machine)
        var mem = KexecToolsMemory(ranges: firmware.map(\.range))
        var rules: [AppliedRule] = [
            AppliedRule(
                "kexec_tools_memory_ranges",
                "/sys/firmware/memmap (the firmware e820 table), RAM from 0x400",
                source: "kexec/arch/i386/kexec-x86-common.c get_memory_ranges, kexec-tools 2.0.25")
        ]
        let userLine = req.cmdline
        guard UInt64(userLine.utf8.count + 1) <= kernel.cmdlineSize else {
            throw Rejection(
                .EFAILED, check: "kexec-tools do_bzImage64_load",
                "Kernel command line too long for kernel! (\(userLine.utf8.count + 1) bytes, "
                    + "cmdline_size \(kernel.cmdlineSize))")
        }
        var commandLine = userLine
        var crashMemmap: [KexecToolsMemory.MemoryRange]?
        var crashTypes: [UInt32] = []
        if req.type == .crash {
            let crash = try KexecToolsX86Crash.loadCrashdumpSegments(
                machine: machine, memory: &mem, commandLine: userLine, efiKexec: kernel.efiKexec)
            commandLine = crash.commandLine
            crashMemmap = crash.memmap.map(\.range)
            crashTypes = crash.memmap.map(\.type)
            rules += crash.rules
        }
        let cmdlineLen = UInt64(commandLine.utf8.count + 1)
        let fp = purgatory.footprint
        let pBase = try mem.addBuffer(
            .purgatory, bufsz: fp.bufsz, memsz: fp.memsz, align: fp.align, min: minPurgatory, max: .max,
            bottomUp: false)
        let setupNeeded = max(kernel.setupBytes, 4096)
        let setupSize = setupNeeded + cmdlineLen + purgatoryCmdlineSize
        let rmBase = try mem.addBuffer(
            .bootParams, bufsz: setupSize, memsz: setupSize, align: 16, min: minPurgatory, max: .max, bottomUp: false)
        guard let kMemsz = KexecToolsMemory.alignUp(kernel.initSize, 4096) else {
            throw Rejection(.EFAILED, check: "kexec-tools do_bzImage64_load", "init_size overflows")
        }
        let kBase = try mem.addBuffer(
            .kernel, bufsz: kernel.payloadBytes, memsz: kMemsz, align: kernel.alignment, min: minKernel, max: .max,
            bottomUp: false)
        if let initrdSize {
            try mem.addBuffer(
                .initrd, bufsz: initrdSize, memsz: initrdSize, align: 4096, min: initrdBase, max: .max, bottomUp: false)
        }
        rules.append(
            AppliedRule(
                "kexec_tools_bzImage64",
                "purgatory, real_mode_data (0x\(String(setupSize, radix: 16)) bytes), kernel (align "
                    + "0x\(String(kernel.alignment, radix: 16))), initrd: each top-down through locate_hole",
                source: "kexec/arch/x86_64/kexec-bzImage64.c do_bzImage64_load, kexec-tools 2.0.25"))
        // setup_linux_system_parameters: setup_data, bottom-up from 1 MiB.
        var setupData: [String] = []
        if kernel.efiKexec, machine.efiRuntimeMapEntries > 0 {
            try mem.addBuffer(
                .setupData, bufsz: setupDataHeader + efiSetupData, memsz: setupDataHeader + efiSetupData, align: 4096,
                min: setupDataMin, max: .max, bottomUp: true)
            let mapSize = UInt64(machine.efiRuntimeMapEntries) * efiMemDescriptor
            try mem.addBuffer(
                .efiMemmap, bufsz: mapSize, memsz: mapSize, align: 4096, min: setupDataMin, max: .max, bottomUp: true)
            setupData.append("SETUP_EFI + runtime map (\(machine.efiRuntimeMapEntries) entries)")
        }
        let e820 = crashMemmap ?? firmware.map(\.range)
        let e820Types = crashMemmap == nil ? firmware.map(\.type) : crashTypes
        if e820.count > e820Max {
            let ext = setupDataHeader + UInt64(e820.count - e820Max) * e820Entry
            try mem.addBuffer(
                .e820Ext, bufsz: ext, memsz: ext, align: 4096, min: setupDataMin, max: .max, bottomUp: true)
            setupData.append("SETUP_E820_EXT (\(e820.count - e820Max) entries)")
        }
        if req.rngSeed {
            try mem.addBuffer(
                .rngSeed, bufsz: setupDataHeader + 32, memsz: setupDataHeader + 32, align: 4096, min: setupDataMin,
                max: .max, bottomUp: true)
            setupData.append("SETUP_RNG_SEED")
        }
        rules.append(
            AppliedRule(
                "kexec_tools_setup_data",
                setupData.isEmpty
                    ? "none (no EFI runtime map, at most 128 e820 entries, no RNG seed)"
                    : setupData.joined(separator: ", ") + ": bottom-up from 1 MiB",
                source: "kexec/arch/i386/x86-linux-setup.c setup_linux_system_parameters, kexec-tools 2.0.25"))
        // my_load: every segment in a memory range, then sorted without overlaps.
        for s in mem.segments where !mem.validRange(first: s.mem, last: s.mem + s.memsz - 1) {
            throw Rejection(
                .EFAILED, check: "kexec-tools my_load",
                "Invalid memory segment 0x\(String(s.mem, radix: 16)) - 0x\(String(s.mem + s.memsz, radix: 16))")
        }
        try mem.sortSegments()
        return Layout(
            segments: mem.sorted, entry: PhysAddr(pBase + purgatory.entry), purgatoryBase: PhysAddr(pBase),
            realModeData: PhysAddr(rmBase), kernelLoad: PhysAddr(kBase), commandLine: commandLine,
            commandLineOffset: setupNeeded, e820: e820, e820Types: e820Types, rules: rules)
    }
}
