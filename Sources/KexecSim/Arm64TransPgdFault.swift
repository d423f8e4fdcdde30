import KexecModel

/// The first kernel's own fault during the load: v6.9–v6.12 with 5 levels (4K pages, 52-bit VAs
/// on a FEAT_LPA2 CPU), trans_pgd_create_copy reads through the copy's empty pgd entry
/// (`Arm64Rules.TransPgdCopy.readsThroughEmptyPgd`). The read happens in machine_kexec_post_load,
/// called by kexec_load (and kexec_file_load) after the segments are loaded: the syscall oopses,
/// nothing is left loaded, and no relocation ever runs.
public struct Arm64LoadFault: Sendable, Equatable {
    /// The kernel VA copy_pud reads: __va(0) + p4d_index(start) × 8.
    public var va: VirtAddr
    /// The table level of the first kernel's tables that has no entry for it.
    public var level: Arm64TableLevel
    /// Where the address lies in the kernel's VA layout, and why nothing maps it.
    public var region: String
    /// The DFSC the data abort reports (a translation fault at `level`).
    public var statusCode: UInt8
}

extension Arm64Planner {
    /// The address copy_pud reads and where it lies, for a 4K first kernel with 52-bit VAs whose
    /// RAM is `ram` (arch/arm64, read in 6.12.117):
    /// - memstart_addr = round_down(start of DRAM, ARM64_MEMSTART_ALIGN = 1 GiB with 4K pages)
    ///   (mm/init.c arm64_memblock_init);
    /// - the copy covers [_PAGE_OFFSET(vabits_actual), PAGE_END) (kernel/machine_kexec.c);
    ///   p4d_offset() on an empty pgd entry is __va(pgd_page_paddr(0)) + p4d_index(start), and
    ///   __va(0) = (0 - memstart_addr) | PAGE_OFFSET (asm/memory.h __phys_to_virt, asm/pgtable.h
    ///   p4d_offset_lockless);
    /// - the kernel VA layout: VMEMMAP_END = -1 GiB, PCI_IO_START = VMEMMAP_END + 8 MiB (an 8 MiB
    ///   gap nothing maps), FIXADDR_TOP = -8 MiB (so the top GiB's pud entry always exists),
    ///   vmemmap = VMEMMAP_START - memstart_pfn, 64 bytes of struct page per 4 KiB page
    ///   (asm/memory.h, asm/pgtable.h).
    /// An address in the linear map, or in vmemmap that backs RAM, reads the first kernel's own
    /// memory, whose contents decide what happens next: not modelled (`.unsupported`).
    static func transPgdEmptyPgdRead(ram: [AddressRange]) throws(PlanError) -> Arm64LoadFault {
        guard let first = ram.first?.first, let last = ram.last?.last else {
            throw .unsupported("trans_pgd_create_copy: the machine has no RAM")
        }
        let gib: UInt64 = 1 << 30
        let memstart = first.raw & ~(gib - 1)
        let pageOffset: UInt64 = 0xfff0_0000_0000_0000  // _PAGE_OFFSET(52)
        let p4dIndex = (pageOffset >> 39) & 511
        let va = ((0 &- memstart) | pageOffset) &+ p4dIndex * 8
        let vmemmapEnd = 0 &- gib
        let pciIOStart = vmemmapEnd + (8 << 20)
        // VMEMMAP_SIZE = ((_PAGE_END(48) - _PAGE_OFFSET(52)) >> 12) × 64.
        let vmemmapSize = (((0 &- (UInt64(1) << 47)) &- pageOffset) >> 12) * 64
        let vmemmapStart = vmemmapEnd &- vmemmapSize
        let linearEnd = pageOffset &+ (last.raw - memstart + 1)
        if va >= pageOffset && va < linearEnd {
            throw .unsupported(
                "trans_pgd_create_copy reads \(hex(va)), the first kernel's linear map of PA \(hex(va - pageOffset + memstart)): "
                    + "what it finds there decides the outcome; not modelled")
        }
        if va >= vmemmapEnd && va < pciIOStart {
            return Arm64LoadFault(
                va: VirtAddr(va), level: .l2,
                region: "the 8 MiB gap between vmemmap (VMEMMAP_END = -1 GiB) and PCI I/O (PCI_IO_START): nothing maps "
                    + "it; the top GiB's pud entry exists for the fixmap, its first pmd entries are empty",
                statusCode: 0x06)
        }
        // vmemmap that backs RAM: struct pages of [first, last], in 2 MiB blocks.
        let mib2: UInt64 = 2 << 20
        let backedFirst = (vmemmapStart &+ (first.raw - memstart) / 64) & ~(mib2 - 1)
        let backedEnd = ((vmemmapStart &+ (last.raw + 1 - memstart) / 64) &+ mib2 - 1) & ~(mib2 - 1)
        if va >= backedFirst && va < backedEnd {
            throw .unsupported(
                "trans_pgd_create_copy reads \(hex(va)), the struct pages of the first kernel's RAM: not modelled")
        }
        if va >= 0 &- (512 * gib) && va < vmemmapEnd {
            return Arm64LoadFault(
                va: VirtAddr(va), level: .l1,
                region: "the top of vmemmap, which would hold struct pages for RAM at PA "
                    + "\(hex(memstart &+ (va &- vmemmapStart) &* 64)) that the machine does not have: the last 512 GiB's "
                    + "p4d entry exists for the fixmap, this GiB's pud entry is empty",
                statusCode: 0x05)
        }
        throw .unsupported(
            "trans_pgd_create_copy reads \(hex(va)): where it lands in the kernel's VA layout is not modelled")
    }
}

extension Arm64LoadFault {
    /// The verdict: a page fault of the first kernel's own, in copy_pud, during the load.
    func verdict(policy: String, kernel: KernelVersion) -> Verdict {
        Verdict(
            kind: .pageFault,
            summary: "the first kernel faults at \(va) during the load (trans_pgd_create_copy, copy_pud) because the "
                + "\(level) entry is missing: nothing is loaded, no relocation runs",
            evidence: [
                Evidence(.address, va.description), Evidence(.access, "read"),
                Evidence(.routine, "trans_pgd_create_copy (copy_p4d → copy_pud), in machine_kexec_post_load"),
                Evidence(.region, region), Evidence(.level, level.description),
                Evidence(.reason, "translation fault in the first kernel's own tables"),
                Evidence(.faultStatusCode, hex(UInt64(statusCode))),
                Evidence(
                    .onHardware,
                    "\"Unable to handle kernel paging request at virtual address \(String(va.raw, radix: 16))\", an "
                        + "Oops in the kexec_load (or kexec_file_load) syscall; the image is not loaded"),
                Evidence(.kernel, kernel.description), Evidence(.policy, policy),
            ], address: va.raw)
    }
}
