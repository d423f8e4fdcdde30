import KexecModel

/// Hands out the first kernel's free pages in a fixed, reproducible order (lowest first, from
/// `floor` up), applying kimage_alloc_page's destination rules (kernel/kexec_core.c, read in 6.1.192):
/// a page that is its wanted destination is taken; a page that is nobody's destination is taken; a
/// page that is the destination of a page that already has a source is swapped in (it becomes that
/// destination's source, and the old source page is handed out instead); any other destination page
/// is parked on the image's dest_pages list until its own destination is wanted.
///
/// Every page is PAGE_SIZE bytes, PAGE_SIZE aligned (`pageSize`: 4 KiB on x86_64; the granule on
/// arm64, arch/arm64/include/asm/page-def.h PAGE_SHIFT = CONFIG_ARM64_PAGE_SHIFT, read in 6.12.117).
public struct PageAllocator: Sendable {
    /// PAGE_SIZE in bytes: 4096, 16384 or 65536.
    public let pageSize: UInt64
    var free: [AddressRange]
    var rangeIndex = 0
    var cursor: UInt64
    /// Destination pages of all segments (page-aligned ranges).
    let destinations: RangeSet
    public private(set) var parked: Set<UInt64> = []
    public private(set) var handedOut: Int = 0
    /// destination → its current source page, for the swap-in path (kimage_dst_used).
    public private(set) var sourceOf: [UInt64: UInt64] = [:]
    /// (destination, new source) of each swap-in, in order, for the list builder to apply.
    public private(set) var swaps: [(destination: UInt64, source: UInt64)] = []

    /// `pageSize` must be a power of two of at least 4 KiB (a `Granule`'s size, or 4096).
    public init(free: [AddressRange], floor: PhysAddr, destinations: RangeSet, pageSize: UInt64 = kexecPageSize.raw) {
        precondition(pageSize >= 0x1000 && pageSize & (pageSize - 1) == 0, "PAGE_SIZE is a power of two >= 4 KiB")
        self.pageSize = pageSize
        let page = ByteCount(pageSize)
        let floorPage = floor.alignedUp(page) ?? PhysAddr(UInt64.max & ~(pageSize - 1))
        self.free = free.compactMap { $0.pageTrimmed(page) }.filter { $0.last >= floorPage }.sorted()
        cursor = 0
        self.destinations = destinations
        if let f = self.free.first { cursor = max(f.first.raw, floorPage.raw) }
    }

    private mutating func nextFree() -> UInt64? {
        while rangeIndex < free.count {
            let r = free[rangeIndex]
            if cursor < r.first.raw { cursor = r.first.raw }
            if cursor <= r.last.raw && r.last.raw - cursor >= pageSize - 1 {
                let p = cursor
                cursor += pageSize
                return p
            }
            rangeIndex += 1
        }
        return nil
    }

    /// kimage_alloc_page's loop for a page that is not `wanted`: nil when `p` cannot be used (parked),
    /// else the page to hand out (p itself, or the old source p replaces).
    private mutating func usable(_ p: UInt64) -> UInt64? {
        guard destinations.contains(PhysAddr(p)) else { return p }
        if let old = sourceOf[p] {
            sourceOf[p] = p
            swaps.append((p, p))
            return old
        }
        parked.insert(p)
        return nil
    }

    /// A control page (kimage_alloc_normal_control_pages): nobody's destination. Destination pages
    /// met on the way are parked (the kernel frees them; they come back for their own destination).
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
            .ENOMEM, check: "kimage_alloc_control_pages",
            "the first kernel has no free page left outside the destinations")
    }

    /// `pages` consecutive control pages aligned to their size (an order-n allocation). Pages
    /// skipped to reach the alignment stay unused.
    public mutating func allocateNonDestination(pages: Int) throws(Rejection) -> PhysAddr {
        guard pages > 1 else { return try allocateNonDestination() }
        let size = UInt64(pages) * pageSize
        var run: [UInt64] = []
        while run.count < pages {
            let p = try allocateNonDestination().raw
            if let last = run.last, p == last + pageSize {
                run.append(p)
            } else {
                run = p % size == 0 ? [p] : []
            }
        }
        handedOut -= pages - 1  // one allocation
        return PhysAddr(run[0])
    }

    /// An indirection page (kimage_alloc_page with KIMAGE_NO_DEST).
    public mutating func allocateIndirection() throws(Rejection) -> PhysAddr {
        while let p = nextFree() {
            guard let page = usable(p) else { continue }
            handedOut += 1
            return PhysAddr(page)
        }
        throw Rejection(
            .ENOMEM, check: "kimage_alloc_page", "the first kernel has no free page left for an indirection page")
    }

    /// An ordinary page (get_zeroed_page: init_transition_pgtable's tables): the next free page,
    /// whatever it is; it is not the image's and nothing is parked for it.
    public mutating func allocateOrdinary() throws(Rejection) -> PhysAddr {
        guard let p = nextFree() else {
            throw Rejection(.ENOMEM, check: "get_zeroed_page", "the first kernel has no free page left")
        }
        return PhysAddr(p)
    }

    /// A source page for `destination`: the destination page itself when parked earlier or reached
    /// now, else a page that is nobody's destination or one freed by a swap-in.
    public mutating func allocateSource(for destination: PhysAddr) throws(Rejection) -> PhysAddr {
        let d = destination.raw
        if parked.remove(d) != nil {
            return took(d, for: d)
        }
        while let p = nextFree() {
            if p == d { return took(p, for: d) }
            guard let page = usable(p) else { continue }
            return took(page, for: d)
        }
        throw Rejection(.ENOMEM, check: "kimage_alloc_page", "the first kernel has no free page left for a source page")
    }

    private mutating func took(_ page: UInt64, for destination: UInt64) -> PhysAddr {
        handedOut += 1
        sourceOf[destination] = page
        return PhysAddr(page)
    }
}
