import Crypto
import Foundation
import GuestCode
import KexecModel
import Kimage
import PageTables

public enum Planner {
    /// The control page's kernel-virtual alias the relocation routine is entered at.
    public static let controlVA = VirtAddr(0xffff_ffff_a000_0000)
    /// Biggest synthetic payload we generate (host memory guard).
    static let maxSyntheticBytes: UInt64 = 8 << 30

    // arch/x86/kernel/kexec-bzimage64.c minimums
    static let minPurgatory = PhysAddr(0x3000)
    static let minBootParams = PhysAddr(0x3000)
    static let minInitrd = PhysAddr(0x100_0000)

    /// Plans a scenario of either architecture: the segments, the kimage and the tables.
    public static func plan(_ scenario: Scenario) throws(PlanError) -> PlanOutcome {
        if let req = scenario.kexec, req.type == .crash, req.loader == .kexecTools,
            !scenario.machine.iomemView.contains(where: { $0.name == "Crash kernel" })
        {
            // kexec -p gives up before any syscall (kexec/kexec.c main, 2.0.25).
            return .rejected(
                Rejection(
                    .EFAILED, check: "kexec-tools is_crashkernel_mem_reserved",
                    "Memory for crashkernel is not reserved (no \"Crash kernel\" in /proc/iomem): boot the first "
                        + "kernel with crashkernel= (set machine.crashkernel)"),
                scenario)
        }
        if let req = scenario.kexec, req.type == .crash, scenario.machine.crashkernelRanges.isEmpty {
            // crashk_res is empty: kexec_load's sanity check finds no segment inside it, and
            // kexec_file_load's hole search over it finds nothing (kernel/kexec_file.c).
            let check = req.syscall == .kexecLoad ? "sanity_check_segment_list" : "kexec_locate_mem_hole"
            let why =
                "a crash load goes into the crashkernel reservation (crashk_res), and this machine has none: "
                + "its first kernel booted without crashkernel= (set machine.crashkernel, or import a log whose "
                + "kernel reserved it)"
            return .rejected(Rejection(.EADDRNOTAVAIL, check: check, why), scenario)
        }
        switch scenario.machine.arch {
        case .x86_64: return try planX86(scenario)
        case .arm64: return try Arm64Planner.plan(scenario)
        }
    }

