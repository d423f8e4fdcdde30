import KexecModel

/// IND_* flags of the indirection list (include/linux/kexec.h).
public enum Ind {
    public static let destination: UInt64 = 0x1
    public static let indirection: UInt64 = 0x2
    public static let done: UInt64 = 0x4
    public static let source: UInt64 = 0x8
}

/// The kimage as kernel/kexec_core.c builds it: every page it needs, with its address and bytes.
public struct Kimage: Sendable {
    public var type: ImageType
    public var segments: [Segment]
    /// Where relocation jumps when done (purgatory entry).
    public var startAddress: PhysAddr
    /// The control code page (relocation routine, page list, stack). Before v6.14 x86_64's control
    /// block is 8 KiB and this is its second page (`controlPGD` is the first).
    public var controlPage: PhysAddr
    /// x86_64 before v6.14: the first page of the 8 KiB control block, the identity map's PGD
    /// (machine_kexec_prepare's start_pgtable); nil when the control block is one page.
    public var controlPGD: PhysAddr? = nil
    public var swapPage: PhysAddr?
    /// Further control pages handed out (page tables), in allocation order.
    public var extraControlPages: [PhysAddr]
    /// First list entry (normally an IND_INDIRECTION link; IND_DONE for crash images).
    public var head: UInt64
    /// Indirection pages with their PAGE_SIZE / 8 entries (512 with 4 KiB pages), in allocation order.
    public var indirectionPages: [(pa: PhysAddr, entries: [UInt64])]
    /// (source page, destination page, segment index, page index in the segment).
    public var sourcePages: [SourcePage]
    /// Pages the allocator skipped because they were someone's destination (kept, as the kernel keeps them).
    public var parkedPages: Int
    /// Source pages swapped in (kimage_alloc_page: a fresh page that is an already-sourced
    /// destination takes that source's bytes, and the old source page is handed out instead).
    public var swappedInPages: Int = 0
    /// PAGE_SIZE: the size of every page above (source, destination, indirection and control
    /// pages); an indirection page holds PAGE_SIZE / 8 entries (kernel/kexec_core.c
    /// kimage_add_entry, read in 6.12.117). 4 KiB on x86_64, the granule on arm64.
    public var pageSize: UInt64 = kexecPageSize.raw

    public struct SourcePage: Sendable, Equatable {
        public var source: PhysAddr
        public var destination: PhysAddr
        public var segment: Int
        public var pageIndex: Int
    }

    /// All list entries in walk order (following IND_INDIRECTION links), for plan output and tests.
    public var listEntries: [UInt64] {
        var out: [UInt64] = []
        var pages: [UInt64: [UInt64]] = [:]
        for p in indirectionPages { pages[p.pa.raw] = p.entries }
        var entry = head
        var page: [UInt64] = []
        var idx = 0
        out.append(head)
        while true {
            if entry & Ind.done != 0 { break }
            if entry & Ind.indirection != 0 {
                page = pages[entry & ~(pageSize - 1)] ?? []
                idx = 0
            }
            guard idx < page.count else { break }
            entry = page[idx]
            idx += 1
            out.append(entry)
        }
        return out
    }
}

/// A kimage whose control pages exist but whose segments are not loaded yet: between
/// kimage_alloc_init (control page, swap page) and kimage_load_segment, where x86_64's
/// machine_kexec_prepare takes its page tables from `allocator`.
public struct PendingKimage: Sendable {
    public var allocator: PageAllocator
    public let type: ImageType
    public let segments: [Segment]
    public let startAddress: PhysAddr
    public let controlPage: PhysAddr
    public let controlPGD: PhysAddr?
    public let swapPage: PhysAddr?
    /// Control pages machine_kexec_prepare took (page tables), in allocation order.
    public var extraControlPages: [PhysAddr] = []

