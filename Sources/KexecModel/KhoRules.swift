/// The Kexec HandOver rules that changed over time, picked by the running kernel's version.
///
/// Sources read (each rule's `AppliedRule.source` names its own):
/// - kernel/kexec_handover.c, stored torvalds/linux copy 00c010e1: the 6.16 form (kho-v1 FDT,
///   serialized chunk list of 512-byte bitmaps allocated with kzalloc, no scratch-overlap check).
/// - The October 2025 series "KHO: kfence + KHO memory corruption fix" (Pasha Tatashin), read as
///   the original commits quoted in the 6.17-stable mails: e38f65d317df "kho: warn and fail on
///   metadata or preserved memory in scratch area" (kho_scratch_overlap, CONFIG_KEXEC_HANDOVER_DEBUG
///   only), a2fff99f92da "kho: increase metadata bitmap size to PAGE_SIZE", fa759cd75bce "kho:
///   allocate metadata directly from the buddy allocator". Merged for v6.18 (Nov 2025) and in
///   6.17.9; 6.16.y had ended before, so every 6.16 release has the bug.
/// - kernel/liveupdate/kexec_handover.c, stored copy 019fc368, and
///   include/linux/kho/abi/kexec_handover.h at 3f2ad90060f6 "kho: adopt radix tree for preserved
///   memory tracking" (committed 2026-04-05 for v7.1): the kho-v2 radix tree, no finalize.
public struct KhoRules: Sendable, Equatable {
    public var version: KernelVersion

    public init(version: KernelVersion) { self.version = version }

    /// How the preserved-memory map is handed over.
    public enum Abi: Sendable, Equatable {
        /// "kho-v1": `preserved-memory-map` points at a linked list of khoser_mem_chunk pages, each
        /// naming bitmaps of one order (kho_mem_serialize). `bitmapBytes`: 512 before a2fff99f92da,
        /// PAGE_SIZE from it.
        case chunkList(bitmapBytes: Int)
        /// "kho-v2": `preserved-memory-map` points at the root of a radix tree of page-sized tables
        /// whose leaves are page-sized bitmaps (include/linux/kho/abi/kexec_handover.h).
        case radixTree

        public var compatible: String {
            if case .radixTree = self { return "kho-v2" }
            return "kho-v1"
        }
    }

    /// Where KHO's own metadata (bitmaps, chunks) comes from.
    public enum MetadataAllocator: Sendable, Equatable {
        /// kzalloc: slab objects, which KFENCE may serve from its pool (before fa759cd75bce).
        case slab
        /// get_zeroed_page: the buddy allocator, never KFENCE and never scratch (fa759cd75bce on).
        case buddy
    }

    /// KHO exists (v6.16+).
    public var available: Bool { version >= KhoConfig.firstVersion }

    /// The October 2025 fix series is in: v6.18 and later, and 6.17.9 and later on 6.17.
    public var hasKfenceFix: Bool {
        if version.atLeast(6, 18) { return true }
        return version.line == KernelVersion(6, 17) && version.atLeast(6, 17, 9)
    }

    /// The radix tree (kho-v2) is v7.1's (3f2ad90060f6); before, the chunk list (kho-v1).
    public var abi: Abi {
        if version.atLeast(7, 1) { return .radixTree }
        return .chunkList(bitmapBytes: hasKfenceFix ? 4096 : 512)
    }

    public var metadataAllocator: MetadataAllocator { hasKfenceFix ? .buddy : .slab }

    /// kho_scratch_overlap exists (e38f65d317df); it refuses only with CONFIG_KEXEC_HANDOVER_DEBUG.
    public var hasScratchOverlapCheck: Bool { hasKfenceFix }

    /// CMA_MIN_ALIGNMENT_BYTES = PAGE_SIZE << pageblock_order, pageblock_order =
    /// min(HPAGE_PMD_ORDER, MAX_PAGE_ORDER) (include/linux/cma.h, include/linux/pageblock-flags.h,
    /// read in Debian's 6.12.95): 2 MiB with 4 KiB pages on x86_64 and arm64.
    public static let cmaMinAlignment = ByteCount.mib(2)

    /// kho_fill_kimage's scratch-array buffer: buf_align SZ_64K, top-down, no limit.
    public static let scratchSegmentAlign = ByteCount.kib(64)

    public static let old = "kernel/kexec_handover.c, read in the stored 6.16 copy (00c010e1)"
    public static let new = "kernel/liveupdate/kexec_handover.c, read in the stored 2026 copy (019fc368)"

    /// The rules as evidence, for a plan that handed over (`handover`) or only preserved memory;
    /// `scratchPlacement`: the image was placed in scratch (a normal kexec_file_load image).
    public func applied(handover: Bool, scratchPlacement: Bool) -> [AppliedRule] {
        var out: [AppliedRule] = []
        switch abi {
        case .radixTree:
            out.append(
                AppliedRule(
                    "kho_abi",
                    "kho-v2: preserved-memory-map is the root of a 6-level radix tree of page tables and bitmaps",
                    source: "include/linux/kho/abi/kexec_handover.h at 3f2ad90060f6 (v7.1); \(Self.new)"))
        case .chunkList(let b):
            out.append(
                AppliedRule(
                    "kho_abi",
                    "kho-v1: preserved-memory-map is a list of khoser_mem_chunk pages naming \(b)-byte bitmaps per order",
                    source: b == 512
                        ? "kho_mem_serialize in \(Self.old)"
                        : "kernel/kexec_handover.c kho_mem_serialize with a2fff99f92da (PRESERVE_BITS = PAGE_SIZE × 8)")
            )
        }
        out.append(
            metadataAllocator == .slab
                ? AppliedRule(
                    "kho_metadata", "kzalloc (slab): KFENCE may serve it, from its pool in scratch on a KHO boot",
                    source: "xa_load_or_alloc / new_chunk in \(Self.old)")
                : AppliedRule(
                    "kho_metadata", "get_zeroed_page (buddy allocator): never KFENCE, never scratch (MIGRATE_CMA)",
                    source: "fa759cd75bce \"kho: allocate metadata directly from the buddy allocator\" (v6.18, 6.17.9)")
        )
        out.append(
            hasScratchOverlapCheck
                ? AppliedRule(
                    "kho_scratch_overlap",
                    "preserving memory or allocating metadata in scratch fails with EINVAL (CONFIG_KEXEC_HANDOVER_DEBUG)",
                    source: "e38f65d317df, kernel/kexec_handover_debug.c (v6.18, 6.17.9)")
                : AppliedRule(
                    "kho_scratch_overlap", "no check: memory in scratch is preserved and handed over",
                    source: "kho_preserve_folio / kho_preserve_phys in \(Self.old)"))
        if scratchPlacement {
            out.append(
                AppliedRule(
                    "placement_walk",
                    "KHO: scratch areas only, in kho_scratch array order (lowmem, global, nodes); crash images exempt",
                    source:
                        "kernel/kexec_file.c kexec_locate_mem_hole → kho_locate_mem_hole / kho_walk_scratch, \(Self.new)"
                ))
        }
        if handover {
            out.append(
                AppliedRule(
                    "kho_scratch_segment",
                    "the kho_scratch array, added first: buf_align 64 KiB, top-down, buf_max ULONG_MAX",
                    source:
                        "kho_fill_kimage (called from kimage_file_prepare_segments before the image loader), \(Self.new)"
                ))
        }
        return out
    }
}
