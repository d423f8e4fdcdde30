import Dispatch
import Emulator
import Foundation
import KexecModel

/// Following the next kernel past the hand-off (`run --follow`, `follow:` in a fixture), the part
/// both architectures share: the console watch (milestones by the lines the kernel prints), the
/// stop at the goal, the memory cross-check and the verdict. An architecture's backend sets the
/// machine up and runs the engine (`RunBackend.followNextKernel`).
///
/// Milestones are named in the order the kernel reaches them. The console ones are the lines of
/// the kernel's own printk (v6.1): `Linux version …` (init/version.c linux_banner, printed first by
/// start_kernel), `Memory: …K/…K available` (mm/page_alloc.c mem_init_print_info), and the marker
/// the test initrd's /init prints (`FollowSession.initMarker`).
final class FollowSession {
    /// The line the shipped test initrd's /init prints first (Sources/GuestCode/c/test-init/init.c).
    static let initMarker = "kexec-sim: /init reached"
    /// What that /init prints next: the command line it was given, /proc/vmcore's size.
    static let initCmdline = "kexec-sim: cmdline: "
    static let initVmcore = "kexec-sim: vmcore: "
    /// The line a kernel prints when it gives up (kernel/panic.c panic()).
    static let panicMarker = "Kernel panic - not syncing"

    struct Milestone {
        var name: String
        var seconds: Double
        var instructions: UInt64?
        var line: String?
    }

    let goal: FollowGoal
    let console = ConsoleLog()
    private(set) var milestones: [Milestone] = []
    private(set) var goalReached = false
    private(set) var panicLine: String?
    /// What the test /init reported: its command line, and /proc/vmcore's size or why it is absent.
    private(set) var initCommandLine: String?
    private(set) var initVmcore: String?
    private let t0 = DispatchTime.now().uptimeNanoseconds
    /// Stops the engine (set by the backend once the engine exists).
    var requestStop: (String) -> Void = { _ in }
    /// The engine's instruction count, when it counts.
    var instructions: () -> UInt64? = { nil }

    init(goal: FollowGoal) {
        self.goal = goal
        console.onLine = { [unowned self] line in self.watch(line) }
    }

    var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }

    func reached(_ name: String) -> Bool { milestones.contains { $0.name == name } }

    /// Records a milestone (once).
    func mark(_ name: String, line: String? = nil) {
        guard !reached(name) else { return }
        milestones.append(Milestone(name: name, seconds: seconds, instructions: instructions(), line: line))
    }

    /// Records a goal the machine observes (not a console line) and stops at it when it is the
    /// run's goal or beyond; returns true when the run should end there.
    func markGoal(_ g: FollowGoal) -> Bool {
        guard !reached(g.rawValue) else { return goalReached }
        mark(g.rawValue)
        if g >= goal { goalReached = true }
        return goalReached
    }

    /// The highest goal reached.
    var goalMilestone: FollowGoal? {
        FollowGoal.allCases.last { reached($0.rawValue) }
    }

    private func watch(_ line: String) {
        var hit: FollowGoal?
        if !reached(FollowGoal.banner.rawValue), line.contains("Linux version ") {
            hit = .banner
        } else if !reached(FollowGoal.memory.rawValue), line.contains("Memory: "), line.contains("K available") {
            hit = .memory
        } else if !reached(FollowGoal.initProcess.rawValue), line.contains(Self.initMarker) {
            hit = .initProcess
        }
        if let r = line.range(of: Self.initCmdline), initCommandLine == nil {
            initCommandLine = String(line[r.upperBound...])
        } else if let r = line.range(of: Self.initVmcore), initVmcore == nil {
            initVmcore = String(line[r.upperBound...])
        }
        if let g = hit {
            mark(g.rawValue, line: line)
            if g >= goal {
                goalReached = true
                // /init reports on and powers the machine off (PSCI SYSTEM_OFF ends the run): the
                // lines after the marker are evidence too.
                if g != .initProcess { requestStop("follow goal \(g.rawValue)") }
            }
        }
        if panicLine == nil, line.contains(Self.panicMarker) {
            panicLine = line
            requestStop("kernel panic")
        }
    }

    /// The evidence every followed run carries: milestones (names, then each with its time,
    /// instructions and line) and the console text.
    var evidence: [Evidence] {
        var ev = [Evidence(.milestones, milestones.map(\.name).joined(separator: ", "))]
        for m in milestones {
            var v = String(format: "%.3f s", m.seconds)
            if let n = m.instructions { v += ", \(n) instructions" }
            if let l = m.line { v += ": " + l.trimmingCharacters(in: .whitespaces) }
            ev.append(Evidence(key: .milestone(m.name), value: v))
        }
        if let c = initCommandLine { ev.append(Evidence(.initCmdline, c)) }
        if let v = initVmcore { ev.append(Evidence(.initVmcore, v)) }
        return ev
    }

    var consoleEvidence: Evidence { Evidence(.console, console.text) }

    /// Why /init found no /proc/vmcore, when it reported it absent: a kernel that was handed no
    /// ELF core header never creates it (fs/proc/vmcore.c vmcore_init returns early without
    /// elfcorehdr=, v6.1); a crash kernel whose vmcore_init failed says so on the console
    /// (`Kdump: vmcore not initialized`, after the cause parse_crash_elf_headers printed).
    func vmcoreAbsence(plan: Plan) -> String? {
        guard initVmcore?.hasPrefix("absent") == true else { return nil }
        guard let hdr = plan.segments.first(where: { $0.role == .elfcorehdr }) else {
            return "not a crash kernel: no ELF core header was handed over, so vmcore_init creates no /proc/vmcore"
        }
        let lines = console.lines
        let at = "the ELF core header segment at \(hex(hdr.mem.raw))"
        guard let i = lines.firstIndex(where: { $0.contains("Kdump: vmcore not initialized") }) else {
            return "the crash kernel printed no vmcore_init failure; \(at)"
        }
        let cause = i > 0 ? Self.message(lines[i - 1]) : "no cause printed"
        let zeros = hdr.bytes.allSatisfy { $0 == 0 } && hdr.generated == nil
        return "the crash kernel's vmcore_init failed: \"\(cause)\" (fs/proc/vmcore.c parse_crash_elf_headers, v6.1); "
            + at + (zeros ? " holds zeros: the model places kexec-tools' header but does not write its contents" : "")
    }

    /// A console line without its printk time stamp.
    static func message(_ line: String) -> String {
        guard line.hasPrefix("["), let close = line.firstIndex(of: "]") else { return line }
        return line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)
    }
}