    /// kimage_load_segment for every segment: the IND_* list (normal images), or nothing to do
    /// (crash images are copied straight into the crashkernel region: head = IND_DONE).
    public mutating func loadSegments() throws(Rejection) -> Kimage {
        let pageSize = allocator.pageSize
        guard type == .normal else {
            var k = Kimage(
                type: type, segments: segments, startAddress: startAddress, controlPage: controlPage, swapPage: nil,
                extraControlPages: extraControlPages, head: Ind.done, indirectionPages: [], sourcePages: [],
                parkedPages: 0)
            k.controlPGD = controlPGD
            k.pageSize = pageSize
            return k
        }
        // The list is built as kimage_add_entry does: `head` is the first slot; when the current
        // indirection page is full (PAGE_SIZE / 8 - 1 entries used, the last slot reserved for the
        // link) or at the start, a fresh non-destination page is linked in with IND_INDIRECTION.
        let perPage = Int(pageSize / 8)
        var pages: [(pa: PhysAddr, entries: [UInt64])] = []
        var head: UInt64 = 0
        var slot = 0
        var sources: [Kimage.SourcePage] = []
        /// destination → (indirection page, slot) of its IND_SOURCE entry, and index in `sources`.
        var entryOf: [UInt64: (page: Int, slot: Int, source: Int)] = [:]
        var applied = allocator.swaps.count
        func applySwaps(_ alloc: PageAllocator) {
            while applied < alloc.swaps.count {
                let (d, s) = alloc.swaps[applied]
                applied += 1
                guard let at = entryOf[d] else { continue }
                pages[at.page].entries[at.slot] = s | Ind.source
                sources[at.source].source = PhysAddr(s)
            }
        }
        func add(_ entry: UInt64, _ alloc: inout PageAllocator) throws(Rejection) {
            if pages.isEmpty || slot == perPage - 1 {
                let p = try alloc.allocateIndirection()
                applySwaps(alloc)
                if pages.isEmpty {
                    head = p.raw | Ind.indirection
                } else {
                    pages[pages.count - 1].entries[slot] = p.raw | Ind.indirection
                }
                pages.append((p, [UInt64](repeating: 0, count: perPage)))
                slot = 0
            }
            pages[pages.count - 1].entries[slot] = entry
            slot += 1
        }
        for (si, s) in segments.enumerated() {
            try add(s.mem.raw | Ind.destination, &allocator)
            let n = Int(s.memsz.raw / pageSize)
            for i in 0..<n {
                let d = PhysAddr(s.mem.raw + UInt64(i) * pageSize)
                let src = try allocator.allocateSource(for: d)
                applySwaps(allocator)
                try add(src.raw | Ind.source, &allocator)
                // The indirection page just linked in may have swapped this very destination in.
                let now = allocator.sourceOf[d.raw] ?? src.raw
                pages[pages.count - 1].entries[slot - 1] = now | Ind.source
                entryOf[d.raw] = (pages.count - 1, slot - 1, sources.count)
                sources.append(.init(source: PhysAddr(now), destination: d, segment: si, pageIndex: i))
            }
        }
        // kimage_terminate: IND_DONE goes in the current slot, which may be the last (link) slot.
        if pages.isEmpty {
            head = Ind.done
        } else {
            pages[pages.count - 1].entries[slot] = Ind.done
        }
        var k = Kimage(
            type: type, segments: segments, startAddress: startAddress, controlPage: controlPage, swapPage: swapPage,
            extraControlPages: extraControlPages, head: head, indirectionPages: pages, sourcePages: sources,
            parkedPages: allocator.parked.count)
        k.controlPGD = controlPGD
        k.swappedInPages = allocator.swaps.count
        k.pageSize = pageSize
        return k
    }
}

public enum KimageBuilder {
    /// kimage_alloc_init: the control block (`controlPages` pages, size-aligned; x86_64 takes two
    /// before v6.14, the first being the PGD) and, for a normal image, the swap page. A normal image
    /// allocates from `freeRAM` from `allocatorFloor` up, never from the crashkernel region (memblock
    /// keeps it from the page allocator); a crash image's control pages are the first aligned hole
    /// of the crashkernel region not under a segment (kimage_alloc_crash_control_pages). Every page
    /// is `pageSize` bytes (PAGE_SIZE: 4 KiB on x86_64, the granule on arm64, whose control code
    /// page is one PAGE_SIZE page: KEXEC_CONTROL_PAGE_SIZE 4096 is order 0,
    /// arch/arm64/include/asm/kexec.h, read in 6.12.117).
    public static func start(
        segments: [Segment], type: ImageType, startAddress: PhysAddr, freeRAM: [AddressRange],
        crashRegions: [AddressRange], controlPages: Int = 1, allocatorFloor: PhysAddr = PhysAddr(0x100_0000),
        pageSize: ByteCount = kexecPageSize
    ) throws(Rejection) -> PendingKimage {
        var dest = RangeSet()
        for s in segments { if let r = s.range { dest.insert(r) } }
        var alloc: PageAllocator
        if type == .crash {
            alloc = PageAllocator(free: crashRegions, floor: PhysAddr(0), destinations: dest, pageSize: pageSize.raw)
        } else {
            var free = RangeSet(freeRAM)
            for c in crashRegions { free.remove(c) }
            alloc = PageAllocator(
                free: free.ranges, floor: allocatorFloor, destinations: dest, pageSize: pageSize.raw)
        }
        let block = try alloc.allocateNonDestination(pages: controlPages)
        let code = controlPages > 1 ? PhysAddr(block.raw + UInt64(controlPages - 1) * pageSize.raw) : block
        let swap = type == .normal ? try alloc.allocateNonDestination() : nil
        return PendingKimage(
            allocator: alloc, type: type, segments: segments, startAddress: startAddress, controlPage: code,
            controlPGD: controlPages > 1 ? block : nil, swapPage: swap)
    }

    /// Builds the kimage for already placed and checked segments, with nothing between the swap
    /// page and the segments (`start` then `loadSegments`).
    public static func build(
        segments: [Segment], type: ImageType, startAddress: PhysAddr, freeRAM: [AddressRange],
        crashRegions: [AddressRange], controlPages: Int = 1, allocatorFloor: PhysAddr = PhysAddr(0x100_0000),
        pageSize: ByteCount = kexecPageSize
    ) throws(Rejection) -> (Kimage, PageAllocator) {
        var p = try start(
            segments: segments, type: type, startAddress: startAddress, freeRAM: freeRAM, crashRegions: crashRegions,
            controlPages: controlPages, allocatorFloor: allocatorFloor, pageSize: pageSize)
        let k = try p.loadSegments()
        return (k, p.allocator)
    }
}
