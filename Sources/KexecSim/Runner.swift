import Crypto
import Emulator
import Foundation
import GuestCode
import KexecModel
import Kimage
import PageTables

/// Wall time and work of each phase of one run.
public struct RunStats: Sendable {
    public var planSeconds = 0.0
    public var setupSeconds = 0.0
    public var relocationSeconds = 0.0
    public var purgatorySeconds = 0.0
    public var verifySeconds = 0.0
    /// Bytes the relocation routine moved (3 × page per IND_SOURCE with the swap).
    public var relocatedBytes: UInt64 = 0
    public var payloadBytes: UInt64 = 0
    public var tlbFills: UInt64 = 0
    public var onDemandPages = 0
    public var guestBlocks = 0
    /// Part of planSeconds spent building the page tables.
    public var tablesSeconds = 0.0
    /// Counted only with RunOptions.countInstructions.
    public var relocationInstructions: UInt64?
    public var purgatoryInstructions: UInt64?
    /// Host memory reserved for guest blocks (mostly untouched, lazily committed).
    public var guestReservedBytes: UInt64 = 0
    public var totalSeconds: Double {
        planSeconds + setupSeconds + relocationSeconds + purgatorySeconds + verifySeconds
    }
    /// Payload MB (10^6) per second of relocation.
    public var copyMBps: Double { relocationSeconds > 0 ? Double(payloadBytes) / relocationSeconds / 1e6 : 0 }
}

public struct RunResult: Sendable {
    public var scenario: Scenario
    public var verdict: Verdict
    public var engine: String
    public var stats: RunStats
    public var policy: String
    /// The expectation for the policy this run used (see Scenario.expectation(for:)).
    public var expectation: Expectation? {
        IdentityMapPolicy(rawValue: policy).flatMap { scenario.expectation(for: $0) } ?? scenario.expect
    }
    public var matches: Bool? {
        expectation.map { verdict.matches($0) }
    }
}

public struct RunOptions: Sendable {
    /// Exact instruction budget (engine counting: about 10× slower). nil: wall-clock limit only.
    public var budget: UInt64?
    /// Wall-clock limit for each emulated phase.
    public var timeoutSeconds: Double
    public var policyOverride: IdentityMapPolicy?
    /// Count guest instructions per phase (a per-instruction hook: about 10× slower).
    public var countInstructions: Bool
    public init(
        budget: UInt64? = nil, timeoutSeconds: Double = 120, policyOverride: IdentityMapPolicy? = nil,
        countInstructions: Bool = false
    ) {
        self.budget = budget
        self.timeoutSeconds = timeoutSeconds
        self.policyOverride = policyOverride
        self.countInstructions = countInstructions
    }
}

public enum Runner {
    public static func run(_ scenario: Scenario, options: RunOptions = RunOptions()) throws(PlanError) -> RunResult {
        var sc = scenario
        if let p = options.policyOverride, p != sc.policy.identityMap {
            // Under another policy only expect_by_policy says what should happen.
            sc.expect = sc.expectByPolicy[p]
            sc.policy.identityMap = p
        }
        if sc.budget == nil { sc.budget = options.budget }
        let engine = EngineVersion.current.description
        if sc.machine.arch == .arm64 { return try Arm64Runner.run(sc, options: options) }
        switch try Planner.plan(sc) {
        case .rejected(let r, let s):
            let v = Verdict(
                kind: .rejected, summary: "the kernel refuses the load: \(r.errno.rawValue) from \(r.check)",
                evidence: [("errno", r.errno.rawValue), ("check", r.check), ("detail", r.detail)],
                errno: r.errno.rawValue)
            return RunResult(
                scenario: s, verdict: v, engine: engine, stats: RunStats(), policy: s.policy.identityMap.rawValue)
        case .planned(let plan):
            return execute(plan, options: options)
        }
    }