    /// x86_64: kexec_file_load's bzImage64 loader (arch/x86/kernel/kexec-bzimage64.c) or the
    /// user's kexec_load list plus kexec-tools' purgatory; the identity map of init_pgtable.
    static func planX86(_ scenario: Scenario) throws(PlanError) -> PlanOutcome {
        let t0 = Date()
        let machine = scenario.machine
        guard let req = scenario.kexec else {
            throw .input(
                InputError(file: scenario.file, line: nil, field: "kexec", message: "a run needs a kexec section"))
        }
        guard let policy = scenario.x86Policy else { throw .policyMismatch(scenario) }
        let fiveLevel = machine.paging == .fiveLevel
        let limits = ArchLimits.x86_64(fiveLevel: fiveLevel)
        let crash = machine.crashkernelRanges
        let ram = machine.memory.usable.ranges
        // Placement follows the running kernel's version (X86FileLoadRules). A crash image is
        // placed in crashk_res only, never crashk_low_res (kexec_walk_resources).
        let rules = X86FileLoadRules(version: machine.kernelVersion)
        let crashkRes = X86FileLoadRules.crashkRes(crash)
        // walk_system_ram_res visits System RAM resources one by one: one per usable region (e820
        // entry), adjacent ones not merged (Debian 6.1 under OVMF places its kernel by the split
        // at 0x7d035017 of /proc/iomem).
        let ramResources = machine.memory.regions.filter { $0.type == .usable }.map(\.range)
        let searchRanges = req.type == .crash ? crashkRes.map { [$0] } ?? [] : ramResources
        // kexec_load: the kernel places nothing; the purgatory hole is kexec-tools' choice (not by version).
        let byVersion = req.syscall == .kexecFileLoad
        var placer = Placer(
            ranges: searchRanges, order: req.placement, reverseWalk: byVersion ? rules.reverseWalk : true,
            topDownOffByOne: byVersion && rules.topDownOffByOne)
        // Kexec HandOver: normal images go into scratch only (KhoPlanner).
        let kho: KhoPlan?
        switch try KhoPlanner.prepare(scenario) {
        case .failure(let r): return .rejected(r, scenario)
        case .success(let k): kho = k
        }
        placer = KhoPlanner.placer(kho, req, fallback: placer)
        let blob = X86_64GuestCode.purgatory
        let purgMemsz = ByteCount(blob.memorySize).alignedUp(kexecPageSize)!
        var appliedRules: [AppliedRule] = []
        var cmdline = req.cmdline
        var segments: [Segment] = []
        var kernelEntry = PhysAddr(0)
        var bootParams = PhysAddr(0)
        // Real files (RealImages.swift): a bzImage kernel, an initrd loaded as it is.
        var bzImage: RealImages.X86Kernel?
        var imageInfo: [(String, String)] = []
        // kexec-tools' own purgatory segment, which ours runs inside (loader: kexec-tools).
        var toolPurgatory: KexecToolsPurgatory?

        func synthSize(_ p: PayloadSpec?, _ field: String) throws(PlanError) -> ByteCount? {
            guard let p else { return nil }
            guard let s = p.size else { return nil }
            guard s.raw > 0 else {
                throw .input(InputError(file: scenario.file, line: nil, field: field + ".size", message: "size 0"))
            }
            return s
        }

        do {
            switch req.syscall {
            case .kexecFileLoad:
                // bzImage64_probe and the loader's first checks come before anything is placed.
                bzImage = try req.kernel?.file.map { try RealImages.x86BzImage(path: $0, scenario: scenario) }
                let initrdContents = try RealImages.initrdContents(req.initrd, scenario: scenario)
                let initrdFile = initrdContents?.bytes
                let fileSize = bzImage.map { ByteCount(UInt64($0.header.protectedModeLength)) }
                guard let ksize = try fileSize ?? synthSize(req.kernel, "kexec.kernel") else {
                    throw PlanError.input(
                        InputError(
                            file: scenario.file, line: nil, field: "kexec.kernel",
                            message: "kexec_file_load needs a kernel"))
                }
                let isize = try initrdFile.map { ByteCount(UInt64($0.count)) } ?? synthSize(req.initrd, "kexec.initrd")
                // kho_fill_kimage runs before the image loader.
                if let kho, kho.handsOver { segments.append(try KhoPlanner.scratchSegment(kho, placer: &placer)) }
                if req.type == .crash {
                    // crash_load_segments: the ELF core header describing the first kernel's memory,
                    // loaded first, bottom-up from crashk_res.start (top_down = false, buf_min 0).
                    let pieces = X86FileLoadRules.ramRangesOutside(ramResources, crash)
                    let hdr = rules.elfcorehdr(ramRanges: pieces)
                    let at = try placer.place(
                        BufferRequest(
                            role: .elfcorehdr, memsz: hdr.memsz, align: kexecPageSize, bufMin: PhysAddr(0),
                            topDown: false))
                    segments.append(Segment(role: .elfcorehdr, mem: at, memsz: hdr.memsz, bytes: [], bufsz: hdr.bufsz))
                    cmdline = X86FileLoadRules.crashCommandLine(req.cmdline, elfcorehdr: at)
                }
                // The real purgatory's segment (sized as the running kernel's own); ours runs inside:
                // its bytes are our blob, the rest up to memsz zeros its bss and stack may use
                // (bufsz keeps the real purgatory's size, as the kernel prints it).
                let real = rules.purgatorySize
                let pBufsz = max(real.bufsz, ByteCount(UInt64(blob.bytes.count)))
                let pMemsz = max(real.memsz, purgMemsz, pBufsz.alignedUp(kexecPageSize)!)
                let pAt = try placer.place(
                    BufferRequest(role: .purgatory, memsz: pMemsz, align: kexecPageSize, bufMin: minPurgatory))
                segments.append(Segment(role: .purgatory, mem: pAt, memsz: pMemsz, bytes: [], bufsz: pBufsz))
                // boot_params, the command line (as userspace passed it, with its NUL) and the
                // setup_data room (with the EFI runtime map on an EFI boot); its size does not count
                // the elfcorehdr= prefix.
                let bpBase = rules.bootParamsBufsz(
                    cmdlineLength: req.cmdline.utf8.count + 1,
                    efiRuntimeMapSize: machine.efiRuntimeMapSize ?? ByteCount(0))
                let bpSize = ByteCount(bpBase.raw + (kho?.handsOver == true ? KhoPlanner.x86SetupDataBytes : 0))
                let bpMemsz = bpSize.alignedUp(kexecPageSize)!
                let bAt = try placer.place(
                    BufferRequest(role: .bootParams, memsz: bpMemsz, align: kexecPageSize, bufMin: minBootParams))
                segments.append(Segment(role: .bootParams, mem: bAt, memsz: bpMemsz, bytes: [], bufsz: bpSize))
                bootParams = bAt
                appliedRules = rules.applied(crash: req.type == .crash, syntheticKernel: bzImage == nil)
                if let image = bzImage {
                    let k = try RealImages.x86BzImageSegment(
                        image, bufMin: rules.kernelBufMin(prefAddress: image.header.prefAddress), placer: &placer)
                    segments.append(k)
                    kernelEntry = PhysAddr(k.mem.raw + 0x200)
                    imageInfo += image.evidence
                } else {
                    // A bzImage-like kernel: memsz PAGE_ALIGN(init_size), init_size as given or estimated.
                    guard ksize.alignedUp(kexecPageSize) != nil,
                        let kMemsz = try
                            (req.kernel?.initSize.map { s throws(PlanError) in
                                guard s.raw >= ksize.raw else {
                                    throw PlanError.input(
                                        InputError(
                                            file: scenario.file, line: nil, field: "kexec.kernel.init_size",
                                            message: "init_size \(s) is smaller than the kernel's size \(ksize)"))
                                }
                                return s.alignedUp(kexecPageSize)
                            } ?? X86FileLoadRules.syntheticInitSize(payload: ksize))
                    else {
                        throw PlanError.input(
                            InputError(
                                file: scenario.file, line: nil, field: "kexec.kernel.size", message: "size overflows"))
                    }
                    let kAt = try placer.place(
                        BufferRequest(
                            role: .kernel, memsz: kMemsz, align: X86FileLoadRules.syntheticKernelAlignment,
                            bufMin: rules.kernelBufMin(prefAddress: X86FileLoadRules.syntheticPrefAddress)))
                    segments.append(Segment(role: .kernel, mem: kAt, memsz: kMemsz, bytes: [], bufsz: ksize))
                    kernelEntry = PhysAddr(kAt.raw + 0x200)
                }
                if let isize {
                    guard let iMemsz = isize.alignedUp(kexecPageSize) else {
                        throw PlanError.input(
                            InputError(
                                file: scenario.file, line: nil, field: "kexec.initrd.size", message: "size overflows"))
                    }
                    let iAt = try placer.place(
                        BufferRequest(role: .initrd, memsz: iMemsz, align: kexecPageSize, bufMin: minInitrd))
                    segments.append(
                        Segment(role: .initrd, mem: iAt, memsz: iMemsz, bytes: initrdFile ?? [], bufsz: isize))
                    if let f = initrdFile, let path = initrdContents?.label {
                        imageInfo.append(("initrd_file", "\(path) (\(f.count) bytes)"))
                    }
                }
            case .kexecLoad where req.loader == .kexecTools:
                // kexec-tools places everything itself (KexecToolsX86), its purgatory included.
                switch try KexecToolsX86.plan(scenario) {
                case .failure(let r): throw r
                case .success(let p):
                    segments = p.segments
                    kernelEntry = PhysAddr(p.layout.kernelLoad.raw + 0x200)
                    bootParams = p.layout.realModeData
                    imageInfo += p.imageInfo
                    appliedRules = p.layout.rules
                    toolPurgatory = .x86_64
                }
            case .kexecLoad:
                // The user's list is checked as the kernel sees it first; kexec-tools adds its
                // purgatory as one more segment, in a hole of its own.
                segments = try RealImages.userSegments(
                    req, machine: machine, crash: crash, limits: limits, placer: &placer)
                let pAt = try placer.place(
                    BufferRequest(role: .purgatory, memsz: purgMemsz, align: kexecPageSize, bufMin: minPurgatory))
                segments.append(
                    Segment(
                        role: .purgatory, mem: pAt, memsz: purgMemsz, bytes: [],
                        bufsz: ByteCount(UInt64(blob.bytes.count))))
                kernelEntry = req.entry ?? PhysAddr((req.segments.first?.mem.raw ?? 0) &+ 0x200)
                bootParams = segments.first { $0.role == .bootParams }?.mem ?? PhysAddr(0)
            }
            try SanityCheck.check(
                segments: segments, syscall: req.syscall, type: req.type, totalRAM: machine.memory.totalRAM,
                crashRegions: crash, limits: limits)
        } catch let e as Rejection {
            return .rejected(KhoPlanner.explain(e, kho, req), scenario)
        } catch let e as PlanError {
            throw e
        } catch {
            throw .unsupported("\(error)")
        }

        // Contents, now that the destinations are known and accepted.
        for i in segments.indices where !segments[i].isPurgatory {
            let s = segments[i]
            if !s.bytes.isEmpty || s.generated != nil { continue }  // read from a file
            guard s.bufsz.raw <= maxSyntheticBytes else {
                throw .input(
                    InputError(
                        file: scenario.file, line: nil, field: "kexec.\(s.name)",
                        message: "payload of \(s.bufsz) is more than this tool generates (8GiB)"))
            }
            if s.role == .bootParams, let image = bzImage {
                segments[i].bytes = RealImages.x86BootParams(
                    machine: machine, cmdline: cmdline, loadAddress: s.mem, kernel: image,
                    initrd: segments.first { $0.role == .initrd })
                let mapSize = machine.efiRuntimeMapSize?.raw ?? 0
                X86EfiState.apply(
                    to: &segments[i].bytes, machine: machine, loadAddress: s.mem,
                    mapOffset: X86FileLoadRules.efiSetupDataOffset(cmdlineLength: req.cmdline.utf8.count + 1),
                    setupDataOffset: X86FileLoadRules.efiSetupDataOffset(
                        cmdlineLength: req.cmdline.utf8.count + 1, efiRuntimeMapSize: mapSize))
            } else if s.role == .bootParams && req.syscall == .kexecFileLoad {
                segments[i].bytes = Payload.bootParams(machine: machine, cmdline: cmdline, loadAddress: s.mem)
            } else {
                // Produced where it is read (layout, digest, verification), never held whole.
                segments[i].generated = Payload.generated(name: s.name, size: Int(s.bufsz.raw))
            }
            if s.role == .bootParams, let kho, kho.handsOver, let sg = segments.first(where: { $0.role == .khoScratch })
            {
                KhoPlanner.writeX86SetupData(
                    &segments[i].bytes, cmdlineLength: req.cmdline.utf8.count + 1,
                    efiRuntimeMapSize: machine.efiRuntimeMapSize ?? ByteCount(0), bootParams: s.mem, fdt: kho.fdt,
                    scratch: sg)
            }
        }
        // machine_kexec_prepare runs between the swap page and the segments' source pages: the
        // identity map from control pages, the transition mapping from ordinary pages.
        let kernel = machine.kernelVersion
        let idRule = X86IdentityMapRule.of(kernel)
        let relocation = X86RelocationRule.of(kernel)
        var tables: X86PageTables?
        var tablesSeconds = 0.0
        if let t = toolPurgatory, t.blobOffset == nil {
            throw .unsupported("purgatory: ours does not fit inside kexec-tools' purgatory segment")
        }
        let sealed: Sealed
        switch try seal(
            &segments, blob: blob, purgatoryStart: X86_64GuestCode.Purgatory.purgatoryStart, entry: kernelEntry,
            entryArg: try handedArgument(req, real: bootParams, scenario), request: req,
            ram: KhoPlanner.kimageFree(ram, kho), crash: crash,
            controlPages: Int(relocation.controlPageSize / 0x1000),
            // kexec_load: kexec-tools' update_purgatory hashes every segment but its purgatory.
            digestSkipsElfcorehdr: req.syscall == .kexecFileLoad && rules.elfcorehdrExcludedFromDigest,
            purgatoryOffset: toolPurgatory?.blobOffset,
            prepare: { pending in
                let tTables = Date()
                defer { tablesSeconds = Date().timeIntervalSince(tTables) }
                let box = AllocatorBox(pending.allocator, first: pending.controlPGD)
                let requests = X86IdentityMap.requests(
                    machine: machine, segments: pending.segments.compactMap { s in s.range.map { (s.name, $0) } },
                    policy: policy, imageType: req.type, crashkernel: crash, kernel: kernel)
                tables = try X86IdentityMap.build(
                    requests: requests, policy: policy.identityMap, platform: machine.platform,
                    levels: machine.paging.levels, kernel: kernel, transition: (controlVA, pending.controlPage),
                    allocate: box.next, allocateTransition: box.ordinary)
                pending.allocator = box.allocator
                pending.extraControlPages = box.handed
            })
        {
        case .failure(let r): return .rejected(r, scenario)
        case .success(let s): sealed = s
        }
        let kimage = sealed.kimage
        let (digest, stored, start) = (sealed.digest, sealed.stored, sealed.start)
        let pIndex = segments.firstIndex { $0.isPurgatory }!
        let blobBase = PhysAddr(segments[pIndex].mem.raw + (toolPurgatory?.blobOffset ?? 0))
        // The first kernel's own tables at the jump (only the control page's alias): a model
        // artifact, from pages after the image's own.
        let first: X86PageTables
        do {
            first = try X86IdentityMap.build(
                requests: [], policy: .ram2m, platform: machine.platform, levels: machine.paging.levels,
                transition: (controlVA, kimage.controlPage), allocate: sealed.allocator.next)
        } catch let r as Rejection {
            return .rejected(r, scenario)
        } catch {
            throw .unsupported("page tables: \(error)")
        }
        guard let tables else { throw .unsupported("page tables: machine_kexec_prepare did not run") }
        var tableRules = [
            AppliedRule(
                "identity_map",
                policy.identityMap == .kernel
                    ? "\(idRule.gbpages == .full ? "full" : "exact") gbpages (\(idRule.why))"
                    : "\(policy.identityMap.rawValue) (policy override; this kernel: \(idRule.gbpages.rawValue) gbpages)",
                source: idRule.gbpagesSource),
            AppliedRule(
                "efi_config_table",
                idRule.mapsEfiConfigTables
                    ? "mapped: nr_tables × efi_config_table_64_t after the system table"
                    : "not mapped (only the EFI system table)",
                source: idRule.configTableSource),
            AppliedRule(
                "control_page",
                relocation.controlPageSize == 0x2000
                    ? "8 KiB: PGD page + code page" : "4 KiB code page, PGD from a control page of its own",
                source: relocation.source),
            AppliedRule(
                "relocation_copy",
                relocation.swapsAlways
                    ? "3-way swap through the swap page for every source page"
                    : "single copy source → destination (swap only with preserve_context)",
                source: relocation.source),
        ]
        if req.type == .normal {
            tableRules.append(
                AppliedRule(
                    "kimage_alloc_page",
                    "lowest free page first; an already-sourced destination page is swapped in, others parked",
                    source: "kernel/kexec_core.c kimage_alloc_page, read in 6.1.192"))
        }
        var plan = Plan(
            scenario: scenario, segments: segments, kimage: kimage, kernelEntry: kernelEntry,
            entryArgument: bootParams, purgatoryBase: blobBase, purgatoryEntry: start,
            digest: digest, storedDigest: stored, crashRegions: crash,
            planSeconds: Date().timeIntervalSince(t0), tablesSeconds: tablesSeconds, imageInfo: imageInfo,
            arch: .x86(X86Plan(tables: tables, firstKernelTables: first, controlVA: controlVA)))
        plan.rules = KhoPlanner.mergedRules(appliedRules, kho, arch: .x86_64, type: req.type) + tableRules
        plan.kho = kho
        return .planned(plan)
    }

