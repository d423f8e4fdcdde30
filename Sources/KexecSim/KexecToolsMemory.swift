import KexecModel
import Kimage

/// kexec-tools' own bookkeeping of where segments go (it works in C's unsigned long, as here: the
/// planner turns its results into typed segments) (kexec/kexec.c of kexec-tools 2.0.25, as
/// Debian 12 ships it: locate_hole, add_buffer_phys_virt, add_segment_phys_virt,
/// valid_memory_range, sort_segments): its memory ranges (`info->memory_range`), the `--mem-min` /
/// `--mem-max` window (`mem_min`, `mem_max`) and the segments added so far.
///
/// The rules, each as kexec.c has it, quirks included:
/// - add_buffer first sorts the segments (failing on an overlap), rounds memsz up to the page,
///   then locate_hole finds the base and add_segment checks and appends it.
/// - locate_hole: the free ranges are the RAM ranges minus the segments (one merge of the two
///   sorted lists); each is clipped to [max(mem_min, hole_min), min(mem_max, hole_max)], its
///   start aligned up (alignment at least a page). Bottom-up (`hole_end > 0`) takes the first
///   range whose `end - start >= size - 1`, at its start; top-down goes on through every range
///   and keeps the last fit, at `align_down(end - size + 1)` (which may lie below the range's
///   start: kexec-tools does not check it). Nothing fits: "Could not find a free area of memory
///   of 0x… bytes".
/// - add_segment: bufsz is cut to memsz, memsz rounded up to the page, the base must be page
///   aligned, and [base, base + memsz) must lie in one RAM range (two only when the first's end
///   equals the next one's start, which real ranges never do) inside [mem_min, mem_max].
struct KexecToolsMemory: Sendable {
    /// One entry of `info->memory_range`: inclusive bounds and whether it is RANGE_RAM.
    struct MemoryRange: Sendable, Equatable {
        var first: UInt64
        var last: UInt64
        var isRAM: Bool
        init(first: UInt64, last: UInt64, isRAM: Bool) {
            self.first = first
            self.last = last
            self.isRAM = isRAM
        }
    }

    /// A segment as kexec-tools holds it (struct kexec_segment) and the role it plays.
    struct Placed: Sendable, Equatable {
        var role: SegmentRole
        var mem: UInt64
        var memsz: UInt64
        var bufsz: UInt64
        init(role: SegmentRole, mem: UInt64, memsz: UInt64, bufsz: UInt64) {
            self.role = role
            self.mem = mem
            self.memsz = memsz
            self.bufsz = bufsz
        }
    }

    /// getpagesize() (4 KiB on Debian's amd64 and 4K-page arm64 kernels).
    let pageSize: UInt64
    var ranges: [MemoryRange]
    var memMin: UInt64 = 0
    /// ULONG_MAX unless crash loads narrow it (get_crash_kernel_load_range).
    var memMax: UInt64 = .max
    /// In the order added; `sorted` is what kexec_load receives.
    private(set) var segments: [Placed] = []

    init(ranges: [MemoryRange], pageSize: UInt64 = 4096) {
        self.ranges = ranges
        self.pageSize = pageSize
    }

    /// The segments by address, as sort_segments leaves them for kexec_load.
    var sorted: [Placed] { segments.sorted { $0.mem < $1.mem } }

    /// `_ALIGN(v, a)`; nil past 2^64.
    static func alignUp(_ v: UInt64, _ a: UInt64) -> UInt64? {
        let (s, o) = v.addingReportingOverflow(a - 1)
        return o ? nil : s & ~(a - 1)
    }

    /// sort_segments: sorts, then fails on the first overlap.
    mutating func sortSegments() throws(Rejection) {
        segments.sort { $0.mem < $1.mem }
        var end: UInt64 = 0
        for s in segments {
            guard end <= s.mem else {
                throw Rejection(
                    .EFAILED, check: "kexec-tools sort_segments",
                    "Overlapping memory segments at 0x\(String(end, radix: 16)) (\(s.role.name))")
            }
            end = s.mem &+ s.memsz
        }
    }

    /// valid_memory_range.
    func validRange(first: UInt64, last: UInt64) -> Bool {
        guard first <= last, last <= memMax, first >= memMin else { return false }
        for (i, r) in ranges.enumerated() where r.isRAM {
            var end = r.last
            if i + 1 < ranges.count, end == ranges[i + 1].first, ranges[i + 1].isRAM { end = ranges[i + 1].last }
            if r.first <= first && end >= last { return true }
        }
        return false
    }

