import KexecModel
import Kimage

/// kexec-tools' crash-load segments on x86_64 (kexec/arch/i386/crashdump-x86.c
/// load_crashdump_segments, kexec/crashdump-elf.c, kexec-tools 2.0.25), from the first kernel's
/// /proc/iomem (`Machine.iomemView`):
/// - the crash memory ranges: every iomem line (at any depth) named System RAM (a substring
///   match), ACPI Tables, ACPI Non-volatile Storage, Persistent Memory (legacy), Persistent
///   Memory, reserved or Reserved, in file order; each "Crash kernel" range is cut out of them
///   (exclude_region);
/// - the backup region: the first RAM range ending at or below 0xa0000 (else 0–640 KiB), its size
///   rounded up to 1 KiB, placed top-down (1 KiB alignment, i.e. a page) inside the crash window;
/// - the ELF core header: Elf64_Ehdr + Elf64_Phdr × (possible CPUs + vmcoreinfo + every crash
///   memory range + the kernel text), rounded up to 1 KiB; memsz at least 16 KiB; top-down;
/// - the command line: the user's, then ` acpi_rsdp=0x…` (boot_params.acpi_rsdp_addr) unless the
///   kernel takes EFI data and the EFI runtime map exists, then ` elfcorehdr=<KiB>K`;
/// - the crash kernel's e820 (memmap_p): the backup source and the crashkernel ranges as RAM minus
///   the two segments (delete_memmap), plus the ACPI, NVS, reserved and persistent ranges.
enum KexecToolsX86Crash {
    static let elfHeader: UInt64 = 64
    static let programHeader: UInt64 = 56
    static let elfCoreHeaderAlign: UInt64 = 1024
    static let elfHeaderMinMemsz: UInt64 = 16 * 1024

    struct Result {
        var commandLine: String
        var memmap: [(range: KexecToolsMemory.MemoryRange, type: UInt32)]
        var rules: [AppliedRule]
    }

    /// kexec-tools' RANGE_* for an iomem name (get_crash_memory_ranges); nil: not a crash range.
    static func crashRangeType(_ name: String) -> UInt32? {
        if name.contains("System RAM") { return 1 }
        switch name {
        case "ACPI Tables": return 3
        case "ACPI Non-volatile Storage": return 4
        case "Persistent Memory (legacy)", "Persistent Memory": return 12
        case "reserved", "Reserved": return 2
        default: return nil
        }
    }

    /// exclude_region, as kexec-tools has it: a range that straddles the hole is cut in two (the
    /// upper part inserted after it, as RAM), one that touches an end is trimmed.
    static func exclude(
        _ list: inout [(range: KexecToolsMemory.MemoryRange, type: UInt32)], first: UInt64, last: UInt64
    ) {
        var insert: (Int, (KexecToolsMemory.MemoryRange, UInt32))?
        for i in list.indices {
            let (ms, me) = (list[i].range.first, list[i].range.last)
            guard first < me && last > ms else { continue }
            // Unsigned arithmetic as in C: a hole starting below the range wraps its end.
            if first != ms && last != me {
                list[i].range.last = first &- 1
                insert = (i + 1, (KexecToolsMemory.MemoryRange(first: last &+ 1, last: me, isRAM: true), 1))
            } else if first != ms {
                list[i].range.last = first &- 1
            } else {
                list[i].range.first = last &+ 1
            }
        }
        if let (at, r) = insert { list.insert((range: r.0, type: r.1), at: at) }
    }