    /// The digest purgatory checks (kexec_calculate_store_digests): every segment but purgatory,
    /// its buffer then zeros up to memsz; and the (start, len) regions it covers.
    /// With `skippingElfcorehdr` (CRASH_HOTPLUG, v6.6+: kexec_calculate_store_digests skips
    /// image->elfcorehdr_index, which hotplug rewrites) the elfcorehdr segment is left out too.
    static func segmentsDigest(_ segments: [Segment], skippingElfcorehdr: Bool = false) -> (
        digest: [UInt8], regions: [PurgatoryRegion]
    ) {
        var sha = SHA256()
        var regions: [PurgatoryRegion] = []
        let zeros = [UInt8](repeating: 0, count: 1 << 16)
        var scratch: [UInt8] = []
        for s in segments where !s.isPurgatory && !(skippingElfcorehdr && s.role == .elfcorehdr) {
            var off = 0
            while off < s.contentCount {
                let n = min(1 << 20, s.contentCount - off)
                s.withContents(from: off, count: n, scratch: &scratch) { sha.update(bufferPointer: $0) }
                off += n
            }
            var pad = s.memsz.raw - UInt64(s.contentCount)
            while pad > 0 {
                let n = Int(min(pad, UInt64(zeros.count)))
                sha.update(data: zeros[0..<n])
                pad -= UInt64(n)
            }
            regions.append(PurgatoryRegion(start: s.mem.raw, length: s.memsz.raw))
        }
        return (Array(sha.finalize()), regions)
    }

