import Foundation
import GuestCode
import KexecModel
import Kimage
import PageTables

/// arm64 planning: the segments (kernel Image, initrd, DTB, purgatory) as the arm64 loaders place
/// them (arch/arm64/kernel/kexec_image.c image_load, machine_kexec_file.c load_other_segments; or
/// the user's kexec_load list), the kimage, and for MMU-on relocation the first kernel's linear
/// map, its copy and the idmap of the control page (arch/arm64/kernel/machine_kexec.c,
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

    /// Plans an arm64 scenario; a load the kernel refuses is `.rejected`.
    static func plan(_ sc: Scenario) throws(PlanError) -> PlanOutcome {
        let t0 = Date()
        let machine = sc.machine
        guard let req = sc.kexec else {
            throw .input(InputError(file: sc.file, line: nil, field: "kexec", message: "a run needs a kexec section"))
        }
        guard let policy = sc.arm64Policy else { throw .policyMismatch(sc) }
        let crash = machine.crashkernelRanges
        let ram = machine.memory.usable.ranges
        let limits = ArchLimits.arm64
        let blob = Arm64GuestCode.purgatory
        let purgMemsz = ByteCount(blob.memorySize).alignedUp(kexecPageSize)!
        var placer = Placer(ranges: req.type == .crash ? crash : ram, order: req.placement)
        var segments: [Segment] = []
        var kernelEntry = PhysAddr(0)
        var dtb = PhysAddr(0)
        var initrdRange: AddressRange?
        var imageInfo: [(String, String)] = []
        func size(_ p: PayloadSpec?, _ field: String) throws(PlanError) -> ByteCount? {
            guard let p else { return nil }
            if p.file != nil {
                throw .input(
                    InputError(
                        file: sc.file, line: nil, field: field + ".file",
                        message: "a file needs kexec_file_load with a kernel Image file (kexec.kernel.file)"))
            }
            guard let s = p.size, s.raw > 0, s.raw <= 8 << 30 else {
                throw .input(
                    InputError(file: sc.file, line: nil, field: field + ".size", message: "size must be 1 byte to 8GiB")
                )
            }
            return s
        }
        let chosenBase = Dtb.Chosen(bootargs: req.cmdline, initrd: nil, usableMemory: req.type == .crash ? crash : [])
        do {
            switch req.syscall {
            case .kexecFileLoad where req.kernel?.file != nil:
                // A real Image file: image_load's placement (Arm64ImageLoad.swift).
                let path = req.kernel?.file ?? ""
                let file = try RealImages.readFile(path, field: "kexec.kernel.file", scenario: sc)
                var initrd: InitrdSource?
                if let ipath = req.initrd?.file {
                    initrd = .file(path: ipath, bytes: try RealImages.readInitrd(ipath, scenario: sc))
                } else if let i = try size(req.initrd, "kexec.initrd") {
                    initrd = .size(i)
                }
                let load = try loadImage(
                    path: path, file: file, initrd: initrd, chosen: chosenBase, memory: machine.memory,
                    crashRegions: req.type == .crash ? crash : nil, placer: &placer)
                segments.append(load.kernel)
                if let h = load.elfcorehdr { segments.append(h) }
                if let i = load.initrd {
                    segments.append(i)
                    initrdRange = AddressRange(start: i.mem, size: i.bufsz)
                }
                segments.append(load.dtb)
                kernelEntry = load.entry
                dtb = load.dtb.mem
                imageInfo = load.evidence
            case .kexecFileLoad:
                guard let k = try size(req.kernel, "kexec.kernel") else {
                    throw PlanError.input(
                        InputError(
                            file: sc.file, line: nil, field: "kexec.kernel", message: "kexec_file_load needs a kernel"))
                }
                let kMemsz = k.alignedUp(kexecPageSize)!
                let bufMin = ram.first?.first ?? PhysAddr(0)
                let kAt = try placer.place(
                    BufferRequest(role: .kernel, memsz: kMemsz, align: kernelAlign, bufMin: bufMin))
                segments.append(Segment(role: .kernel, mem: kAt, memsz: kMemsz, bytes: [], bufsz: k))
                kernelEntry = kAt
                if let i = try size(req.initrd, "kexec.initrd") {
                    let iMemsz = i.alignedUp(kexecPageSize)!
                    let iAt = try placer.place(
                        BufferRequest(role: .initrd, memsz: iMemsz, align: kexecPageSize, bufMin: bufMin))
                    segments.append(Segment(role: .initrd, mem: iAt, memsz: iMemsz, bytes: [], bufsz: i))
                    initrdRange = AddressRange(start: iAt, size: i)
                }
                // The DTB's size does not depend on the addresses in it (fixed-width cells).
                var chosen = chosenBase
                chosen.initrd = initrdRange
                let dtbSize = ByteCount(UInt64(Dtb.build(memory: machine.memory, chosen: chosen).count))
                let dMemsz = dtbSize.alignedUp(kexecPageSize)!
                dtb = try placer.place(BufferRequest(role: .dtb, memsz: dMemsz, align: kexecPageSize, bufMin: bufMin))
                segments.append(Segment(role: .dtb, mem: dtb, memsz: dMemsz, bytes: [], bufsz: dtbSize))
            case .kexecLoad:
                segments = try RealImages.userSegments(
                    req, machine: machine, crash: crash, limits: limits, placer: &placer)
                kernelEntry = req.entry ?? (req.segments.first?.mem ?? PhysAddr(0))
                dtb = segments.first { $0.role == .dtb }?.mem ?? PhysAddr(0)
            }
            let pAt = try placer.place(
                BufferRequest(
                    role: .purgatory, memsz: purgMemsz, align: kexecPageSize, bufMin: ram.first?.first ?? PhysAddr(0)))
            segments.append(
                Segment(
                    role: .purgatory, mem: pAt, memsz: purgMemsz, bytes: [],
                    bufsz: ByteCount(UInt64(blob.bytes.count))))
            try SanityCheck.check(
                segments: segments, syscall: req.syscall, type: req.type, totalRAM: machine.memory.totalRAM,
                crashRegions: crash, limits: limits)
        } catch let r as Rejection {
            return .rejected(r, sc)
        } catch let e as PlanError {
            throw e
        } catch {
            throw .unsupported("\(error)")
        }
        for i in segments.indices where !segments[i].isPurgatory && segments[i].bytes.isEmpty {
            if segments[i].role == .dtb && req.syscall == .kexecFileLoad {
                var chosen = chosenBase
                chosen.initrd = initrdRange
                segments[i].bytes = Dtb.build(memory: machine.memory, chosen: chosen)
            } else {
                segments[i].bytes = Payload.synthetic(name: segments[i].name, size: Int(segments[i].bufsz.raw))
            }
        }
        // Same purgatory_data layout as x86_64, with the DTB where x86 keeps boot_params.
        let sealed: Planner.Sealed
        switch try Planner.seal(
            &segments, blob: blob, purgatoryStart: Arm64GuestCode.Purgatory.purgatoryStart, entry: kernelEntry,
            entryArg: dtb, request: req, ram: ram, crash: crash)
        {
        case .failure(let r): return .rejected(r, sc)
        case .success(let s): sealed = s
        }
        var kimage = sealed.kimage
        let (digest, stored, purgEntry) = (sealed.digest, sealed.stored, sealed.start)
        let pi = segments.firstIndex { $0.isPurgatory }!
        let box = sealed.allocator
        var tables: [Arm64Plan.NamedTables] = []
        var layout: Arm64Layout?
        let zero: PhysAddr
        do {
            zero = try box.next()
            if policy.relocation == .mmuOn {
                let granule = policy.granule
                let mappings: Arm64Mappings = policy.mappings == .blocks ? .blocks : .basePages
                // The first kernel's linear map covers the RAM it booted with (mem= trims it).
                var linear = RangeSet(ram)
                if let lim = machine.memLimit, let cut = AddressRange(first: PhysAddr(lim.raw), last: PhysAddr(.max)) {
                    linear.remove(cut)
                }
                let l = Arm64Layout(ram: linear.ranges, granule: granule)
                layout = l
                let alloc = { () throws -> PhysAddr in try box.aligned(granule.size) }
                let first = try Arm64LinearMap.build(
                    ram: linear.ranges, granule: granule, mappings: mappings, layout: l, allocate: alloc)
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
        return .planned(
            Plan(
                scenario: sc, segments: segments, kimage: kimage, kernelEntry: kernelEntry, entryArgument: dtb,
                purgatoryBase: segments[pi].mem, purgatoryEntry: purgEntry, digest: digest, storedDigest: stored,
                crashRegions: crash, planSeconds: Date().timeIntervalSince(t0), imageInfo: imageInfo,
                arch: .arm64(
                    Arm64Plan(tables: tables, layout: layout, zeroPage: zero, relocation: policy.relocation))))
    }
}