/// How the architecture's follow run ended, when it was not the session's own stop (the goal or a
/// panic): the verdict kind, its words and its evidence.
struct FollowFailure {
    var kind: VerdictKind
    var summary: String
    var evidence: [Evidence]
    var address: UInt64?
}

/// What an architecture's follow run gives back: its failure (nil when the session stopped it at
/// the goal or a panic) and the machine's own evidence (exceptions delivered, firmware calls).
struct FollowOutcome {
    var failure: FollowFailure?
    var evidence: [Evidence]

    /// `exceptions_delivered`: each exception the guest's own handlers took, with its count, and
    /// the first few in order (the same words on both architectures).
    static func exceptionsDelivered(_ delivered: [String: Int], log: [String]) -> Evidence {
        guard !delivered.isEmpty else { return Evidence(.exceptionsDelivered, "none") }
        let counts = delivered.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return Evidence(
            .exceptionsDelivered, counts + (log.isEmpty ? "" : "; first: " + log.prefix(4).joined(separator: "; ")))
    }
}

extension Runner {
    /// Runs the next kernel on from its entry and turns what it did into the verdict: `landed` once
    /// its banner appeared or it reached a goal before the banner (`--until handler`; how far it
    /// got is `milestone` and the evidence), `memory-mismatch` when
    /// its own memory lines differ from what was handed over, otherwise the failure that stopped it
    /// before the banner.
    static func follow<B: RunBackend>(
        _ e: Engine<B.Arch>, plan: Plan, backend: B.Type, goal: FollowGoal, landed: Verdict, options: RunOptions
    ) -> Verdict {
        let session = FollowSession(goal: goal)
        session.requestStop = { [unowned e] name in e.requestStop(name) }
        // Instructions of the next kernel alone, when the run counts them (--count-instructions).
        let base = e.instructionsExecuted ?? 0
        session.instructions = { [unowned e] in e.isCountingInstructions ? (e.instructionsExecuted ?? 0) - base : nil }
        var seconds = options.followTimeoutSeconds
        if let t = plan.scenario.followTimeoutSeconds { seconds = min(seconds, Double(t)) }
        let timeoutUs = UInt64(max(0.001, seconds) * 1e6)
        let outcome = B.followNextKernel(e, plan: plan, session: session, timeoutMicros: timeoutUs)
        let failure = outcome.failure
        var ev = session.evidence + outcome.evidence
        let ended = failure.map { "\($0.kind.rawValue): \($0.summary)" }
        let stopWords: String
        if session.goalReached {
            stopWords = "reached the goal (\(goal.rawValue))"
        } else if let p = session.panicLine {
            stopWords = "the next kernel panicked: " + p.trimmingCharacters(in: .whitespaces)
        } else {
            stopWords = ended ?? "stopped"
        }
        ev.append(Evidence(.followStop, stopWords))
        let check = FollowMemoryLines.check(console: session.console.lines, plan: plan)
        if let z = FollowMemoryLines.zoneRanges(session.console.lines) { ev.append(Evidence(.nextKernelZones, z)) }
        if let why = session.vmcoreAbsence(plan: plan) { ev.append(Evidence(.initVmcoreWhy, why)) }
        ev += check?.evidence ?? []
        var v: Verdict
        if session.reached(FollowGoal.banner.rawValue) || session.goalReached {
            let how = session.goalMilestone?.rawValue ?? "banner"
            v = landed
            v.summary += "; the next kernel ran to its \(how)" + (session.goalReached ? "" : " (then \(stopWords))")
            v.followedTo = session.goalMilestone
            if let c = check, !c.matches {
                v.kind = .memoryMismatch
                v.summary = "the next kernel's own memory differs from what kexec handed it: " + c.summary
            }
            v.evidence += ev
        } else if let p = session.panicLine {
            v = Verdict(
                kind: .halt, summary: "the next kernel panicked before its banner: \(p)", evidence: landed.evidence + ev
            )
        } else if let f = failure {
            v = Verdict(
                kind: f.kind, summary: "after the hand-off: " + f.summary, evidence: landed.evidence + f.evidence + ev,
                address: f.address)
        } else {
            v = Verdict(
                kind: .hang, summary: "the next kernel printed no banner (\(stopWords))", evidence: landed.evidence + ev
            )
        }
        v.evidence.append(session.consoleEvidence)
        return v
    }
}