    static func loadCrashdumpSegments(
        machine: Machine, memory mem: inout KexecToolsMemory, commandLine userLine: String, efiKexec: Bool
    ) throws(Rejection) -> Result {
        let iomem = machine.iomemView
        let reserved = iomem.filter { $0.name == "Crash kernel" }.map(\.range)
        guard let window = reserved.last else {
            throw Rejection(
                .EFAILED, check: "kexec-tools is_crashkernel_mem_reserved",
                "Memory for crashkernel is not reserved (no \"Crash kernel\" in /proc/iomem)")
        }
        // get_memory_ranges: a crash load goes into the last Crash kernel range only.
        mem.memMin = max(mem.memMin, window.first.raw)
        mem.memMax = min(mem.memMax, window.last.raw)
        var ranges: [(range: KexecToolsMemory.MemoryRange, type: UInt32)] = iomem.compactMap { r in
            crashRangeType(r.name).map {
                (KexecToolsMemory.MemoryRange(first: r.range.first.raw, last: r.range.last.raw, isRAM: $0 == 1), $0)
            }
        }
        for c in reserved { exclude(&ranges, first: c.first.raw, last: c.last.raw) }
        // get_backup_area.
        var backupStart: UInt64 = 0
        var backupSize: UInt64 = 0xa0000
        if let b = ranges.first(where: { $0.range.isRAM && $0.range.last <= 0xa0000 }) {  // no wrap: last ≤ 640 KiB
            backupStart = b.range.first
            backupSize = b.range.last - b.range.first + 1
        }
        var memmap = KexecToolsMemmap()
        try memmap.add(first: backupStart, size: backupSize, type: 1)
        for c in reserved { try memmap.add(first: c.first.raw, size: c.size.raw, type: 1) }
        let backupSz = (backupSize + 1023) & ~UInt64(1023)
        let backup = try mem.addBuffer(
            .backup, bufsz: backupSz, memsz: backupSz, align: 1024, min: 0, max: .max, bottomUp: false)
        try memmap.delete(first: backup, size: backupSz)
        // crash_create_elf64_headers: nr_cpus = sysconf(_SC_NPROCESSORS_CONF), vmcoreinfo present,
        // the kernel text PT_LOAD (kern_size from /proc/kcore) present.
        let phdrs = UInt64(max(machine.cpus, 1)) + 1 + UInt64(ranges.count) + 1
        let hdrBufsz = (elfHeader + phdrs * programHeader + elfCoreHeaderAlign - 1) & ~(elfCoreHeaderAlign - 1)
        let hdrMemsz = max(hdrBufsz, elfHeaderMinMemsz)
        let hdr = try mem.addBuffer(
            .elfcorehdr, bufsz: hdrBufsz, memsz: hdrMemsz, align: 1024, min: 0, max: .max, bottomUp: false)
        try memmap.delete(first: hdr, size: hdrMemsz)
        var line = userLine
        let efiData = efiKexec && machine.efiRuntimeMapEntries > 0
        if !efiData, let rsdp = machine.acpiRsdp, rsdp.raw != 0 {
            line += " acpi_rsdp=0x\(String(rsdp.raw, radix: 16))"
        }
        line += " elfcorehdr=\(hdr / 1024)K"
        guard line.utf8.count <= KexecToolsX86.commandLineSize - 1 else {
            throw Rejection(.EFAILED, check: "kexec-tools cmdline_add_elfcorehdr", "Command line overflow")
        }
        for r in ranges where [2, 3, 4, 12].contains(r.type) {
            let (size, o) = (r.range.last - r.range.first).addingReportingOverflow(1)
            if !o { try? memmap.add(first: r.range.first, size: size, type: r.type) }
        }
        let rules = [
            AppliedRule(
                "kexec_tools_crash",
                "window \(window) (the last Crash kernel range); backup 0x\(String(backupSz, radix: 16)) bytes of "
                    + "[0x\(String(backupStart, radix: 16)), +0x\(String(backupSize, radix: 16))); ELF core header "
                    + "0x\(String(hdrBufsz, radix: 16)) bytes (\(phdrs) program headers, \(ranges.count) crash ranges), "
                    + "memsz 0x\(String(hdrMemsz, radix: 16)); both top-down",
                source: "kexec/arch/i386/crashdump-x86.c load_crashdump_segments, kexec-tools 2.0.25")
        ]
        return Result(commandLine: line, memmap: memmap.entries, rules: rules)
    }
}

/// The crash kernel's memory map kexec-tools builds (crashdump-x86.c add_memmap / delete_memmap,
/// 2.0.25): sorted, no overlaps, RAM chunks on 1 KiB boundaries, at most CRASH_MAX_MEMMAP_NR
/// (1024) entries.
struct KexecToolsMemmap {
    static let maxEntries = 1024
    var entries: [(range: KexecToolsMemory.MemoryRange, type: UInt32)] = []

    mutating func add(first: UInt64, size: UInt64, type: UInt32) throws(Rejection) {
        var (addr, size) = (first, size)
        guard size > 0, addr <= UInt64.max - (size - 1) else {
            throw Rejection(.EFAILED, check: "kexec-tools add_memmap", "range past the end of the address space")
        }
        if type == 1, addr % 1024 != 0 || size % 1024 != 0 {
            let end = (addr &+ size) & ~UInt64(1023)
            guard addr <= UInt64.max - 1023 else { return }
            addr = (addr + 1023) & ~UInt64(1023)
            guard addr < end else { return }
            size = end - addr
        }
        guard entries.count < Self.maxEntries - 1 else {
            throw Rejection(.EFAILED, check: "kexec-tools add_memmap", "memmap full")
        }
        let last = addr + size - 1
        guard !entries.contains(where: { $0.range.first <= last && $0.range.last >= addr }) else {
            throw Rejection(.EFAILED, check: "kexec-tools add_memmap", "overlapping region")
        }
        let at = entries.firstIndex { $0.range.first > last } ?? entries.count
        entries.insert((KexecToolsMemory.MemoryRange(first: addr, last: last, isRAM: type == 1), type), at: at)
    }

    mutating func delete(first addr: UInt64, size: UInt64) throws(Rejection) {
        let last = addr + size - 1
        guard addr % 1024 == 0, size % 1024 == 0,
            let i = entries.firstIndex(where: { $0.range.first <= addr && $0.range.last >= last })
        else {
            throw Rejection(
                .EFAILED, check: "kexec-tools delete_memmap",
                "0x\(String(addr, radix: 16)) (+0x\(String(size, radix: 16))) is not inside the crash memmap")
        }
        let e = entries[i]
        switch (e.range.first == addr, e.range.last == last) {
        case (true, true): entries.remove(at: i)
        case (false, false):
            entries[i].range.last = addr - 1
            var upper = e
            upper.range.first = last + 1
            entries.insert(upper, at: i + 1)
        case (false, true): entries[i].range.last = addr - 1
        case (true, false): entries[i].range.first = last + 1
        }
    }
}
