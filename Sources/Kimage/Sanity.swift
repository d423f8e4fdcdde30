import KexecModel

/// kernel/kexec_core.c sanity_check_segment_list, plus the syscall's segment-count check,
/// in the kernel's order, each failure with the errno the kernel returns. Alignment and the
/// half-of-RAM page counts are in PAGE_SIZE units (`pageSize`: 4 KiB on x86_64, the granule on
/// arm64; kernel/kexec_core.c PAGE_MASK and PAGE_COUNT, read in 6.12.117).
extension Segment {
    /// The segment's name, with the fixture line it came from when there is one.
    var label: String { source.map { "\(name) (\($0.file):\($0.line))" } ?? name }
}

public enum SanityCheck {
    public static func check(
        segments: [Segment], syscall: KexecSyscall, type: ImageType, totalRAM: ByteCount,
        crashRegions: [AddressRange], limits: ArchLimits, pageSize: ByteCount = kexecPageSize
    ) throws(Rejection) {
        if syscall == .kexecLoad && segments.count > limits.segmentMax {
            throw Rejection(
                .EINVAL, check: "kexec_load", "\(segments.count) segments; KEXEC_SEGMENT_MAX is \(limits.segmentMax)")
        }
        let page = pageSize.raw
        // Destinations: page aligned, not inverted, below the destination limit.
        for s in segments {
            let (mend, o) = s.mem.raw.addingReportingOverflow(s.memsz.raw)
            if o {
                throw Rejection(
                    .EADDRNOTAVAIL, check: "sanity_check_segment_list", "\(s.label): mem + memsz wraps past 2^64")
            }
            if s.mem.raw % page != 0 || mend % page != 0 {
                throw Rejection(
                    .EADDRNOTAVAIL, check: "sanity_check_segment_list",
                    "\(s.label): mem \(s.mem) or end \(hex(mend)) is not aligned to PAGE_SIZE \(pageSize)")
            }
            if mend >= limits.destinationLimit {
                throw Rejection(
                    .EADDRNOTAVAIL, check: "sanity_check_segment_list",
                    "\(s.label): end \(hex(mend)) is past KEXEC_DESTINATION_MEMORY_LIMIT \(hex(limits.destinationLimit - 1))"
                )
            }
        }
        // No overlaps.
        for i in segments.indices {
            for j in segments.indices where j > i {
                let a = segments[i]
                let b = segments[j]
                let aEnd = a.mem.raw + a.memsz.raw
                let bEnd = b.mem.raw + b.memsz.raw
                if a.mem.raw < bEnd && b.mem.raw < aEnd {
                    throw Rejection(
                        .EINVAL, check: "sanity_check_segment_list",
                        "segments \(a.label) [\(a.mem), \(hex(aEnd))) and \(b.label) [\(b.mem), \(hex(bEnd))) overlap")
                }
            }
        }
        // Buffers fit.
        for s in segments where s.bufsz > s.memsz {
            throw Rejection(
                .EINVAL, check: "sanity_check_segment_list", "\(s.label): bufsz \(s.bufsz) > memsz \(s.memsz)")
        }
        // Not more than half of RAM, each and all together: totalram_pages(), which leaves out what
        // the first kernel reserved at boot, here the crashkernel region (kernel/kexec_core.c, read
        // in 6.1.192: `nr_pages = totalram_pages()`).
        var crashBytes: UInt64 = 0
        for r in RangeSet(crashRegions).ranges { crashBytes &+= r.size.raw }
        let totalram = totalRAM.raw >= crashBytes ? totalRAM.raw - crashBytes : 0
        let halfPages = totalram / page / 2
        var total: UInt64 = 0
        for s in segments {
            let pages = s.memsz.raw / page
            if pages > halfPages {
                throw Rejection(
                    .EINVAL, check: "sanity_check_segment_list",
                    "\(s.label): \(pages) pages is more than half of RAM (\(halfPages) pages)")
            }
            total &+= pages
        }
        if total > halfPages {
            throw Rejection(
                .EINVAL, check: "sanity_check_segment_list",
                "segments total \(total) pages, more than half of RAM (\(halfPages) pages)")
        }
        // Crash images: inside the crashkernel region.
        if type == .crash {
            for s in segments {
                guard let r = s.range, crashRegions.contains(where: { $0.contains(r) }) else {
                    throw Rejection(
                        .EADDRNOTAVAIL, check: "sanity_check_segment_list",
                        "\(s.label) [\(s.mem), +\(s.memsz)) is not inside the crashkernel region")
                }
            }
        }
    }
}
