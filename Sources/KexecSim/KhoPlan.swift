import KexecModel
import Kimage

/// The Kexec HandOver part of a plan: the scratch areas, the preserved memory, KHO's metadata in
/// the first kernel's memory (the KHO FDT page, the preserved-memory map) and what the loader hands
/// over. Built by `KhoPlanner.prepare` before any segment is placed.
public struct KhoPlan: Sendable {
    public var rules: KhoRules
    /// In kho_scratch array order.
    public var scratch: [KhoScratchArea]
    /// The fixture's preserved ranges, then KHO's own FDT page (a preserved folio).
    public var preserved: [KhoPreservation]
    /// Every preserved block the map describes (kho_preserve_pages decomposition), sorted.
    public var blocks: [KhoBlock]
    /// The FDT page and the map's pages, at their first-kernel addresses.
    public var objects: [KhoMemoryMap.Object]
    public var fdt: PhysAddr
    public var mapRoot: PhysAddr
    /// kexec_file_load hands it over (kho_fill_kimage); kexec_load does not.
    public var handsOver: Bool
    /// Metadata objects KFENCE served from its pool.
    public var kfenceObjects: Int
    /// The first kernel's memory KHO uses (preserved and metadata pages): never kimage pages.
    public var inUse: RangeSet
    /// The kho_scratch array, as the scratch segment holds it.
    public var scratchArray: [UInt8] { KhoScratchLayout.arrayBytes(scratch) }
    /// Non-empty scratch areas, in array order.
    public var scratchRanges: [AddressRange] { scratch.compactMap(\.range) }
    /// The owner of a preserved page, if any.
    public func preservation(containing a: PhysAddr) -> KhoPreservation? { preserved.first { $0.range.contains(a) } }
}

/// Builds the KHO part of a plan and the hooks the planners call: the placer, the scratch-array
/// segment, the free memory kimage pages may come from, and the handover data.
enum KhoPlanner {
    /// PAGE_SIZE: the KHO FDT is one page (kho_data.fdt_size, linux,kho-fdt's size).
    static let fdtSize = ByteCount(0x1000)
    /// sizeof(struct setup_data) + sizeof(struct kho_data) (arch/x86/include/uapi/asm/setup_data.h).
    static let x86SetupDataBytes: UInt64 = 16 + 32
    /// SETUP_KEXEC_KHO.
    static let setupKexecKho: UInt32 = 10

    /// nil when the machine has no KHO; `.failure` when the kernel refuses a preservation
    /// (kho_scratch_overlap, EINVAL). A KHO machine on a kernel older than 6.16 (after --kernel)
    /// is an input error naming machine.kho.
    static func prepare(_ sc: Scenario) throws(PlanError) -> Result<KhoPlan?, Rejection> {
        let machine = sc.machine
        guard let kho = machine.kho, let req = sc.kexec else { return .success(nil) }
        let rules = KhoRules(version: machine.kernelVersion)
        func inputError(_ message: String) -> PlanError {
            .input(
                InputError(
                    file: sc.file, line: kho.source?.line, field: kho.source?.field ?? "machine.kho", message: message))
        }
        guard rules.available else {
            throw inputError(
                "Kexec HandOver (KHO) is in mainline from v\(KhoConfig.firstVersion); the kernel is \(machine.kernelVersion)"
            )
        }
        if let g = sc.arm64Policy?.granule, g.size != 0x1000 {
            throw .unsupported("\(sc.file): KHO with \(g.rawValue) pages is not modelled (4 KiB pages only)")
        }
        let reservation: KhoScratchLayout.Reservation
        switch KhoScratchLayout.reservation(for: machine) {
        case .failure(let e): throw inputError(e.message)
        case .success(let r): reservation = r
        }
        let scratch = reservation.areas
        // kho_preserve_folio / kho_preserve_pages: WARN_ON(kho_scratch_overlap(…)) → -EINVAL.
        let unchecked = req.inject.contains(.khoBeforeScratchCheck)
        if rules.hasScratchOverlapCheck && kho.debugChecks && !unchecked {
            for p in kho.preserved {
                if let a = scratch.first(where: { $0.range?.overlaps(p.range) == true }) {
                    return .failure(
                        Rejection(
                            .EINVAL, check: "kho_preserve_pages (kho_scratch_overlap, CONFIG_KEXEC_HANDOVER_DEBUG)",
                            "memory preserved by \"\(p.owner)\" \(p.range) overlaps KHO scratch area \(a): the next "
                                + "kexec's segments and the next kernel's early allocations go there, so Linux "
                                + "\(machine.kernelVersion) refuses the preservation (WARN_ON, -EINVAL)"))
                }
            }
        }
        var meta = MetadataAllocator(machine: machine, scratch: reservation, kho: kho, rules: rules)
        let built: (fdt: PhysAddr, root: PhysAddr, objects: [KhoMemoryMap.Object], preserved: [KhoPreservation])
        do {
            built = try buildMap(kho: kho, rules: rules, allocator: &meta)
        } catch {
            throw inputError("no free page left for KHO's metadata outside scratch and preserved memory")
        }
        var inUse = RangeSet(built.preserved.map(\.range))
        for o in built.objects {
            if let r = AddressRange(start: o.pa.alignedDown(kexecPageSize), size: kexecPageSize) { inUse.insert(r) }
        }
        let blocks = built.preserved.flatMap { KhoMemoryMap.blocks(of: $0.range) }.sorted()
        return .success(
            KhoPlan(
                rules: rules, scratch: scratch, preserved: built.preserved, blocks: blocks, objects: built.objects,
                fdt: built.fdt, mapRoot: built.root, handsOver: req.syscall == .kexecFileLoad,
                kfenceObjects: meta.kfenceServed, inUse: inUse))
    }

