import Emulator
import Foundation
import GuestCode
import KexecModel
import Kimage
import PageTables

/// The one run pipeline for both architectures: plan → guest layout → execute (relocation,
/// purgatory, the touch probe) → verify. What differs per architecture comes from a `RunBackend`.
public enum Runner {
    public static func run(_ scenario: Scenario, options: RunOptions = RunOptions()) throws(PlanError) -> RunResult {
        var sc = scenario
        if let p = options.policyOverride { sc = sc.overridingIdentityMap(p) }
        if sc.budget == nil { sc.budget = options.budget }
        if let g = options.follow { sc.follow = g }
        if sc.follow != nil { try prepareFollow(&sc) }
        if !sc.chain.isEmpty { return try KhoChain.run(sc, options: options) }
        switch try Planner.plan(sc) {
        case .rejected(let r, let s): return rejected(r, s)
        case .planned(let plan): return execute(plan, options: options)
        }
    }

    /// The result of a load the kernel refuses.
    static func rejected(_ r: Rejection, _ s: Scenario) -> RunResult {
        let v = Verdict(
            kind: .rejected, summary: "the kernel refuses the load: \(r.errno.rawValue) from \(r.check)",
            evidence: [
                Evidence(.errno, r.errno.rawValue), Evidence(.check, r.check), Evidence(.detail, r.detail),
                Evidence(.kernel, s.machine.kernelVersion.description),
            ],
            errno: r.errno.rawValue)
        return RunResult(
            scenario: s, verdict: v, engine: EngineVersion.current.description, stats: RunStats(),
            policy: s.policyLabel)
    }

    /// Runs a plan in an engine of its architecture.
    static func execute(_ plan: Plan, options: RunOptions) -> RunResult {
        switch plan.arch {
        case .x86: return execute(plan, backend: X86RunBackend.self, options: options)
        case .arm64: return execute(plan, backend: Arm64RunBackend.self, options: options)
        }
    }

