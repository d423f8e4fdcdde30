import KexecModel

/// kexec_file_load placement (kernel/kexec_file.c locate_mem_hole_top_down / _bottom_up):
/// walk candidate RAM ranges, and in each find the highest (lowest) aligned spot that fits,
/// stepping a page at a time past already placed segments.
///
/// Which way the ranges are walked and where the top-down search starts depend on the running
/// kernel's version (x86_64: `X86FileLoadRules` in KexecSim); the defaults are mainline's.
public struct Placer: Sendable {
    /// Ranges to search: System RAM, or the crashkernel region for a crash image.
    public let ranges: [AddressRange]
    public let order: PlacementOrder
    /// Whether a top-down buffer walks the ranges from the top (x86_64 v6.8+
    /// walk_system_ram_res_rev; arm64's reverse memblock walk). False: always from the bottom, the
    /// first range that fits wins (x86_64 before v6.8, walk_system_ram_res). Bottom-up buffers
    /// always walk from the bottom.
    public var reverseWalk: Bool
    /// locate_mem_hole_top_down's first candidate is `end - memsz` (true, before v6.8: one byte
    /// low) or `end - memsz + 1` (false, the fixed form).
    public var topDownOffByOne: Bool
    /// PAGE_SIZE: every memsz is rounded up to it, every alignment is at least it, and a candidate
    /// that collides steps by it (kernel/kexec_file.c kexec_add_buffer, locate_mem_hole_top_down /
    /// _bottom_up, read in 6.12.117). 4 KiB on x86_64, the granule on arm64.
    public var pageSize: ByteCount = kexecPageSize
    /// Walk `ranges` in the order given, whatever the direction (KHO's kho_walk_scratch visits the
    /// kho_scratch array in order: lowmem, global, then the nodes).
    public private(set) var givenOrder = false
    public private(set) var placed: [(name: String, range: AddressRange)] = []

    public init(ranges: [AddressRange], order: PlacementOrder, reverseWalk: Bool = true, topDownOffByOne: Bool = false)
    {
        self.ranges = ranges.sorted()
        self.order = order
        self.reverseWalk = reverseWalk
        self.topDownOffByOne = topDownOffByOne
    }

    /// A placer that walks `ranges` in the order given (kho_walk_scratch).
    public init(orderedRanges: [AddressRange], order: PlacementOrder, topDownOffByOne: Bool = false) {
        self.ranges = orderedRanges
        self.order = order
        self.reverseWalk = false
        self.topDownOffByOne = topDownOffByOne
        self.givenOrder = true
    }

    /// Places one buffer; EADDRNOTAVAIL when no hole fits (as kexec_locate_mem_hole returns).
    public mutating func place(_ req: BufferRequest) throws(Rejection) -> PhysAddr {
        let page = pageSize
        guard let memsz = req.memsz.alignedUp(page), memsz.raw > 0 else {
            throw Rejection(
                .EINVAL, check: "kexec_add_buffer", "\(req.name): size \(req.memsz) is not a usable buffer size")
        }
        let align = max(req.align, page)
        guard align.raw & (align.raw - 1) == 0 else {
            throw Rejection(.EINVAL, check: "kexec_add_buffer", "\(req.name): alignment \(align) is not a power of two")
        }
        let down = req.topDown ?? (order == .topDown)
        let walk = down && reverseWalk && !givenOrder ? ranges.reversed() : ranges
        for r in walk {
            if r.size < memsz { continue }
            if r.last < req.bufMin || r.first > req.bufMax { continue }
            let found = down ? topDown(r, memsz, align, req) : bottomUp(r, memsz, align, req)
            if let at = found {
                placed.append((req.name, AddressRange(start: at, size: memsz)!))
                return at
            }
        }
        throw Rejection(
            .EADDRNOTAVAIL, check: "kexec_locate_mem_hole",
            "no \(down ? "top-down" : "bottom-up") hole of \(memsz) aligned to \(align) for \(req.name) in [\(req.bufMin), \(req.bufMax)]"
        )
    }

    private func collides(_ r: AddressRange) -> Bool { placed.contains { $0.range.overlaps(r) } }

    private func topDown(_ r: AddressRange, _ memsz: ByteCount, _ align: ByteCount, _ req: BufferRequest) -> PhysAddr? {
        let end = min(r.last.raw, req.bufMax.raw)
        let back = topDownOffByOne ? memsz.raw : memsz.raw - 1
        guard end >= back else { return nil }
        var start = end - back
        while true {
            start &= ~(align.raw - 1)
            if start < r.first.raw || start < req.bufMin.raw { return nil }
            guard let cand = AddressRange(start: PhysAddr(start), size: memsz) else { return nil }
            if collides(cand) {
                guard start >= pageSize.raw else { return nil }
                start -= pageSize.raw
                continue
            }
            return PhysAddr(start)
        }
    }

    private func bottomUp(_ r: AddressRange, _ memsz: ByteCount, _ align: ByteCount, _ req: BufferRequest) -> PhysAddr?
    {
        var start = max(r.first.raw, req.bufMin.raw)
        while true {
            guard let aligned = PhysAddr(start).alignedUp(align) else { return nil }
            start = aligned.raw
            let (last, o) = start.addingReportingOverflow(memsz.raw - 1)
            if o || last > r.last.raw || last > req.bufMax.raw { return nil }
            let cand = AddressRange(first: PhysAddr(start), last: PhysAddr(last))!
            if collides(cand) {
                start += pageSize.raw
                continue
            }
            return PhysAddr(start)
        }
    }
}

extension Placer {
    /// Marks a range as taken without placing anything (kexec_load's user-chosen destinations).
    public mutating func reserve(name: String, _ r: AddressRange) {
        placed.append((name, r))
    }
}