    /// The FDT page and the map, allocated in the kernel's order: 6.16 allocates the FDT page at
    /// kho_init, bitmaps as memory is preserved, and at finalize preserves the FDT folio then
    /// serializes the chunks; 2026 allocates the tree root, then the FDT (kho_alloc_preserve, which
    /// preserves it at once), then tree nodes as memory is preserved.
    static func buildMap(kho: KhoConfig, rules: KhoRules, allocator meta: inout MetadataAllocator) throws -> (
        fdt: PhysAddr, root: PhysAddr, objects: [KhoMemoryMap.Object], preserved: [KhoPreservation]
    ) {
        var objects: [KhoMemoryMap.Object] = []
        let fdtPage: PhysAddr
        let root: PhysAddr
        var preserved = kho.preserved
        switch rules.abi {
        case .chunkList(let bitmapBytes):
            fdtPage = try meta.page()
            preserved.append(KhoPreservation(range: AddressRange(start: fdtPage, size: fdtSize)!, owner: "KHO FDT"))
            let blocks = preserved.flatMap { KhoMemoryMap.blocks(of: $0.range) }
            let map = try KhoMemoryMap.chunkList(blocks: blocks, bitmapBytes: bitmapBytes) { kind in
                try meta.object(kind)
            }
            root = map.root
            objects = map.objects
        case .radixTree:
            root = try meta.page()
            fdtPage = try meta.page()
            preserved.append(KhoPreservation(range: AddressRange(start: fdtPage, size: fdtSize)!, owner: "KHO FDT"))
            // kho_init preserves the FDT first; the subsystems' memory comes later.
            let blocks =
                [preserved.last!].flatMap { KhoMemoryMap.blocks(of: $0.range) }
                + kho.preserved.flatMap { KhoMemoryMap.blocks(of: $0.range) }
            objects = try KhoMemoryMap.radixTree(blocks: blocks, root: root) { kind in try meta.object(kind) }
        }
        if let pool = kho.kfencePool {
            for i in objects.indices where pool.contains(objects[i].pa) {
                objects[i].what += ", kzalloc'ed and served by KFENCE from its pool \(pool)"
            }
        }
        let blob = KhoMemoryMap.fdt(compatible: rules.abi.compatible, mapRoot: root).encode()
        objects.insert(KhoMemoryMap.Object(pa: fdtPage, bytes: blob, what: "KHO FDT (\(rules.abi.compatible))"), at: 0)
        return (fdtPage, root, objects, preserved)
    }

    /// A normal kexec_file_load image with KHO: holes in the scratch areas only, in array order
    /// (kho_locate_mem_hole); anything else: `fallback`.
    static func placer(_ kho: KhoPlan?, _ req: KexecRequest, fallback: Placer) -> Placer {
        guard let kho, kho.handsOver, req.type == .normal else { return fallback }
        var p = Placer(
            orderedRanges: kho.scratchRanges, order: req.placement, topDownOffByOne: fallback.topDownOffByOne)
        p.pageSize = fallback.pageSize
        return p
    }

