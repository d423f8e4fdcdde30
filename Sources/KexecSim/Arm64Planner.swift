import Foundation
import GuestCode
import KexecModel
import Kimage
import PageTables

/// arm64 planning by the running kernel's version and config (`Arm64Rules`): the segments as the
/// arm64 loaders place them (kexec_file_load: arch/arm64/kernel/kexec_image.c image_load and
/// machine_kexec_file.c load_other_segments, no purgatory; kexec_load: the user's list plus
/// kexec-tools' purgatory), the kimage, and for MMU-on relocation the first kernel's linear map,
/// its copy and the idmap of the control page (arch/arm64/kernel/machine_kexec.c,
/// arch/arm64/mm/trans_pgd.c).
public enum Arm64Planner {
    static let kernelAlign = ByteCount.mib(2)

    /// The segments an arm64 scenario loads (for tests and tools): empty when the load is refused.
    public static func plannedSegments(_ sc: Scenario) throws(PlanError) -> [Segment] {
        switch try plan(sc) {
        case .planned(let p): return p.segments
        case .rejected: return []
        }
    }

    /// crashk_res: the crashkernel range crash loads go into (the highest one; crashk_low_res, the
    /// low part of a `,high` reservation, lies below it and is never crash-load space).
    static func crashkRes(_ m: Machine) -> AddressRange? { m.crashkernelRanges.max { $0.first < $1.first } }

