import Crypto
import Emulator
import Foundation
import GuestCode
import KexecModel
import Kimage
import PageTables

/// arm64 runs (issue 4): plan the segments (kernel Image, initrd, DTB, purgatory), build the
/// kimage, optionally the linear-map copy for MMU-on relocation, lay it all out in guest memory
/// and run arm64_relocate_new_kernel, purgatory and the jump in the emulated CPU.
public enum Arm64Runner {
    static let kernelAlign = ByteCount.mib(2)

    struct Layout {
        var segments: [Segment]
        var kimage: Kimage
        var kernelEntry: PhysAddr
        var dtb: PhysAddr
        var purgatoryBase: PhysAddr
        var purgatoryEntry: PhysAddr
        var zeroPage: PhysAddr
        var tables: [(name: String, tables: Arm64Tables)]
        var digest: [UInt8]
        var stored: [UInt8]
        var crash: [AddressRange]
        var layout: Arm64Layout?
        /// Header fields of a real Image file, for the landed evidence.
        var imageInfo: [(String, String)] = []
    }

    public static func run(_ sc: Scenario, options: RunOptions) throws(PlanError) -> RunResult {
        let engineName = EngineVersion.current.description
        var stats = RunStats()
        let policyName = "\(sc.policy.relocation.rawValue) \(sc.policy.granule.rawValue) \(sc.policy.mappings.rawValue)"
        func result(_ v: Verdict) -> RunResult {
            RunResult(scenario: sc, verdict: v, engine: engineName, stats: stats, policy: policyName)
        }
        let t0 = Date()
        let plan: Layout
        switch try planArm64(sc) {
        case .failure(let r):
            return result(
                Verdict(
                    kind: .rejected, summary: "the kernel refuses the load: \(r.errno.rawValue) from \(r.check)",
                    evidence: [("errno", r.errno.rawValue), ("check", r.check), ("detail", r.detail)],
                    errno: r.errno.rawValue))
        case .success(let p): plan = p
        }
        stats.planSeconds = Date().timeIntervalSince(t0)
        stats.payloadBytes = plan.segments.reduce(0) { $0 + $1.memsz.raw }
        let t1 = Date()
        let mem = GuestMemory()
        do {
            try layOut(plan, sc: sc, mem: mem)
        } catch {
            return result(Verdict(kind: .halt, summary: "guest memory could not be laid out: \(error)"))
        }
        stats.guestBlocks = mem.blocks.count
        let e: Arm64Engine
        do {
            e = try Arm64Engine(memory: mem)
            try e.stop(
                at: VirtAddr(plan.purgatoryBase.raw + Arm64GuestCode.purgatory.offset(of: "sha256_mismatch_spin")),
                name: "sha256_mismatch_spin")
        } catch {
            return result(Verdict(kind: .halt, summary: "engine: \(error)"))
        }
        e.backOnDemand = { pa, _ in sc.machine.memory.region(containing: pa)?.type == .usable }
        let code = Arm64GuestCode.relocateKernel
        let control = plan.kimage.controlPage.raw
        e.write(.x0, plan.kimage.head)
        e.write(.x1, plan.purgatoryEntry.raw)
        e.write(.x2, plan.dtb.raw)
        e.write(.x6, 4096)
        // The first kernel's exception vectors (`vectors` in its image, a kernel virtual address as a
        // 6.x kernel with 48-bit VAs has it): nothing in kexec's path changes VBAR_EL1.
        e.write(.vbarEL1, 0xffff_8000_0801_0800)
        var start = VirtAddr(control + code.offset(of: Arm64GuestCode.mmuOffEntry))
        if sc.policy.relocation == .mmuOn, let layout = plan.layout,
            let first = plan.tables.first(where: { $0.name == "linear map" })?.tables,
            let copy = plan.tables.first(where: { $0.name == "linear-map copy" })?.tables,
            let idmap = plan.tables.first(where: { $0.name == "idmap" })?.tables
        {
            e.enableMMU(
                tcr: first.tcr(idmapT0SZ: idmap.txsz), ttbr0: idmap.root.raw, ttbr1: first.root.raw,
                mair: Arm64Descriptor.mair)
            e.write(.x3, layout.physToVirtOffset)
            e.write(.x4, copy.root.raw)
            e.write(.x5, plan.zeroPage.raw)
            start = VirtAddr(control + code.offset(of: Arm64GuestCode.mmuOnEntry))
        }
        stats.setupSeconds = Date().timeIntervalSince(t1)
        let timeout = UInt64(max(0.001, options.timeoutSeconds) * 1e6)
        let budget = sc.budget ?? 0
        // The relocation routine's instructions are counted (cheap: it is a short copy loop); the
        // counter goes before purgatory, whose sha256 would run ~50× slower under it.
        let countRelocation = stats.payloadBytes <= 256 << 20
        if countRelocation { try? e.enableInstructionCounting() }
        var t = Date()
        var stop = e.run(from: start, until: VirtAddr(plan.purgatoryEntry.raw), budget: budget, timeoutMicros: timeout)
        stats.relocationSeconds = Date().timeIntervalSince(t)
        stats.relocationInstructions = e.instructionsExecuted
        if countRelocation { e.disableInstructionCounting() }
        if case .reached = stop {
            t = Date()
            stop = e.run(
                from: VirtAddr(plan.purgatoryEntry.raw), until: VirtAddr(plan.kernelEntry.raw), budget: budget,
                timeoutMicros: timeout)
            stats.purgatorySeconds = Date().timeIntervalSince(t)
        }
        t = Date()
        var v = diagnose(stop, plan: plan, sc: sc, e: e, mem: mem)
        if v.kind == .landed, let n = stats.relocationInstructions {
            v.evidence.append(("relocation_instructions", "\(n) (\(sc.policy.relocation.rawValue))"))
        }
        stats.verifySeconds = Date().timeIntervalSince(t)
        return result(v)
    }