    /// kho_fill_kimage's buffer: the kho_scratch array, 64 KiB aligned, top-down, placed before
    /// the image loader's segments.
    static func scratchSegment(_ kho: KhoPlan, placer: inout Placer) throws(Rejection) -> Segment {
        let bytes = kho.scratchArray
        let bufsz = ByteCount(UInt64(bytes.count))
        let memsz = bufsz.alignedUp(kexecPageSize)!
        let at = try placer.place(
            BufferRequest(
                role: .khoScratch, memsz: memsz, align: KhoRules.scratchSegmentAlign, bufMin: PhysAddr(0), topDown: true
            ))
        return Segment(role: .khoScratch, mem: at, memsz: memsz, bytes: bytes, bufsz: bufsz)
    }

    /// A hole search that failed inside scratch, as kho_locate_mem_hole reports it.
    static func explain(_ r: Rejection, _ kho: KhoPlan?, _ req: KexecRequest) -> Rejection {
        guard let kho, kho.handsOver, req.type == .normal, r.errno == .EADDRNOTAVAIL, r.check == "kexec_locate_mem_hole"
        else { return r }
        return Rejection(
            .EADDRNOTAVAIL, check: "kho_locate_mem_hole",
            r.detail + "; with KHO a normal image goes into the scratch areas only: "
                + KhoScratchLayout.describe(kho.scratch))
    }

    /// Memory kimage pages (control, swap, source, indirection, table pages) may come from: the
    /// page allocator's, never scratch (MIGRATE_CMA pageblocks, which GFP_KERNEL and GFP_HIGHUSER
    /// allocations do not use) and never memory KHO holds.
    static func kimageFree(_ ranges: [AddressRange], _ kho: KhoPlan?) -> [AddressRange] {
        guard let kho else { return ranges }
        var free = RangeSet(ranges)
        for r in kho.scratchRanges { free.remove(r) }
        for r in kho.inUse.ranges { free.remove(r) }
        return free.ranges
    }

    /// x86_64 setup_kho (arch/x86/kernel/kexec-bzimage64.c, stored copy 03738dd1): a setup_data of
    /// type SETUP_KEXEC_KHO with struct kho_data { fdt_addr, fdt_size = PAGE_SIZE, scratch_addr,
    /// scratch_size = the scratch segment's bufsz }, at the offset after the EFI room
    /// (ALIGN(sizeof(boot_params) + cmdline_len + 30, 16) + ALIGN(efi_map_sz, 16) + 16 + 96; no
    /// IMA_KEXEC), linked in front of hdr.setup_data (0x250). The RNG seed setup_data the kernel
    /// links after it is not modelled.
    static func writeX86SetupData(
        _ bytes: inout [UInt8], cmdlineLength: Int, efiRuntimeMapSize: ByteCount, bootParams: PhysAddr,
        fdt: PhysAddr, scratch: Segment
    ) {
        let offset = x86SetupDataOffset(cmdlineLength: cmdlineLength, efiRuntimeMapSize: efiRuntimeMapSize)
        if bytes.count < offset + Int(x86SetupDataBytes) {
            bytes += [UInt8](repeating: 0, count: offset + Int(x86SetupDataBytes) - bytes.count)
        }
        func put(_ o: Int, _ v: UInt64, _ n: Int) {
            for i in 0..<n { bytes[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        let head = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[0x250 + $1]) << (8 * UInt64($1)) }
        put(offset, head, 8)  // next
        put(offset + 8, UInt64(setupKexecKho), 4)  // type
        put(offset + 12, 32, 4)  // len = sizeof(struct kho_data)
        put(offset + 16, fdt.raw, 8)
        put(offset + 24, fdtSize.raw, 8)
        put(offset + 32, scratch.mem.raw, 8)
        put(offset + 40, scratch.bufsz.raw, 8)
        put(0x250, bootParams.raw + UInt64(offset), 8)  // hdr.setup_data
    }

    /// Where setup_kho writes its setup_data inside the boot_params segment.
    static func x86SetupDataOffset(cmdlineLength: Int, efiRuntimeMapSize: ByteCount) -> Int {
        func align16(_ v: Int) -> Int { (v + 15) & ~15 }
        return align16(0x1000 + cmdlineLength + Int(X86FileLoadRules.maxElfcorehdrStrLen))
            + align16(Int(efiRuntimeMapSize.raw)) + 16 + 96
    }
}

/// Where KHO's metadata lands in the first kernel's memory: the buddy allocator's pages (the
/// highest free page first: a model choice, the kernel's buddy order is not modelled) outside
/// scratch, preserved memory, memblock reservations, the crashkernel region and the KFENCE pool;
/// before the October 2025 fix (KhoRules.metadataAllocator == .slab) kzalloc'ed objects come from
/// slab pages (512-byte bitmaps eight to a page) or, when the fixture gives a KFENCE pool, from
/// KFENCE's object pages (pool + (2 + 2 i) pages, mm/kfence/core.c kfence_init_pool, read in
/// Debian's 6.12.95; the freelist is shuffled at boot, kexec-sim takes objects in index order).
struct MetadataAllocator {
    struct Exhausted: Error {}
    var free: RangeSet
    let rules: KhoRules
    let kfence: AddressRange?
    var kfenceServed = 0
    var slabPage: PhysAddr?
    var slabUsed = 0