    /// locate_hole: the base of a hole of `size` bytes (`size` already page-rounded by the
    /// caller, as add_buffer does), or EFAILED with kexec-tools' message.
    func locateHole(size: UInt64, align: UInt64, min holeMin: UInt64, max holeMax: UInt64, bottomUp: Bool)
        throws(Rejection) -> UInt64
    {
        let align = Swift.max(align, pageSize)
        let segs = segments.sorted { $0.mem < $1.mem }
        var free: [(UInt64, UInt64)] = []
        var j = 0
        for r in ranges where r.isRAM {
            var start = r.first
            while j < segs.count && segs[j].mem <= r.last {
                let sstart = segs[j].mem
                let send = sstart &+ segs[j].memsz &- 1
                if start < sstart { free.append((start, sstart - 1)) }
                start = send &+ 1
                j += 1
            }
            if start < r.last { free.append((start, r.last)) }
        }
        var base: UInt64?
        for (s, e) in free {
            guard let start = Self.alignUp(Swift.max(s, memMin, holeMin), align) else { continue }
            let end = Swift.min(e, memMax, holeMax)
            if start >= end || start >= memMax || end <= memMin { continue }
            guard size == 0 || end - start >= size - 1 else { continue }
            if bottomUp {
                base = start
                break
            }
            base = (end &- size &+ 1) & ~(align - 1)
        }
        guard let base else {
            throw Rejection(
                .EFAILED, check: "kexec-tools locate_hole",
                "Could not find a free area of memory of 0x\(String(size, radix: 16)) bytes...")
        }
        if size > 0, base &+ size &- 1 > holeMax {
            throw Rejection(
                .EFAILED, check: "kexec-tools locate_hole",
                "Could not find a free area of memory below: 0x\(String(holeMax, radix: 16))...")
        }
        return base
    }

    /// add_buffer_phys_virt: sort, round memsz to the page, locate_hole, add_segment; the base.
    @discardableResult
    mutating func addBuffer(
        _ role: SegmentRole, bufsz: UInt64, memsz: UInt64, align: UInt64, min: UInt64, max: UInt64, bottomUp: Bool
    ) throws(Rejection) -> UInt64 {
        try sortSegments()
        guard let size = Self.alignUp(memsz, pageSize) else {
            throw Rejection(
                .EFAILED, check: "kexec-tools add_buffer", "\(role.name): memsz 0x\(String(memsz, radix: 16)) overflows"
            )
        }
        let base = try locateHole(size: size, align: align, min: min, max: max, bottomUp: bottomUp)
        try addSegment(role, bufsz: bufsz, base: base, memsz: size)
        return base
    }

    /// add_segment_phys_virt (without virt_to_phys: every caller modelled passes physical bases).
    mutating func addSegment(_ role: SegmentRole, bufsz: UInt64, base: UInt64, memsz: UInt64)
        throws(Rejection)
    {
        guard memsz > 0 else { return }
        guard let size = Self.alignUp(memsz, pageSize) else {
            throw Rejection(.EFAILED, check: "kexec-tools add_segment", "\(role.name): memsz overflows")
        }
        guard base & (pageSize - 1) == 0 else {
            throw Rejection(
                .EFAILED, check: "kexec-tools add_segment",
                "Base address: 0x\(String(base, radix: 16)) is not page aligned (\(role.name))")
        }
        let (last, o) = base.addingReportingOverflow(size - 1)
        guard !o, validRange(first: base, last: last) else {
            throw Rejection(
                .EFAILED, check: "kexec-tools add_segment",
                "Invalid memory segment 0x\(String(base, radix: 16)) - 0x\(String(base &+ size &- 1, radix: 16)) "
                    + "(\(role.name))")
        }
        segments.append(Placed(role: role, mem: base, memsz: size, bufsz: Swift.min(bufsz, size)))
    }
}

/// The initrd a kexec-tools load reads (`--initrd`), for both loaders: its bytes when a file or a
/// built-in initrd is named, else a synthetic size (1 byte to 8 GiB); neither for no initrd.
struct KexecToolsInitrd {
    var bytes: [UInt8]?
    var size: UInt64?

    init(_ req: KexecRequest, scenario: Scenario) throws(PlanError) {
        if let (_, b) = try RealImages.initrdContents(req.initrd, scenario: scenario) {
            bytes = b
            size = UInt64(b.count)
        } else if let s = req.initrd?.size {
            guard s.raw > 0, s.raw <= Planner.maxSyntheticBytes else {
                throw .input(
                    InputError(
                        file: scenario.file, line: nil, field: "kexec.initrd.size",
                        message: "size must be 1 byte to 8GiB"))
            }
            size = s.raw
        }
    }
}
