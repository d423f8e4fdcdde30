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
    /// The control code page (relocation routine, page list, stack).
    public var controlPage: PhysAddr
    public var swapPage: PhysAddr?
    /// Further control pages handed out (page tables), in allocation order.
    public var extraControlPages: [PhysAddr]
    /// First list entry (normally an IND_INDIRECTION link; IND_DONE for crash images).
    public var head: UInt64
    /// Indirection pages with their 512 entries, in allocation order.
    public var indirectionPages: [(pa: PhysAddr, entries: [UInt64])]
    /// (source page, destination page, segment index, page index in the segment).
    public var sourcePages: [SourcePage]
    /// Pages the allocator skipped because they were someone's destination (kept, as the kernel keeps them).
    public var parkedPages: Int

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
                page = pages[entry & ~0xfff] ?? []
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

/// Hands out the first kernel's free pages in a fixed, reproducible order (lowest first, from
/// `floor` up), applying kimage_alloc_page's destination rules.
public struct PageAllocator: Sendable {
    var free: [AddressRange]
    var rangeIndex = 0
    var cursor: UInt64
    /// Destination pages of all segments (page-aligned ranges).
    let destinations: RangeSet
    public private(set) var parked: Set<UInt64> = []
    public private(set) var handedOut: Int = 0

    public init(free: [AddressRange], floor: PhysAddr, destinations: RangeSet) {
        self.free = free.compactMap { $0.pageTrimmed() }.filter { $0.last >= floor }.sorted()
        cursor = 0
        self.destinations = destinations
        if let f = self.free.first { cursor = max(f.first.raw, floor.raw) }
    }

    private mutating func nextFree() -> UInt64? {
        while rangeIndex < free.count {
            let r = free[rangeIndex]
            if cursor < r.first.raw { cursor = r.first.raw }
            if cursor <= r.last.raw && r.last.raw - cursor >= 0xfff {
                let p = cursor
                cursor += 0x1000
                return p
            }
            rangeIndex += 1
        }
        return nil
    }

    /// A page that is nobody's destination (control, swap, indirection pages).
    public mutating func allocateNonDestination() throws(Rejection) -> PhysAddr {
        while let p = nextFree() {
            if destinations.contains(PhysAddr(p)) {
                parked.insert(p)
                continue
            }
            handedOut += 1
            return PhysAddr(p)
        }
        throw Rejection(
            .ENOMEM, check: "kimage_alloc_page", "the first kernel has no free page left outside the destinations")
    }

    /// A source page for `destination`: the destination page itself when the allocator reaches
    /// it (or parked it earlier), else a page that is nobody's destination.
    public mutating func allocateSource(for destination: PhysAddr) throws(Rejection) -> PhysAddr {
        if parked.remove(destination.raw) != nil {
            handedOut += 1
            return destination
        }
        while let p = nextFree() {
            if p == destination.raw {
                handedOut += 1
                return destination
            }
            if destinations.contains(PhysAddr(p)) {
                parked.insert(p)
                continue
            }
            handedOut += 1
            return PhysAddr(p)
        }
        throw Rejection(.ENOMEM, check: "kimage_alloc_page", "the first kernel has no free page left for a source page")
    }
}

public enum KimageBuilder {
    /// Builds the kimage for already placed and checked segments.
    /// Normal images: control page, swap page, one source page per destination page, and the IND_* list.
    /// Crash images: segments are copied straight into the crashkernel region; no list (head = IND_DONE),
    /// control page from the first free page of the crashkernel region.
    public static func build(
        segments: [Segment], type: ImageType, startAddress: PhysAddr, freeRAM: [AddressRange],
        crashRegions: [AddressRange], allocatorFloor: PhysAddr = PhysAddr(0x100_0000)
    ) throws(Rejection) -> (Kimage, PageAllocator) {
        var dest = RangeSet()
        for s in segments { if let r = s.range { dest.insert(r) } }
        if type == .crash {
            // Control pages: the first page-aligned hole inside the crashkernel region not under a segment.
            var alloc = PageAllocator(free: crashRegions, floor: PhysAddr(0), destinations: dest)
            let control = try alloc.allocateNonDestination()
            let k = Kimage(
                type: type, segments: segments, startAddress: startAddress, controlPage: control, swapPage: nil,
                extraControlPages: [], head: Ind.done, indirectionPages: [], sourcePages: [], parkedPages: 0)
            return (k, alloc)
        }
        var alloc = PageAllocator(free: freeRAM, floor: allocatorFloor, destinations: dest)
        let control = try alloc.allocateNonDestination()
        let swap = try alloc.allocateNonDestination()

        // The list is built as kimage_add_entry does: `head` is the first slot; when the current
        // indirection page is full (511 used, last slot reserved for the link) or at the start,
        // a fresh non-destination page is linked in with IND_INDIRECTION.
        var pages: [(pa: PhysAddr, entries: [UInt64])] = []
        var head: UInt64 = 0
        var slot = 0
        func add(_ entry: UInt64, _ alloc: inout PageAllocator) throws(Rejection) {
            if pages.isEmpty || slot == 511 {
                let p = try alloc.allocateNonDestination()
                if pages.isEmpty {
                    head = p.raw | Ind.indirection
                } else {
                    pages[pages.count - 1].entries[slot] = p.raw | Ind.indirection
                }
                pages.append((p, [UInt64](repeating: 0, count: 512)))
                slot = 0
            }
            pages[pages.count - 1].entries[slot] = entry
            slot += 1
        }
        var sources: [Kimage.SourcePage] = []
        for (si, s) in segments.enumerated() {
            try add(s.mem.raw | Ind.destination, &alloc)
            let n = Int(s.memsz.raw / 0x1000)
            for i in 0..<n {
                let d = PhysAddr(s.mem.raw + UInt64(i) * 0x1000)
                let src = try alloc.allocateSource(for: d)
                try add(src.raw | Ind.source, &alloc)
                sources.append(.init(source: src, destination: d, segment: si, pageIndex: i))
            }
        }
        // kimage_terminate: IND_DONE goes in the current slot, which may be the last (link) slot.
        if pages.isEmpty {
            head = Ind.done
        } else {
            pages[pages.count - 1].entries[slot] = Ind.done
        }
        let k = Kimage(
            type: type, segments: segments, startAddress: startAddress, controlPage: control, swapPage: swap,
            extraControlPages: [], head: head, indirectionPages: pages, sourcePages: sources,
            parkedPages: alloc.parked.count)
        return (k, alloc)
    }
}