    /// Plans an arm64 scenario; a load the kernel refuses is `.rejected`.
    static func plan(_ sc: Scenario) throws(PlanError) -> PlanOutcome {
        let t0 = Date()
        let machine = sc.machine
        guard let req = sc.kexec else {
            throw .input(InputError(file: sc.file, line: nil, field: "kexec", message: "a run needs a kexec section"))
        }
        guard let policy = sc.arm64Policy else { throw .policyMismatch(sc) }
        let v = machine.kernelVersion
        let granule = policy.granule
        let pageSize = ByteCount(granule.size)
        var rules = ruleSet(sc, policy: policy)
        let crashAll = machine.crashkernelRanges
        let crashk = crashkRes(machine).map { [$0] } ?? []
        let ram = machine.memory.usable.ranges
        let limits = ArchLimits.arm64
        // kexec_walk_memblock: free memblock ranges only; a crash image only crashk_res.
        var free = machine.freeMemblock
        for r in crashAll { free.remove(r) }
        var placer = Placer(ranges: req.type == .crash ? crashk : free.ranges, order: req.placement)
        placer.pageSize = pageSize
        rules.append(placementRule(sc, free: free, crashk: crashk))
        // Kexec HandOver: normal images go into scratch only (KhoPlanner).
        let kho: KhoPlan?
        switch try KhoPlanner.prepare(sc) {
        case .failure(let r): return .rejected(r, sc)
        case .success(let k): kho = k
        }
        placer = KhoPlanner.placer(kho, req, fallback: placer)
        var segments: [Segment] = []
        var kernelEntry = PhysAddr(0)
        var dtb = PhysAddr(0)
        var imageInfo: [(String, String)] = []
        let withPurgatory = req.syscall == .kexecLoad
        // kexec-tools' own purgatory segment, which ours runs inside (loader: kexec-tools).
        var toolPurgatory: KexecToolsPurgatory?
        func size(_ p: PayloadSpec?, _ field: String) throws(PlanError) -> ByteCount? {
            guard let p, p.file == nil else { return nil }
            guard let s = p.size, s.raw > 0, s.raw <= 8 << 30 else {
                throw .input(
                    InputError(file: sc.file, line: nil, field: field + ".size", message: "size must be 1 byte to 8GiB")
                )
            }
            return s
        }
        // drivers/of/kexec.c: usable-memory-range is crashk_res, then crashk_low_res.
        let usable = req.type == .crash ? crashk + crashAll.filter { !crashk.contains($0) } : []
        var chosen = Dtb.Chosen(bootargs: req.cmdline, usableMemory: usable, seeds: true)
        var khoSegment: Segment?
        do {
            switch req.syscall {
            case .kexecFileLoad:
                let kernel: KernelSource
                if let path = req.kernel?.file {
                    kernel = .file(
                        path: path, bytes: try RealImages.readFile(path, field: "kexec.kernel.file", scenario: sc))
                } else if let k = try size(req.kernel, "kexec.kernel") {
                    kernel = .synthetic(k)
                } else {
                    throw PlanError.input(
                        InputError(
                            file: sc.file, line: nil, field: "kexec.kernel", message: "kexec_file_load needs a kernel"))
                }
                var initrd: InitrdSource?
                if let (label, bytes) = try RealImages.initrdContents(req.initrd, scenario: sc) {
                    initrd = .file(path: label, bytes: bytes)
                } else if let i = try size(req.initrd, "kexec.initrd") {
                    initrd = .size(i)
                }
                // kho_fill_kimage runs before the image loader.
                if let kho, kho.handsOver {
                    let s = try KhoPlanner.scratchSegment(kho, placer: &placer)
                    khoSegment = s
                    chosen.khoFdt = AddressRange(start: kho.fdt, size: KhoPlanner.fdtSize)
                    chosen.khoScratch = AddressRange(start: s.mem, size: s.bufsz)
                }
                let hdr =
                    req.type == .crash
                    ? elfcorehdrSize(memory: machine.memory, crash: crashAll, cpus: machine.cpus) : nil
                let load = try loadImage(
                    kernel: kernel, initrd: initrd, chosen: chosen, memory: machine.memory, elfcorehdrSize: hdr,
                    pageSize: pageSize, devices: sc.follow == nil ? [] : DtbPlatform.virt().nodes, placer: &placer)
                segments = [khoSegment, load.kernel, load.elfcorehdr, load.initrd].compactMap { $0 } + [load.dtb]
                kernelEntry = load.entry
                dtb = load.dtb.mem
                imageInfo = load.evidence
            case .kexecLoad where req.loader == .kexecTools:
                // kexec-tools places everything itself (KexecToolsArm64), its purgatory included.
                switch try KexecToolsArm64.plan(sc, pageSize: pageSize.raw) {
                case .failure(let r): throw r
                case .success(let p):
                    segments = p.segments
                    kernelEntry = p.layout.imageBase
                    dtb = p.layout.dtbBase
                    imageInfo = p.imageInfo
                    rules += p.layout.rules
                    toolPurgatory = .arm64
                }
            case .kexecLoad:
                segments = try RealImages.userSegments(
                    req, machine: machine, crash: crashk, limits: limits, placer: &placer, pageSize: pageSize)
                kernelEntry = req.entry ?? (req.segments.first?.mem ?? PhysAddr(0))
                dtb = segments.first { $0.role == .dtb }?.mem ?? PhysAddr(0)
                // kexec-tools brings its own purgatory, in a hole of its own.
                let blob = Arm64GuestCode.purgatory
                let memsz = ByteCount(blob.memorySize).alignedUp(pageSize)!
                let at = try placer.place(
                    BufferRequest(
                        role: .purgatory, memsz: memsz, align: pageSize, bufMin: ram.first?.first ?? PhysAddr(0)))
                segments.append(
                    Segment(
                        role: .purgatory, mem: at, memsz: memsz, bytes: [], bufsz: ByteCount(UInt64(blob.bytes.count))))
            }
            try SanityCheck.check(
                segments: segments, syscall: req.syscall, type: req.type, totalRAM: machine.memory.totalRAM,
                crashRegions: crashk, limits: limits, pageSize: pageSize)
        } catch let r as Rejection {
            return .rejected(KhoPlanner.explain(r, kho, req), sc)
        } catch let e as PlanError {
            throw e
        } catch {
            throw .unsupported("\(error)")
        }
        for i in segments.indices
        where !segments[i].isPurgatory && segments[i].bytes.isEmpty && segments[i].generated == nil {
            segments[i].generated = Payload.generated(name: segments[i].name, size: Int(segments[i].bufsz.raw))
        }
        let sealed: Planner.Sealed
        if withPurgatory {
            // Same purgatory_data layout as x86_64, with the DTB where x86 keeps boot_params.
            if let t = toolPurgatory, t.blobOffset == nil {
                throw .unsupported("purgatory: ours does not fit inside kexec-tools' purgatory segment")
            }
            switch try Planner.seal(
                &segments, blob: Arm64GuestCode.purgatory, purgatoryStart: Arm64GuestCode.Purgatory.purgatoryStart,
                entry: kernelEntry, entryArg: try Planner.handedArgument(req, real: dtb, sc), request: req,
                ram: KhoPlanner.kimageFree(free.ranges, kho),
                crash: crashk, pageSize: pageSize,
                purgatoryOffset: toolPurgatory?.blobOffset)
            {
            case .failure(let r): return .rejected(r, sc)
            case .success(let s): sealed = s
            }
        } else {
            switch sealWithoutPurgatory(
                segments, entry: kernelEntry, type: req.type, ram: KhoPlanner.kimageFree(free.ranges, kho),
                crash: crashk, pageSize: pageSize)
            {
            case .failure(let r): return .rejected(r, sc)
            case .success(let s): sealed = s
            }
        }
        var kimage = sealed.kimage
        let box = sealed.allocator
        let (relocation, _) = Arm64Rules.relocation(version: v, type: req.type, override: policy.relocation)
        let (scope, _) = Arm64Rules.linearMap(
            version: v, config: machine.config, crashkernel: !crashAll.isEmpty, override: policy.mappings)
        let (protection, _) = Arm64Rules.protection(version: v, override: machine.crashkernelProtection)
        // The first kernel's linear map covers the RAM it booted with (mem= trims it).
        var linear = RangeSet(ram)
        if let lim = machine.memLimit, let cut = AddressRange(first: PhysAddr(lim.raw), last: PhysAddr(.max)) {
            linear.remove(cut)
        }
        // vabits_actual and the levels: what trans_pgd_create_copy makes of them (MMU-on only).
        var loadFault: Arm64LoadFault?
        if relocation == .mmuOn && machine.config.vaBits52 {
            let (va, vaRule) = Arm64Rules.virtualAddressing(
                version: v, config: machine.config, granule: granule, cpu: machine.idAA64MMFR0)
            rules.append(vaRule)
            if va.lpa2 {
                guard let (copy, copyRule) = Arm64Rules.transPgdCopy(version: v, levels: va.levels) else {
                    throw .unsupported(
                        "\(sc.file): a \(v) first kernel with \(va.levels) table levels (52-bit VAs, FEAT_LPA2): "
                            + "trans_pgd_create_copy is modelled for v6.9–v6.12 only (the copy_p4d fix's release is "
                            + "not established)")
                }
                rules.append(copyRule)
                guard copy == .readsThroughEmptyPgd else {
                    throw .unsupported(
                        "\(sc.file): MMU-on relocation through a 52-bit (FEAT_LPA2) linear map is not modelled")
                }
                loadFault = try transPgdEmptyPgdRead(ram: linear.ranges)
            }
        }
        let layout = Arm64Layout(ram: linear.ranges, granule: granule, vaBits: Arm64Rules.vaBits(granule))
        let mappings: Arm64Mappings = scope == .wholeMapBasePages ? .basePages : .blocks
        let regionPages = scope == .regionBasePages ? crashAll : []
        let linearCost = firstKernelLinearMapCost(
            ram: linear.ranges, scope: scope, region: regionPages, granule: granule, layout: layout)
        if let i = rules.firstIndex(where: { $0.name == "linear_map" }) { rules[i].choice += "; " + linearCost }
        var tables: [Arm64Plan.NamedTables] = []
        let zero: PhysAddr
        do {
            zero = try box.next()
            if relocation == .mmuOn && loadFault == nil {
                let alloc = { () throws -> PhysAddr in try box.aligned(granule.size) }
                // Region-only base pages change leaf sizes inside the region only, which a normal load
                // never copies to or from: the copy is built with blocks there (the cost evidence
                // counts the real shape).
                let first = try Arm64LinearMap.build(
                    ram: linear.ranges, granule: granule, mappings: mappings, layout: layout, allocate: alloc)
                let copy = try Arm64LinearMap.copy(first, allocate: alloc)
                let idmap = try Arm64LinearMap.identityMapPage(kimage.controlPage, granule: granule, allocate: alloc)
                tables = [
                    .init(name: "linear map", tables: first), .init(name: "linear-map copy", tables: copy),
                    .init(name: "idmap", tables: idmap),
                ]
            }
        } catch let r as Rejection {
            return .rejected(r, sc)
        } catch {
            throw .unsupported("arm64 tables: \(error)")
        }
        kimage.extraControlPages = box.handed
        let pi = segments.firstIndex { $0.isPurgatory }
        var arm = Arm64Plan(
            tables: tables, layout: relocation == .mmuOn ? layout : nil, zeroPage: zero, relocation: relocation)
        arm.protection = req.type == .crash && !crashAll.isEmpty ? protection : .none
        arm.pageSize = pageSize
        arm.loadFault = loadFault
        arm.firstKernelLinearMap = linearCost
        var plan = Plan(
            scenario: sc, segments: segments, kimage: kimage, kernelEntry: kernelEntry, entryArgument: dtb,
            purgatoryBase: pi.map { PhysAddr(segments[$0].mem.raw + (toolPurgatory?.blobOffset ?? 0)) },
            purgatoryEntry: pi == nil ? nil : sealed.start,
            digest: sealed.digest, storedDigest: sealed.stored, crashRegions: crashk,
            planSeconds: Date().timeIntervalSince(t0), imageInfo: imageInfo, arch: .arm64(arm))
        plan.rules = KhoPlanner.mergedRules(rules, kho, arch: .arm64, type: req.type)
        plan.kho = kho
        return .planned(plan)
    }