    init(machine: Machine, scratch: KhoScratchLayout.Reservation, kho: KhoConfig, rules: KhoRules) {
        var f = machine.memory.usable
        for r in machine.memblockReserved + machine.crashkernelRanges { f.remove(r) }
        for a in scratch.areas { if let r = a.range { f.remove(r) } }
        // The kho_scratch array stays memblock-reserved (the page it is in is not free).
        if let a = scratch.array { f.remove(a.alignedOut(kexecPageSize)) }
        for p in kho.preserved { f.remove(p.range) }
        if let k = kho.kfencePool { f.remove(k) }
        free = f
        self.rules = rules
        kfence = kho.kfencePool
    }

    /// The highest free page (get_zeroed_page / alloc_page).
    mutating func page() throws -> PhysAddr {
        for r in free.ranges.reversed() {
            guard let t = r.pageTrimmed() else { continue }
            let p = PhysAddr(t.last.raw + 1 - kexecPageSize.raw)
            free.remove(AddressRange(start: p, size: kexecPageSize)!)
            return p
        }
        throw Exhausted()
    }

    /// One metadata object of `kind`.
    mutating func object(_ kind: KhoMemoryMap.ObjectKind) throws -> PhysAddr {
        guard rules.metadataAllocator == .slab else { return try page() }
        if let pool = kfence {
            let objects = Int(pool.size.raw / 0x2000) - 1
            if kfenceServed < objects {
                defer { kfenceServed += 1 }
                return PhysAddr(pool.first.raw + UInt64(2 + 2 * kfenceServed) * 0x1000)
            }
        }
        if case .bitmap(_, let bytes) = kind, bytes < 0x1000 {
            let perPage = 0x1000 / bytes
            if let p = slabPage, slabUsed < perPage {
                defer { slabUsed += 1 }
                return PhysAddr(p.raw + UInt64(slabUsed * bytes))
            }
            slabPage = try page()
            slabUsed = 1
            return slabPage!
        }
        return try page()
    }
}

extension KhoPlanner {
    /// The plan's rules with KHO's: KHO's replace those of the same name (the placement walk of a
    /// normal image), the boot_params size counts the KHO setup_data, and the handover is named.
    static func mergedRules(_ rules: [AppliedRule], _ kho: KhoPlan?, arch: Arch, type: ImageType) -> [AppliedRule] {
        guard let kho else { return rules }
        var out = rules
        for r in kho.rules.applied(handover: kho.handsOver, scratchPlacement: kho.handsOver && type == .normal) {
            if let i = out.firstIndex(where: { $0.name == r.name }) { out[i] = r } else { out.append(r) }
        }
        guard kho.handsOver else {
            out.append(
                AppliedRule(
                    "kho_handover", "none: kexec_load does not call kho_fill_kimage (kexec_file_load only)",
                    source: "kernel/kexec_file.c kimage_file_prepare_segments, \(KhoRules.new)"))
            return out
        }
        if let i = out.firstIndex(where: { $0.name == "boot_params_size" }) {
            out[i].choice = out[i].choice.replacingOccurrences(
                of: "no IMA, no KHO setup_data", with: "no IMA; + 16 + 32 for the KHO setup_data, before the RNG seed's"
            )
        }
        switch arch {
        case .x86_64:
            out.append(
                AppliedRule(
                    "kho_handover",
                    "setup_data SETUP_KEXEC_KHO (10) { fdt_addr, fdt_size = 4096, scratch_addr, scratch_size } "
                        + "in boot_params' setup_data chain",
                    source: "arch/x86/kernel/kexec-bzimage64.c setup_kho (stored copy 03738dd1), "
                        + "arch/x86/include/uapi/asm/setup_data.h struct kho_data (512a93a9)"))
        case .arm64:
            out.append(
                AppliedRule(
                    "kho_handover",
                    "/chosen linux,kho-fdt = <fdt 4096> and linux,kho-scratch = <scratch segment, bufsz>",
                    source: "drivers/of/kexec.c kho_add_chosen, drivers/of/fdt.c early_init_dt_check_kho (mainline)"))
        }
        return out
    }
}