    /// Runs a plan in an engine of the backend's architecture.
    static func execute<B: RunBackend>(_ plan: Plan, backend: B.Type, options: RunOptions) -> RunResult {
        var stats = RunStats()
        stats.planSeconds = plan.planSeconds
        stats.tablesSeconds = plan.tablesSeconds
        let sc = plan.scenario
        let machine = sc.machine
        func result(_ v: Verdict) -> RunResult {
            RunResult(
                scenario: sc, verdict: v, engine: EngineVersion.current.description, stats: stats,
                policy: plan.policyLabel)
        }
        if let fault = plan.arm64?.loadFault {
            var v = fault.verdict(policy: plan.policyLabel, kernel: machine.kernelVersion)
            v.evidence += plan.rules.map(\.evidence)
            return result(v)
        }
        if let halt = hazardCheck(plan) { return result(halt) }
        let t0 = Date()
        let layout: GuestLayout
        do {
            layout = try GuestLayout.build(plan)
        } catch {
            return result(Verdict(kind: .halt, summary: "guest memory could not be laid out: \(error)"))
        }
        let mem = layout.memory
        stats.guestBlocks = mem.blocks.count
        stats.guestReservedBytes = mem.reservedBytes
        stats.payloadBytes = plan.segments.reduce(0) { $0 + $1.memsz.raw }
        let e: Engine<B.Arch>
        let purgatoryMode = options.purgatory ?? sc.purgatory ?? .native
        do {
            e = try Engine<B.Arch>(memory: mem)
            if let base = plan.purgatoryBase {
                try e.stop(at: VirtAddr(base.raw + B.mismatchSpinOffset), name: "sha256_mismatch_spin")
                // The engine keeps the host routines (and their hashers) for the run.
                if purgatoryMode == .native {
                    _ = try NativePurgatorySha256<B.Arch>(engine: e, base: base, routines: B.sha256Routines)
                }
            }
        } catch {
            return result(Verdict(kind: .halt, summary: "engine: \(error)"))
        }
        e.backOnDemand = { pa, _ in machine.memory.region(containing: pa)?.type == .usable }
        e.onDemandChunk = { pa in
            // The page's 2 MiB chunk, clipped to its usable region.
            guard let reg = machine.memory.region(containing: pa)?.range,
                let chunk = AddressRange(start: pa.alignedDown(.mib(2)), size: .mib(2))?.intersection(reg)
            else { return nil }
            return chunk.pageTrimmed()
        }
        var startAddress = plan.kimage.startAddress
        for case .startAddress(let a) in sc.kexec?.inject ?? [] { startAddress = a }
        let start = B.prepare(e, plan: plan, startAddress: startAddress)
        // The relocation routine's instructions are counted when asked, or when the payload is
        // small (the copy loop is short); never across purgatory, whose sha256 runs ~10× slower
        // under the counter.
        let countRelocation = options.countInstructions || (machine.arch == .arm64 && stats.payloadBytes <= 256 << 20)
        if countRelocation {
            do { try e.enableInstructionCounting() } catch {
                return result(Verdict(kind: .halt, summary: "engine: \(error)"))
            }
        }
        stats.setupSeconds = Date().timeIntervalSince(t0)

        let budget = sc.budget ?? 0
        let timeoutUs = UInt64(max(0.001, options.timeoutSeconds) * 1e6)
        // Phase 1: relocation, up to purgatory's entry (or the kernel's, when there is no purgatory).
        var t = Date()
        let r1 = e.run(
            from: start, until: VirtAddr((plan.purgatoryEntry ?? plan.kernelEntry).raw), budget: budget,
            timeoutMicros: timeoutUs)
        stats.relocationSeconds = Date().timeIntervalSince(t)
        stats.relocationInstructions = e.instructionsExecuted
        if !options.countInstructions { e.disableInstructionCounting() }
        var stop = r1
        // Phase 2: purgatory, up to the next kernel's entry (none on arm64 kexec_file_load).
        if case .reached = r1 {
            // The first kernel writes where it should not while the relocation runs (injected).
            for case .firstKernelWrite(let a) in sc.kexec?.inject ?? [] {
                if let p = mem.pointer(a, length: 1) { p.storeBytes(of: p.load(as: UInt8.self) ^ 0xff, as: UInt8.self) }
            }
            if let purgatoryEntry = plan.purgatoryEntry {
                t = Date()
                stop = e.run(
                    from: VirtAddr(purgatoryEntry.raw), until: VirtAddr(plan.kernelEntry.raw), budget: budget,
                    timeoutMicros: timeoutUs)
                stats.purgatorySeconds = Date().timeIntervalSince(t)
                if options.countInstructions, let total = e.instructionsExecuted, let r = stats.relocationInstructions {
                    stats.purgatoryInstructions = total - r
                }
            }
        }
        stats.tlbFills = e.tlbFills
        stats.onDemandPages = e.onDemandPageCount
        t = Date()
        let d = Diagnosis<B>(plan: plan, engine: e, layout: layout, options: options)
        var v = d.verdict(for: stop)
        if v.kind == .landed, let arm64 = plan.arm64, let n = stats.relocationInstructions {
            v.evidence.append(Evidence(.relocationInstructions, "\(n) (\(arm64.relocation.rawValue))"))
        }
        // Phase 3: the next kernel's first reads, through the tables it is entered with.
        if v.kind == .landed && !sc.nextKernelTouches.isEmpty {
            v = d.probeTouches(landed: v, timeoutMicros: timeoutUs)
        }
        // Read before the next kernel runs (--follow) and may reuse purgatory's memory.
        if let base = plan.purgatoryBase {
            v.evidence += purgatoryEvidence(
                mode: purgatoryMode, stop: stop, plan: plan,
                computedDigest: PhysAddr(base.raw + B.computedDigestOffset),
                memory: mem)
        }
        // Phase 4 (--follow): the next kernel itself, as far as the machine model goes.
        if v.kind == .landed, let goal = sc.follow {
            if options.countInstructions { try? e.enableInstructionCounting() }
            e.onDemandLimit = max(e.onDemandLimit, followOnDemandPages)
            // The next kernel reads firmware memory (ACPI, NVS, reserved: zeros here, as no fixture
            // gives their bytes) and, on a PC, the legacy first MiB (BIOS data, EBDA, ROM area);
            // anything else outside RAM is reported.
            let firmware: Set<RegionType> = [.usable, .reserved, .acpi, .nvs]
            e.backOnDemand = { pa, _ in
                if let t = machine.memory.region(containing: pa)?.type { return firmware.contains(t) }
                return machine.arch == .x86_64 && pa.raw < 0x10_0000
            }
            let tf = Date()
            v = follow(e, plan: plan, backend: B.self, goal: goal, landed: v, options: options)
            // Preserved memory (Kexec HandOver) once more, after the next kernel ran.
            v = KhoFollowCheck.check(v, plan: plan, layout: layout)
            stats.followSeconds = Date().timeIntervalSince(tf)
            t = t.addingTimeInterval(stats.followSeconds)
            stats.tlbFills = e.tlbFills
            stats.onDemandPages = e.onDemandPageCount
        }
        v.warnings += placementWarnings(plan)
        // Which kernel's rules, and which variant of each rule that changed over time.
        v.evidence.append(Evidence(.kernel, sc.machine.kernelVersion.description))
        v.evidence += plan.rules.map(\.evidence)
        stats.verifySeconds = Date().timeIntervalSince(t)
        return result(v)
    }