    static func routine(_ pc: UInt64, _ plan: Layout) -> String {
        func sym(_ blob: GuestBlob, _ off: UInt64) -> String {
            let best = blob.symbols.filter { $0.value <= off }.max { $0.value < $1.value }
            guard let best else { return "+\(hex(off))" }
            return off == best.value ? best.key : "\(best.key)+\(hex(off - best.value))"
        }
        let c = plan.kimage.controlPage.raw
        if pc >= c && pc - c < 0x1000 { return "relocate_kernel: " + sym(Arm64GuestCode.relocateKernel, pc - c) }
        let pb = plan.purgatoryBase.raw
        if pc >= pb && pc - pb < Arm64GuestCode.purgatory.memorySize {
            return "purgatory: " + sym(Arm64GuestCode.purgatory, pc - pb)
        }
        return pc == plan.kernelEntry.raw ? "next kernel entry" : "no known routine"
    }

    static func diagnose(_ stop: StopReason, plan: Layout, sc: Scenario, e: Arm64Engine, mem: GuestMemory) -> Verdict {
        let machine = sc.machine
        switch stop {
        case .reached(let pc) where pc.raw == plan.kernelEntry.raw:
            if let m = Runner.firstDestinationMismatch(segments: plan.segments, mem: mem) {
                return Verdict(
                    kind: .corruption,
                    summary: "reached the entry but segment \(m.segment) differs at \(hex(m.address))",
                    evidence: [("segment", m.segment), ("address", hex(m.address)), ("offset", hex(m.offset))],
                    address: m.address)
            }
            let regs = [e.read(.x0), e.read(.x1), e.read(.x2), e.read(.x3)]
            let sctlr = e.read(.sctlrEL1)
            guard regs == [plan.dtb.raw, 0, 0, 0], sctlr & 1 == 0 else {
                return Verdict(
                    kind: .corruption, summary: "reached the entry with wrong hand-off state",
                    evidence: [("x0..x3", regs.map { hex($0) }.joined(separator: " ")), ("sctlr_el1", hex(sctlr))])
            }
            let segs = plan.segments.map { "\($0.name)@\(hex($0.mem.raw))+\(formatSize($0.memsz.raw))" }.joined(
                separator: " ")
            var ev: [(String, String)] = [
                ("entry", hex(pc.raw)), ("x0_dtb", hex(plan.dtb.raw)), ("x1_x2_x3", "0 0 0"),
                ("mmu", "off (SCTLR_EL1.M = 0)"),
                ("relocation", sc.policy.relocation.rawValue), ("segments", segs),
                ("sha256", plan.digest.map { String(format: "%02x", $0) }.joined()),
            ]
            if sc.machine.crashkernelProtection == .unmapped && !plan.crash.isEmpty {
                let g = Arm64Granule(rawValue: sc.policy.granule.rawValue) ?? .g4k
                let m: Arm64Mappings = sc.policy.mappings == .blocks ? .blocks : .basePages
                let ram = machine.memory.usable.ranges
                let l = Arm64Layout(ram: ram, granule: g)
                let open = Arm64LinearMap.cost(ram: ram, granule: g, mappings: m, layout: l)
                let guarded = Arm64LinearMap.cost(ram: ram, protected: plan.crash, granule: g, mappings: m, layout: l)
                ev.append(
                    (
                        "crashkernel_protection",
                        "unmapped: the first kernel's linear map costs \(guarded.pages) pages (\(formatSize(guarded.bytes))) instead of \(open.pages) (\(formatSize(open.bytes))); stamps into the region cannot happen"
                    ))
                let stamps =
                    sc.kexec?.inject.filter { if case .flipSourceByte = $0 { return true } else { return false } }.count
                    ?? 0
                if stamps > 0 { ev.append(("stamps_blocked", "\(stamps)")) }
            }
            for (name, t) in plan.tables {
                ev.append(
                    (
                        name.replacingOccurrences(of: " ", with: "_") + "_tables",
                        "\(t.cost.pages) pages (\(formatSize(t.cost.bytes))), \(t.granule) \(t.mappings)"
                    ))
            }
            ev += plan.imageInfo
            return Verdict(
                kind: .landed,
                summary:
                    "every destination byte matches, entry \(hex(pc.raw)) with x0 = DTB \(hex(plan.dtb.raw)), MMU off",
                evidence: ev)
        case .stoppedAt(let pc, let name):
            var ev: [(String, String)] = [("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)), ("loop", name)]
            let m = Runner.firstDestinationMismatch(segments: plan.segments, mem: mem)
            if let m {
                ev += [
                    ("stamped_segment", m.segment), ("stamped_address", hex(m.address)),
                    ("offset_in_segment", hex(m.offset)),
                ]
            } else if plan.stored != plan.digest {
                ev.append(("cause", "the digest stored in purgatory does not match the segments"))
            }
            return Verdict(
                kind: .hang,
                summary: "purgatory spins after a sha256 digest mismatch"
                    + (m.map { " (segment \($0.segment) differs at \(hex($0.address)))" } ?? ""),
                evidence: ev, address: m?.address)
        case .translationFault(let f, let access, let pc):
            let pa = plan.layout?.pa(f.va).map { $0.raw } ?? f.va.raw
            let region = machine.memory.describe(PhysAddr(pa))
            var ev: [(String, String)] = [
                ("address", hex(f.va.raw)), ("physical", hex(pa)), ("access", access.rawValue), ("pc", hex(pc.raw)),
                ("routine", routine(pc.raw, plan)), ("region", region), ("level", f.level),
                ("reason", f.reason.rawValue),
            ]
            if let lf = e.lastFault { ev.append(("arm64_fault", "\(lf)")) }
            return Verdict(
                kind: .pageFault,
                summary:
                    "translation fault at \(hex(f.va.raw)) (PA \(hex(pa)), \(region)) at level \(f.level) under \(sc.policy.relocation.rawValue)",
                evidence: ev, address: f.va.raw)
        case .unbackedAccess(let pa, let access, let pc):
            return Verdict(
                kind: .halt,
                summary:
                    "\(access.rawValue) of \(hex(pa.raw)) in \(machine.memory.describe(pa)): the machine would stop there",
                evidence: [("address", hex(pa.raw)), ("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan))],
                address: pa.raw)
        case .budgetExhausted(let pc, let n):
            return Verdict(
                kind: .hang, summary: "instruction budget of \(n) ran out in \(routine(pc.raw, plan))",
                evidence: [("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)), ("loop", e.sampleLoop(at: pc))])
        case .timedOut(let pc):
            return Verdict(
                kind: .hang,
                summary:
                    "no progress to the kernel entry within the wall-clock limit; stuck in \(routine(pc.raw, plan))",
                evidence: [("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)), ("loop", e.sampleLoop(at: pc))])
        case .reached(let pc), .cpuException(let pc, _):
            var detail = "stopped at \(hex(pc.raw))"
            if case .cpuException(_, let d) = stop { detail = d }
            return Verdict(
                kind: .halt, summary: "CPU exception in \(routine(pc.raw, plan)): \(detail)",
                evidence: [
                    ("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)), ("detail", detail),
                    ("vbar_el1", hex(e.read(.vbarEL1))),
                    (
                        "on_hardware",
                        "VBAR_EL1 still points at the first kernel's vectors, a virtual address that means nothing "
                            + "with the MMU off: the vector fetch aborts again and again (an exception storm) and "
                            + "the CPU never gets anywhere; the emulator stops at the first exception instead"
                    ),
                ])
        }
    }
}

extension Arm64Runner {
    /// The segments an arm64 scenario loads (for tests and tools): empty when the load is refused.
    public static func plannedSegments(_ sc: Scenario) throws(PlanError) -> [Segment] {
        switch try planArm64(sc) {
        case .success(let p): return p.segments
        case .failure: return []
        }
    }

    static func planArm64(_ sc: Scenario) throws(PlanError) -> Result<Layout, Rejection> {
        let machine = sc.machine
        guard let req = sc.kexec else {
            throw .input(InputError(file: sc.file, line: nil, field: "kexec", message: "a run needs a kexec section"))
        }
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
                    BufferRequest(name: "kernel", memsz: kMemsz, align: kernelAlign, bufMin: bufMin))
                segments.append(Segment(name: "kernel", mem: kAt, memsz: kMemsz, bytes: [], bufsz: k))
                kernelEntry = kAt
                if let i = try size(req.initrd, "kexec.initrd") {
                    let iMemsz = i.alignedUp(kexecPageSize)!
                    let iAt = try placer.place(
                        BufferRequest(name: "initrd", memsz: iMemsz, align: kexecPageSize, bufMin: bufMin))
                    segments.append(Segment(name: "initrd", mem: iAt, memsz: iMemsz, bytes: [], bufsz: i))
                    initrdRange = AddressRange(start: iAt, size: i)
                }
                // The DTB's size does not depend on the addresses in it (fixed-width cells).
                var chosen = chosenBase
                chosen.initrd = initrdRange
                let dtbSize = ByteCount(UInt64(Dtb.build(memory: machine.memory, chosen: chosen).count))
                let dMemsz = dtbSize.alignedUp(kexecPageSize)!
                dtb = try placer.place(BufferRequest(name: "dtb", memsz: dMemsz, align: kexecPageSize, bufMin: bufMin))
                segments.append(Segment(name: "dtb", mem: dtb, memsz: dMemsz, bytes: [], bufsz: dtbSize))
            case .kexecLoad:
                segments = try RealImages.userSegments(
                    req, machine: machine, crash: crash, limits: limits, placer: &placer)
                kernelEntry = req.entry ?? (req.segments.first?.mem ?? PhysAddr(0))
                dtb = req.segments.first { $0.name == "dtb" }?.mem ?? PhysAddr(0)
            }
            let pAt = try placer.place(
                BufferRequest(
                    name: "purgatory", memsz: purgMemsz, align: kexecPageSize, bufMin: ram.first?.first ?? PhysAddr(0)))
            segments.append(
                Segment(
                    name: "purgatory", mem: pAt, memsz: purgMemsz, bytes: [],
                    bufsz: ByteCount(UInt64(blob.bytes.count)), isPurgatory: true))
            try SanityCheck.check(
                segments: segments, syscall: req.syscall, type: req.type, totalRAM: machine.memory.totalRAM,
                crashRegions: crash, limits: limits)
        } catch let r as Rejection {
            return .failure(r)
        } catch let e as PlanError {
            throw e
        } catch {
            throw .unsupported("\(error)")
        }
        for i in segments.indices where !segments[i].isPurgatory && segments[i].bytes.isEmpty {
            if segments[i].name == "dtb" && req.syscall == .kexecFileLoad {
                var chosen = chosenBase
                chosen.initrd = initrdRange
                segments[i].bytes = Dtb.build(memory: machine.memory, chosen: chosen)
            } else {
                segments[i].bytes = Payload.synthetic(name: segments[i].name, size: Int(segments[i].bufsz.raw))
            }
        }
        let (digest, regions) = Planner.segmentsDigest(segments)
        var stored = digest
        if req.inject.contains(.wrongDigest) { stored[0] ^= 0xff }
        let injectUDF = req.inject.contains(.invalidOpcode)
        let pi = segments.firstIndex { $0.isPurgatory }!
        // Same purgatory_data layout as x86_64, with the DTB where x86 keeps boot_params.
        segments[pi].bytes = Planner.patchPurgatory(
            blob: blob, entry: kernelEntry, rsi: dtb, regions: regions, digest: stored)
        let purgEntry = PhysAddr(segments[pi].mem.raw + blob.offset(of: "purgatory_start"))
        if injectUDF {
            // invalid-opcode: `udf #0` (an all-zero word) at purgatory's entry.
            let at = Int(blob.offset(of: "purgatory_start"))
            segments[pi].bytes.replaceSubrange(at..<at + 4, with: [0, 0, 0, 0])
        }
        var (kimage, allocator): (Kimage, PageAllocator)
        do {
            (kimage, allocator) = try KimageBuilder.build(
                segments: segments, type: req.type, startAddress: purgEntry, freeRAM: ram, crashRegions: crash)
        } catch {
            return .failure(error)
        }
        let box = AllocatorBox(allocator)
        var tables: [(name: String, tables: Arm64Tables)] = []
        var layout: Arm64Layout?
        let zero: PhysAddr
        do {
            zero = try box.next()
            if sc.policy.relocation == .mmuOn {
                let granule = Arm64Granule(rawValue: sc.policy.granule.rawValue) ?? .g4k
                let mappings: Arm64Mappings = sc.policy.mappings == .blocks ? .blocks : .basePages
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
                tables = [("linear map", first), ("linear-map copy", copy), ("idmap", idmap)]
            }
        } catch let r as Rejection {
            return .failure(r)
        } catch {
            throw .unsupported("arm64 tables: \(error)")
        }
        kimage.extraControlPages = box.handed
        return .success(
            Layout(
                segments: segments, kimage: kimage, kernelEntry: kernelEntry, dtb: dtb, purgatoryBase: segments[pi].mem,
                purgatoryEntry: purgEntry, zeroPage: zero, tables: tables, digest: digest, stored: stored, crash: crash,
                layout: layout, imageInfo: imageInfo))
    }

    /// Guest memory for an arm64 plan: destinations (old contents, or the segments for a crash
    /// image), source, indirection, control, zero and table pages, all backed by host memory.
    static func layOut(_ plan: Layout, sc: Scenario, mem: GuestMemory) throws {
        let k = plan.kimage
        var dest = RangeSet()
        for s in plan.segments { if let r = s.range { dest.insert(r) } }
        for r in dest.ranges { try mem.add(start: r.first, size: r.size, label: "destination") }
        var pages = Set<UInt64>()
        pages.insert(k.controlPage.raw)
        pages.insert(plan.zeroPage.raw)
        if let s = k.swapPage { pages.insert(s.raw) }
        for p in k.indirectionPages { pages.insert(p.pa.raw) }
        for s in k.sourcePages where s.source != s.destination { pages.insert(s.source.raw) }
        for (_, t) in plan.tables {
            for pa in t.pages.keys {
                for sub in stride(from: pa.raw, to: pa.raw + t.granule.size, by: 0x1000) { pages.insert(sub) }
            }
        }
        let sorted = pages.filter { !dest.contains(PhysAddr($0)) }.sorted()
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 0x1000 { j += 1 }
            try mem.add(start: PhysAddr(sorted[i]), size: ByteCount(UInt64(j - i + 1) * 0x1000), label: "kimage pages")
            i = j + 1
        }
        struct Fail: Error, CustomStringConvertible { var description: String }
        if k.type == .crash {
            for s in plan.segments {
                guard mem.write(s.mem, s.bytes) else { throw Fail(description: "segment \(s.name)") }
            }
        } else {
            for r in dest.ranges {
                guard let p = mem.pointer(r.first, length: Int(r.size.raw)) else {
                    throw Fail(description: "destinations")
                }
                memset(p, Int32(Payload.oldContentsByte), Int(r.size.raw))
            }
            for sp in k.sourcePages {
                let s = plan.segments[sp.segment]
                let off = sp.pageIndex * 0x1000
                var page = [UInt8](repeating: 0, count: 0x1000)
                if off < s.bytes.count {
                    let n = min(0x1000, s.bytes.count - off)
                    page.replaceSubrange(0..<n, with: s.bytes[off..<(off + n)])
                }
                guard mem.write(sp.source, page) else { throw Fail(description: "source page \(sp.source)") }
            }
            for ip in k.indirectionPages {
                for (n, e) in ip.entries.enumerated() where e != 0 {
                    guard mem.write64(PhysAddr(ip.pa.raw + UInt64(n) * 8), e) else { throw Fail(description: "list") }
                }
            }
        }
        // A misbehaving first kernel stamps the loaded image (flip-source-byte), after the digest —
        // unless the crashkernel region is unmapped from its linear map (it cannot reach it then).
        let protected = k.type == .crash && sc.machine.crashkernelProtection == .unmapped
        for case .flipSourceByte(let name, let offset) in sc.kexec?.inject ?? [] where !protected {
            guard let si = plan.segments.firstIndex(where: { $0.name == name }),
                offset.raw < plan.segments[si].memsz.raw
            else {
                throw Fail(description: "inject flip-source-byte: no segment \(name) with offset \(offset)")
            }
            let target: PhysAddr
            if k.type == .crash {
                target = PhysAddr(plan.segments[si].mem.raw + offset.raw)
            } else {
                guard
                    let sp = k.sourcePages.first(where: { $0.segment == si && $0.pageIndex == Int(offset.raw / 0x1000) }
                    )
                else {
                    throw Fail(description: "inject: no source page")
                }
                target = PhysAddr(sp.source.raw + offset.raw % 0x1000)
            }
            guard let p = mem.pointer(target, length: 1) else { throw Fail(description: "inject") }
            p.storeBytes(of: p.load(as: UInt8.self) ^ 0xff, as: UInt8.self)
        }
        guard mem.write(k.controlPage, Arm64GuestCode.relocateKernel.bytes) else {
            throw Fail(description: "relocate_kernel")
        }
        for (_, t) in plan.tables {
            for pa in t.pages.keys {
                guard mem.write(pa, t.encodedPage(pa)) else { throw Fail(description: "table page \(pa)") }
            }
        }
    }
}