    /// A kexec_file_load kimage without purgatory: kimage->start is the kernel's entry, which the
    /// relocation routine (or cpu_soft_restart) branches to with x0 = DTB. The digest is computed
    /// for the evidence only: nothing checks it. Every kimage page is PAGE_SIZE = `pageSize`.
    static func sealWithoutPurgatory(
        _ segments: [Segment], entry: PhysAddr, type: ImageType, ram: [AddressRange], crash: [AddressRange],
        pageSize: ByteCount
    ) -> Result<Planner.Sealed, Rejection> {
        let (digest, _) = Planner.segmentsDigest(segments)
        do {
            let (kimage, allocator) = try KimageBuilder.build(
                segments: segments, type: type, startAddress: entry, freeRAM: ram, crashRegions: crash,
                pageSize: pageSize)
            return .success(
                Planner.Sealed(
                    kimage: kimage, allocator: AllocatorBox(allocator), start: entry, digest: digest, stored: digest))
        } catch {
            return .failure(error)
        }
    }

    /// Table pages of the first kernel's own linear map under its rule, against blocks.
    static func firstKernelLinearMapCost(
        ram: [AddressRange], scope: Arm64Rules.LinearMapScope, region: [AddressRange], granule: Granule,
        layout: Arm64Layout
    ) -> String {
        let blocks = Arm64LinearMap.cost(ram: ram, granule: granule, mappings: .blocks, layout: layout)
        let cost: Arm64TableCost
        let what: String
        switch scope {
        case .wholeMapBasePages:
            cost = Arm64LinearMap.cost(ram: ram, granule: granule, mappings: .basePages, layout: layout)
            what = "whole-map base pages"
        case .regionBasePages:
            cost = Arm64LinearMap.cost(ram: ram, protected: region, granule: granule, mappings: .blocks, layout: layout)
            what = "base pages over the crashkernel region"
        case .blocks:
            cost = blocks
            what = "blocks"
        }
        return "\(cost.pages) pages (\(formatSize(cost.bytes))), \(what); \(blocks.pages) pages "
            + "(\(formatSize(blocks.bytes))) with blocks"
    }
}