    /// How purgatory's sha256 ran; once purgatory got past sha256_final (it reached the next
    /// kernel's entry, or spins on a mismatch), the digest it computed, read from
    /// `purgatory_computed_digest`.
    static func purgatoryEvidence<F: WalkFault>(
        mode: PurgatoryMode, stop: StopReason<F>, plan: Plan, computedDigest: PhysAddr, memory: GuestMemory
    ) -> [Evidence] {
        var ev = [
            Evidence(
                .purgatory,
                mode == .native
                    ? "native: sha256_init/update/final served on the host (swift-crypto) through the guest's tables"
                    : "emulated: sha256 instruction by instruction")
        ]
        let finished: Bool
        switch stop {
        case .reached(let pc): finished = pc.raw == plan.kernelEntry.raw
        case .stoppedAt(_, let name): finished = name == "sha256_mismatch_spin"
        default: finished = false
        }
        if finished, let bytes = memory.read(computedDigest, count: 32) {
            ev.append(Evidence(.purgatoryDigest, bytes.map { String(format: "%02x", $0) }.joined()))
        }
        return ev
    }

    /// RAM a followed kernel may touch before the run calls it a runaway: 1 Mi pages (4 GiB),
    /// backed lazily by the host.
    static let followOnDemandPages = 1 << 20

    /// `--follow` needs the next kernel's own code (`kexec.kernel.file`, loaded with
    /// kexec_file_load, or on arm64 by kexec-tools' `kexec -l` / `-p`, whose purgatory enters the
    /// Image with x0 = DTB as the kernel's relocation does) and tells it where its early console
    /// is: the architecture's option is appended to the command line.
    static func prepareFollow(_ sc: inout Scenario) throws(PlanError) {
        let byTool = sc.kexec?.loader == .kexecTools && sc.machine.arch == .arm64
        guard var k = sc.kexec, k.syscall == .kexecFileLoad || byTool, k.kernel?.file != nil else {
            throw .input(
                InputError(
                    file: sc.file, line: nil, field: "follow",
                    message:
                        "following the next kernel needs a real kernel loaded with kexec_file_load "
                        + "(or on arm64 with loader: kexec-tools) (kexec.kernel: { file: … })"))
        }
        let option = sc.machine.arch == .arm64 ? Arm64RunBackend.followConsoleOption : X86RunBackend.followConsoleOption
        k.cmdline = k.cmdline.isEmpty ? option : k.cmdline + " " + option
        sc.kexec = k
    }

    /// On UV a leaf that covers any byte of a hazard halts the machine, even if nothing touches it
    /// (speculation): checked on the built tables before any instruction runs.
    static func hazardCheck(_ plan: Plan) -> Verdict? {
        let m = plan.scenario.machine
        guard m.platform == .uv, !m.hazards.isEmpty, let tables = plan.x86?.tables else { return nil }
        for h in m.hazards {
            let leaves = tables.leaves(overlapping: VirtAddr(h.first.raw), VirtAddr(h.last.raw))
            if let leaf = leaves.first {
                let policy = plan.policyLabel
                return Verdict(
                    kind: .halt,
                    summary:
                        "a \(leaf.size) \(leaf.level) leaf \(leaf.physRange) covers the UV hazard \(h) under policy \(policy)",
                    evidence: [
                        Evidence(.leafLevel, leaf.level), Evidence(.leafSize, leaf.size.description),
                        Evidence(.leafRange, leaf.physRange.description),
                        Evidence(.hazard, h.description), Evidence(.leavesOverHazards, "\(leaves.count)"),
                        Evidence(.policy, policy),
                        Evidence(.effectiveLeafRule, tables.effectiveLeafRule),
                    ], address: h.first.raw)
            }
        }
        return nil
    }

    /// Warnings about the layout: segments in hot-removable memory, identity leaves that also map
    /// reserved or unusable memory (harmless until something touches it).
    static func placementWarnings(_ plan: Plan) -> [String] {
        var out: [String] = []
        let m = plan.scenario.machine
        for h in m.hotpluggable {
            let inside = plan.segments.filter { $0.range?.overlaps(h) == true }.map(\.name)
            if !inside.isEmpty {
                out.append(
                    "segments \(inside.joined(separator: ", ")) sit in hot-removable memory \(h): hot-removing it will fail, "
                        + "and the image must be reloaded after a hotplug event")
            }
        }
        guard let tables = plan.x86?.tables else { return out }
        var over: [String] = []
        var count = 0
        // The first MiB is always mapped (ISA range) whatever it holds: not worth a warning.
        for reg in m.memory.regions
        where (reg.type == .reserved || reg.type == .unusable) && reg.range.last.raw >= 0x10_0000 {
            for leaf in tables.leaves(overlapping: VirtAddr(reg.range.first.raw), VirtAddr(reg.range.last.raw)) {
                count += 1
                if over.count < 3 {
                    over.append(
                        "\(leaf.level) \(leaf.size) leaf \(leaf.physRange) also maps \(reg.type.rawValue) \(reg.range)")
                }
            }
        }
        if count > 0 {
            out.append(
                "\(count) identity-map leaves also map reserved/unusable memory: " + over.joined(separator: "; ")
                    + (count > 3 ? "; …" : ""))
        }
        return out
    }
}