    /// The purgatory's bytes with `purgatory_data` filled in (`GuestBlob.patchingPurgatoryData`):
    /// the next kernel's entry, its argument (x86_64 boot_params in rsi, arm64 the DTB in x0), the
    /// digest regions and the digest.
    ///
    /// Never traps: more regions than `purgatory_data` holds (16, KEXEC_SEGMENT_MAX), a digest of
    /// the wrong size or a blob without `purgatory_data` is `PlanError.unsupported`, e.g.
    /// "purgatory: purgatory_data holds at most 16 regions, 17 given".
    /// What `seal` gives: the kimage, its allocator for the architecture's tables, purgatory's
    /// entry, and the digest (computed, and as stored in purgatory).
    struct Sealed {
        var kimage: Kimage
        var allocator: AllocatorBox
        var start: PhysAddr
        var digest: [UInt8]
        var stored: [UInt8]
    }

    /// Both architectures, once every segment's bytes are known: the digest purgatory checks
    /// (kexec_calculate_store_digests), purgatory's data filled in, and the kimage built with
    /// purgatory's entry as the start address, in the kernel's order (kernel/kexec_file.c and
    /// kexec.c, read in 6.1.192): control page, swap page, then `prepare` (machine_kexec_prepare's
    /// tables), then sources and indirection pages (kimage_load_segment).
    static func seal(
        _ segments: inout [Segment], blob: GuestBlob, purgatoryStart: UInt64, entry: PhysAddr, entryArg: PhysAddr,
        request req: KexecRequest, ram: [AddressRange], crash: [AddressRange], controlPages: Int = 1,
        digestSkipsElfcorehdr: Bool = false, pageSize: ByteCount = kexecPageSize, purgatoryOffset: UInt64? = nil,
        prepare: ((inout PendingKimage) throws -> Void)? = nil
    ) throws(PlanError) -> Result<Sealed, Rejection> {
        let (digest, regions) = segmentsDigest(segments, skippingElfcorehdr: digestSkipsElfcorehdr)
        var stored = digest
        if req.inject.contains(.wrongDigest) { stored[0] ^= 0xff }
        guard let pi = segments.firstIndex(where: \.isPurgatory) else {
            throw .unsupported("no purgatory segment to fill")
        }
        let filled = try filledPurgatory(blob, entry: entry, entryArg: entryArg, regions: regions, digest: stored)
        var start = PhysAddr(segments[pi].mem.raw + purgatoryStart)
        if let at = purgatoryOffset {
            // Inside kexec-tools' purgatory segment: zeros, then our blob at `at`; the rest of the
            // segment (its bufsz stays kexec-tools') is zeros, our bss and stack among them.
            var bytes = [UInt8](repeating: 0, count: Int(at) + filled.count)
            bytes.replaceSubrange(Int(at)..<Int(at) + filled.count, with: filled)
            segments[pi].bytes = bytes
            start = PhysAddr(segments[pi].mem.raw + at + purgatoryStart)
        } else {
            segments[pi].bytes = filled
        }
        do {
            var pending = try KimageBuilder.start(
                segments: segments, type: req.type, startAddress: start, freeRAM: ram, crashRegions: crash,
                controlPages: controlPages, pageSize: pageSize)
            try prepare?(&pending)
            let kimage = try pending.loadSegments()
            return .success(
                Sealed(
                    kimage: kimage, allocator: AllocatorBox(pending.allocator), start: start, digest: digest,
                    stored: stored))
        } catch let r as Rejection {
            return .failure(r)
        } catch let e as PlanError {
            throw e
        } catch {
            throw .unsupported("page tables: \(error)")
        }
    }

    /// What purgatory's `entry_arg` carries: boot_params / the DTB, or a `handoff-pointer`
    /// injection's pointer; one that overflows is an input error naming the field.
    static func handedArgument(_ req: KexecRequest, real: PhysAddr, _ sc: Scenario) throws(PlanError) -> PhysAddr {
        guard let p = req.handedArgument(real: real) else {
            throw .input(
                InputError(
                    file: sc.file, line: nil, field: "kexec.inject.handoff-pointer",
                    message: "\(real) + offset does not fit in 64 bits"))
        }
        return p
    }

    static func filledPurgatory(
        _ blob: GuestBlob, entry: PhysAddr, entryArg: PhysAddr, regions: [PurgatoryRegion], digest: [UInt8]
    ) throws(PlanError) -> [UInt8] {
        do {
            return try blob.patchingPurgatoryData(
                entry: entry.raw, entryArg: entryArg.raw, regions: regions, digest: digest)
        } catch {
            throw .unsupported("purgatory: \(error)")
        }
    }
}