    /// Names the code at `pc`: relocate_kernel / purgatory symbol + offset, or the kernel entry.
    static func routine(_ pc: UInt64, _ plan: Plan) -> String {
        func sym(_ blob: GuestBlob, _ off: UInt64) -> String {
            let best = blob.symbols.filter { $0.value <= off }.max { $0.value < $1.value }
            guard let best else { return "+\(hex(off))" }
            return off == best.value ? best.key : "\(best.key)+\(hex(off - best.value))"
        }
        let cpa = plan.kimage.controlPage.raw
        let cva = plan.controlVA.raw
        if pc >= cva && pc - cva < 0x1000 { return "relocate_kernel: " + sym(X86_64GuestCode.relocateKernel, pc - cva) }
        if pc >= cpa && pc - cpa < 0x1000 { return "relocate_kernel: " + sym(X86_64GuestCode.relocateKernel, pc - cpa) }
        let pb = plan.purgatoryBase.raw
        if pc >= pb && pc - pb < X86_64GuestCode.purgatory.memorySize {
            return "purgatory: " + sym(X86_64GuestCode.purgatory, pc - pb)
        }
        if pc == plan.kernelEntry.raw { return "next kernel entry" }
        return "no known routine"
    }

    static func execute(_ plan: Plan, options: RunOptions) -> RunResult {
        var stats = RunStats()
        stats.planSeconds = plan.planSeconds
        stats.tablesSeconds = plan.tablesSeconds
        let sc = plan.scenario
        let machine = sc.machine
        let engineName = EngineVersion.current.description
        let policyName = sc.policy.identityMap.rawValue
        func result(_ v: Verdict) -> RunResult {
            RunResult(scenario: sc, verdict: v, engine: engineName, stats: stats, policy: policyName)
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
        let x86: X86Engine
        do {
            x86 = try X86Engine(memory: mem)
        } catch {
            return result(Verdict(kind: .halt, summary: "engine: \(error)"))
        }
        x86.backOnDemand = { pa, _ in machine.memory.region(containing: pa)?.type == .usable }
        x86.onDemandChunk = { pa in
            // The page's 2 MiB chunk, clipped to its usable region.
            guard let reg = machine.memory.region(containing: pa)?.range,
                let chunk = AddressRange(start: pa.alignedDown(.mib(2)), size: .mib(2))?.intersection(reg),
                let trimmed = chunk.pageTrimmed()
            else { return nil }
            return trimmed
        }
        let spin = VirtAddr(plan.purgatoryBase.raw + X86_64GuestCode.purgatory.offset(of: "sha256_mismatch_spin"))
        do {
            try x86.stop(at: spin, name: "sha256_mismatch_spin")
        } catch {
            return result(Verdict(kind: .halt, summary: "engine: \(error)"))
        }
        // CPU state at the call of relocate_kernel: long mode, paging on through the first
        // kernel's tables, WP set, running at the control page's alias.
        x86.enterLongMode(cr3: plan.firstKernelTables.root, fiveLevel: machine.paging == .fiveLevel)
        x86.write(.cr0, 0x8005_0033)
        x86.write(.rdi, plan.kimage.head)
        x86.write(.rsi, plan.controlVA.raw + X86_64GuestCode.pageListOffset)
        var startAddress = plan.purgatoryEntry.raw
        for case .startAddress(let a) in sc.kexec?.inject ?? [] { startAddress = a.raw }
        x86.write(.rdx, startAddress)
        x86.write(.rcx, 0)
        x86.write(.rsp, 0)
        if options.countInstructions {
            do { try x86.enableInstructionCounting() } catch {
                return result(Verdict(kind: .halt, summary: "engine: \(error)"))
            }
        }
        stats.setupSeconds = Date().timeIntervalSince(t0)

        let budget = sc.budget ?? 0
        let timeoutUs = UInt64(max(0.001, options.timeoutSeconds) * 1e6)
        // Phase 1: relocation, up to purgatory's entry.
        var t = Date()
        let r1 = x86.run(
            from: plan.controlVA, until: VirtAddr(plan.purgatoryEntry.raw), budget: budget, timeoutMicros: timeoutUs)
        stats.relocationSeconds = Date().timeIntervalSince(t)
        stats.relocationInstructions = x86.instructionsExecuted
        var stop = r1
        if case .reached = r1 {
            t = Date()
            stop = x86.run(
                from: VirtAddr(plan.purgatoryEntry.raw), until: VirtAddr(plan.kernelEntry.raw), budget: budget,
                timeoutMicros: timeoutUs)
            stats.purgatorySeconds = Date().timeIntervalSince(t)
            if let total = x86.instructionsExecuted, let r = stats.relocationInstructions {
                stats.purgatoryInstructions = total - r
            }
        }
        stats.tlbFills = x86.tlbFills
        stats.onDemandPages = x86.onDemandPageCount
        t = Date()
        defer { stats.verifySeconds = Date().timeIntervalSince(t) }
        var v = diagnose(stop: stop, phase1: r1, plan: plan, x86: x86, layout: layout, options: options)
        if v.kind == .landed && !sc.nextKernelTouches.isEmpty {
            v = probeTouches(plan: plan, x86: x86, landed: v, timeoutMicros: timeoutUs)
        }
        v.warnings += placementWarnings(plan)
        stats.verifySeconds = Date().timeIntervalSince(t)
        return result(v)
    }

    static func diagnose(
        stop: StopReason, phase1: StopReason, plan: Plan, x86: X86Engine, layout: GuestLayout,
        options: RunOptions
    ) -> Verdict {
        let machine = plan.scenario.machine
        let policy = plan.scenario.policy.identityMap.rawValue
        switch stop {
        case .reached(let pc) where pc.raw == plan.kernelEntry.raw:
            return verifyLanding(plan: plan, x86: x86, layout: layout)
        case .reached(let pc):
            return Verdict(kind: .halt, summary: "emulation stopped at \(pc) (\(routine(pc.raw, plan)))")
        case .stoppedAt(let pc, let name):
            // Purgatory's digest check failed and it spins forever, as the real one does.
            var ev: [(String, String)] = [("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)), ("loop", name)]
            let mismatch = firstDestinationMismatch(plan: plan, mem: layout.memory)
            if let m = mismatch {
                ev.append(("stamped_segment", m.segment))
                ev.append(("first_differing_address", hex(m.address)))
                ev.append(("offset_in_segment", hex(m.offset)))
            } else if plan.storedDigest != plan.digest {
                ev.append(("cause", "the digest stored in purgatory does not match the segments"))
            }
            ev.append(("stored_digest", plan.storedDigest.map { String(format: "%02x", $0) }.joined()))
            ev.append(("segments_digest", plan.digest.map { String(format: "%02x", $0) }.joined()))
            return Verdict(
                kind: .hang,
                summary: "purgatory spins after a sha256 digest mismatch"
                    + (mismatch.map { " (segment \($0.segment) differs at \(hex($0.address)))" } ?? ""),
                evidence: ev, address: mismatch?.address)
        case .translationFault(let f, let access, let pc):
            let region = machine.memory.describe(PhysAddr(f.va.raw))
            let missing =
                f.reason == .notPresent
                ? "level-\(levelNumber(f.level, levels: plan.scenario.machine.paging.levels)) (\(f.level)) entry is missing"
                : "\(f.level) entry: \(f.reason.rawValue)"
            return Verdict(
                kind: .pageFault,
                summary: "page fault at \(hex(f.va.raw)) in \(region) because the \(missing) under policy \(policy)",
                evidence: [
                    ("address", hex(f.va.raw)), ("access", access.rawValue), ("pc", hex(pc.raw)),
                    ("routine", routine(pc.raw, plan)),
                    ("region", region), ("level", f.level), ("reason", f.reason.rawValue),
                    ("entry_address", f.entryAddress.map { hex($0.raw) } ?? "-"), ("entry", hex(f.entry)),
                    ("policy", policy),
                ], address: f.va.raw)
        case .unbackedAccess(let pa, let access, let pc) where x86.onDemandLimitHit:
            return Verdict(
                kind: .halt,
                summary:
                    "runaway guest: \(x86.onDemandPageCount) pages of RAM nobody loaded were touched (limit \(x86.onDemandLimit)) when \(routine(pc.raw, plan)) \(access.rawValue) \(hex(pa.raw))",
                evidence: [
                    ("address", hex(pa.raw)), ("access", access.rawValue), ("pc", hex(pc.raw)),
                    ("routine", routine(pc.raw, plan)),
                    ("on_demand_pages", "\(x86.onDemandPageCount)"), ("limit", "\(x86.onDemandLimit) pages"),
                ], address: pa.raw)
        case .unbackedAccess(let pa, let access, let pc):
            let region = machine.memory.describe(pa)
            return Verdict(
                kind: .halt, summary: "\(access.rawValue) of \(hex(pa.raw)) in \(region): the machine would stop there",
                evidence: [
                    ("address", hex(pa.raw)), ("access", access.rawValue), ("pc", hex(pc.raw)),
                    ("routine", routine(pc.raw, plan)), ("region", region),
                ],
                address: pa.raw)
        case .budgetExhausted(let pc, let executed):
            let loop = x86.sampleLoop(at: pc)
            return Verdict(
                kind: .hang, summary: "instruction budget of \(executed) ran out in \(routine(pc.raw, plan))",
                evidence: [
                    ("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)), ("budget", "\(executed) instructions"),
                    ("loop", loop),
                ])
        case .timedOut(let pc):
            let loop = x86.sampleLoop(at: pc)
            return Verdict(
                kind: .hang,
                summary:
                    "no progress to the kernel entry within \(Int(options.timeoutSeconds)) s; stuck in \(routine(pc.raw, plan))",
                evidence: [
                    ("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)),
                    ("budget", "\(Int(options.timeoutSeconds)) s wall clock"), ("loop", loop),
                ])
        case .cpuException(let pc, let detail):
            return Verdict(
                kind: .halt, summary: "CPU exception in \(routine(pc.raw, plan)): \(detail)",
                evidence: [
                    ("pc", hex(pc.raw)), ("routine", routine(pc.raw, plan)), ("detail", detail),
                    (
                        "on_hardware",
                        "machine_kexec loaded an empty IDT: the exception cannot be delivered, the CPU triple-faults "
                            + "and resets (the machine reboots into its firmware instead of the new kernel)"
                    ),
                ])
        }
    }

    /// On UV a leaf that covers any byte of a hazard halts the machine, even if nothing touches it
    /// (speculation): checked on the built tables before any instruction runs.
    static func hazardCheck(_ plan: Plan) -> Verdict? {
        let m = plan.scenario.machine
        guard m.platform == .uv, !m.hazards.isEmpty else { return nil }
        for h in m.hazards {
            let leaves = plan.tables.leaves(overlapping: VirtAddr(h.first.raw), VirtAddr(h.last.raw))
            if let leaf = leaves.first {
                let policy = plan.scenario.policy.identityMap.rawValue
                return Verdict(
                    kind: .halt,
                    summary:
                        "a \(leaf.size) \(leaf.level) leaf \(leaf.physRange) covers the UV hazard \(h) under policy \(policy)",
                    evidence: [
                        ("leaf_level", leaf.level), ("leaf_size", leaf.size.description),
                        ("leaf_range", leaf.physRange.description),
                        ("hazard", h.description), ("leaves_over_hazards", "\(leaves.count)"), ("policy", policy),
                        ("effective_leaf_rule", plan.tables.effectiveLeafRule),
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
        var over: [String] = []
        var count = 0
        // The first MiB is always mapped (ISA range) whatever it holds: not worth a warning.
        for reg in m.memory.regions
        where (reg.type == .reserved || reg.type == .unusable) && reg.range.last.raw >= 0x10_0000 {
            for leaf in plan.tables.leaves(overlapping: VirtAddr(reg.range.first.raw), VirtAddr(reg.range.last.raw)) {
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

    /// After the entry: the next kernel's early reads (firmware tables, setup_data), done by the
    /// touch probe through the same tables. The probe is placed in the kernel segment, which has
    /// already been verified.
    static func probeTouches(plan: Plan, x86: X86Engine, landed: Verdict, timeoutMicros: UInt64) -> Verdict {
        let probe = X86_64GuestCode.probe
        let touches = plan.scenario.nextKernelTouches
        let machine = plan.scenario.machine
        let policy = plan.scenario.policy.identityMap.rawValue
        guard let kernel = plan.segments.first(where: { !$0.isPurgatory && $0.memsz.raw >= 0x4000 }) else {
            return landed
        }
        let base = kernel.mem.raw + 0x2000
        let list = base + 0x800
        let mem = x86.memory
        guard mem.write(PhysAddr(base), probe.bytes) else { return landed }
        for (i, a) in touches.prefix(200).enumerated() { _ = mem.write64(PhysAddr(list + UInt64(i) * 8), a.raw) }
        // Firmware memory exists even though nothing loaded it: back any region on demand; a hole has nothing.
        x86.backOnDemand = { pa, _ in machine.memory.region(containing: pa) != nil }
        x86.write(.rsi, list)
        x86.write(.rcx, UInt64(min(touches.count, 200)))
        let stop = x86.run(
            from: VirtAddr(base + probe.offset(of: "touch_probe")),
            until: VirtAddr(base + probe.offset(of: "touch_probe_done")),
            budget: 0, timeoutMicros: timeoutMicros)
        let index = min(touches.count, 200) - Int(x86.read(.rcx))
        let addr = index < touches.count ? touches[index].raw : 0
        var ev = landed.evidence
        switch stop {
        case .reached:
            var touched: [String] = []
            for a in touches {
                if case .success(let t) = plan.tables.translate(VirtAddr(a.raw)) {
                    let region = machine.memory.describe(a)
                    touched.append("\(hex(a.raw)) via \(t.leaf) leaf (\(region))")
                    if let reg = machine.memory.region(containing: a), reg.type == .reserved || reg.type == .unusable {
                        ev.append(
                            (
                                "touched_reserved",
                                "\(hex(a.raw)) in \(region) is mapped by a \(t.leaf) leaf over \(reg.type.rawValue) memory"
                            ))
                    }
                }
            }
            ev.append(("next_kernel_touches", touched.joined(separator: "; ")))
            var v = landed
            v.evidence = ev
            return v
        case .translationFault(let f, let access, let pc):
            let region = machine.memory.describe(PhysAddr(addr))
            return Verdict(
                kind: .pageFault,
                summary:
                    "the next kernel's read of \(hex(addr)) in \(region) faults: the level-\(levelNumber(f.level, levels: plan.scenario.machine.paging.levels)) (\(f.level)) entry is missing under policy \(policy)",
                evidence: [
                    ("address", hex(addr)), ("access", access.rawValue), ("pc", hex(pc.raw)),
                    ("routine", "next kernel (touch probe)"),
                    ("region", region), ("level", f.level), ("reason", f.reason.rawValue), ("policy", policy),
                    ("effective_leaf_rule", plan.tables.effectiveLeafRule),
                ], address: addr)
        case .unbackedAccess(let pa, _, _):
            return Verdict(
                kind: .halt,
                summary: "the next kernel's read of \(hex(addr)) reaches \(hex(pa.raw)), where no memory or device is",
                evidence: [("address", hex(addr)), ("region", machine.memory.describe(pa))], address: addr)
        default:
            return Verdict(
                kind: .halt, summary: "touch probe stopped: \(stop)", evidence: [("address", hex(addr))], address: addr)
        }
    }

    /// Level number of a table name, counting the leaf (pte) as 1; the pgd is the top: 4, or 5 with LA57.
    static func levelNumber(_ name: String, levels: Int = 4) -> Int {
        switch name {
        case "pte": return 1
        case "pmd": return 2
        case "pud": return 3
        case "p4d": return 4
        case "pgd": return levels
        default: return 0
        }
    }

    struct Mismatch {
        var segment: String
        var address: UInt64
        var offset: UInt64
    }

    /// First destination byte that differs from its segment (buffer, then zeros to memsz).
    static func firstDestinationMismatch(plan: Plan, mem: GuestMemory) -> Mismatch? {
        firstDestinationMismatch(segments: plan.segments, mem: mem)
    }

    static func firstDestinationMismatch(segments: [Segment], mem: GuestMemory) -> Mismatch? {
        let zeros = [UInt8](repeating: 0, count: 1 << 16)
        for s in segments {
            let checkLen = s.isPurgatory ? UInt64(s.bytes.count) : s.memsz.raw
            let bufEnd = UInt64(s.bytes.count)
            var off: UInt64 = 0
            while off < checkLen {
                // Chunks never straddle the end of the buffer, so each is all-buffer or all-zero.
                let limit = off < bufEnd ? bufEnd : checkLen
                let n = Int(min(limit - off, UInt64(zeros.count)))
                guard let p = mem.pointer(PhysAddr(s.mem.raw + off), length: n) else {
                    return Mismatch(segment: s.name, address: s.mem.raw + off, offset: off)
                }
                let same =
                    off < bufEnd
                    ? s.bytes.withUnsafeBytes { memcmp($0.baseAddress! + Int(off), p, n) == 0 }
                    : zeros.withUnsafeBytes { memcmp($0.baseAddress!, p, n) == 0 }
                if !same {
                    let buf = UnsafeRawBufferPointer(start: p, count: n)
                    let d =
                        (0..<n).first { i in buf[i] != (off < bufEnd ? s.bytes[Int(off) + i] : 0) } ?? 0
                    return Mismatch(segment: s.name, address: s.mem.raw + off + UInt64(d), offset: off + UInt64(d))
                }
                off += UInt64(n)
            }
        }
        return nil
    }

    static func verifyLanding(plan: Plan, x86: X86Engine, layout: GuestLayout) -> Verdict {
        let mem = layout.memory
        let rip = x86.read(.rip)
        let rsi = x86.read(.rsi)
        let digestHex = plan.digest.map { String(format: "%02x", $0) }.joined()
        if let m = firstDestinationMismatch(plan: plan, mem: mem) {
            return Verdict(
                kind: .corruption,
                summary:
                    "reached the entry but segment \(m.segment) differs at \(hex(m.address)) (offset \(hex(m.offset)))",
                evidence: [
                    ("segment", m.segment), ("address", hex(m.address)), ("offset", hex(m.offset)), ("entry", hex(rip)),
                ],
                address: m.address)
        }
        for page in layout.changedProtectedPages().prefix(1) {
            let region = plan.scenario.machine.memory.describe(page)
            let first = layout.firstDifference(page: page)
            return Verdict(
                kind: .strayWrite,
                summary: "memory outside the allowed ranges changed: page \(page) (\(layout.label(page))) in \(region)",
                evidence: [
                    ("page", hex(page.raw)), ("what", layout.label(page)), ("region", region),
                    ("first_differing_byte", first.map { hex($0) } ?? "?"),
                ],
                address: page.raw)
        }
        for p in x86.onDemandRanges.flatMap({ r in
            stride(from: r.first.raw, through: r.last.raw, by: 0x1000).map { PhysAddr($0) }
        }) {
            if let ptr = mem.pointer(p, length: 4096) {
                let buf = UnsafeRawBufferPointer(start: ptr, count: 4096)
                if let i = buf.firstIndex(where: { $0 != 0 }) {
                    return Verdict(
                        kind: .strayWrite,
                        summary:
                            "the run wrote page \(p) (\(plan.scenario.machine.memory.describe(p))), which nothing may touch",
                        evidence: [
                            ("page", hex(p.raw)), ("region", plan.scenario.machine.memory.describe(p)),
                            ("first_differing_byte", hex(p.raw + UInt64(i))),
                        ],
                        address: p.raw)
                }
            }
        }
        if rip != plan.kernelEntry.raw || rsi != plan.bootParams.raw {
            return Verdict(
                kind: .corruption,
                summary: "reached the entry with wrong hand-off registers: rip \(hex(rip)) rsi \(hex(rsi))",
                evidence: [
                    ("rip", hex(rip)), ("rsi", hex(rsi)), ("expected_rip", hex(plan.kernelEntry.raw)),
                    ("expected_rsi", hex(plan.bootParams.raw)),
                ])
        }
        let segs = plan.segments.map { "\($0.name)@\(hex($0.mem.raw))+\(formatSize($0.memsz.raw))" }.joined(
            separator: " ")
        return Verdict(
            kind: .landed,
            summary:
                "every destination byte matches, entry \(hex(rip)) with rsi = boot_params \(hex(rsi)), nothing else changed",
            evidence: [
                ("entry", hex(rip)), ("rsi", hex(rsi)), ("segments", segs), ("sha256", digestHex),
                ("protected_pages", "\(layout.protectedCount) unchanged"),
                ("on_demand_pages", "\(x86.onDemandPageCount) still zero"),
            ] + plan.imageInfo)
    }
}
