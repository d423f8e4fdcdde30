import ArgumentParser
import Foundation
import KexecModel
import KexecSim
import PageTables

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Plan and emulate a fixture's kexec; print the verdict.")
    @Argument(help: "Scenario fixture (YAML).") var fixture: String
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(help: "Identity-map policy, overriding the fixture's.") var policy: String?
    @Option(help: "Run as this first-kernel version (X.Y or X.Y.Z), overriding the fixture's machine.kernel.")
    var kernel: String?
    @Option(help: "Exact instruction budget (counting slows the engine about 10x). Default: wall-clock limit only.")
    var budget: UInt64?
    @Option(help: "Wall-clock limit per emulated phase, seconds.") var timeout: Double = 120
    @Option(
        help: """
            How purgatory's sha256 runs: native (the guest's sha256 calls served on the host through \
            the guest's tables; the default) or emulated (instruction by instruction). Overrides the \
            fixture's `purgatory:`.
            """)
    var purgatory: String?
    @Flag(help: "Run the real next kernel on past the hand-off (needs kexec.kernel.file).") var follow = false
    @Option(
        help:
            "With --follow: stop at the first exception the kernel handles itself (x86_64: its decompressor's #PF handler), its banner, its memory lines or its /init (default memory)."
    )
    var until: String?
    @Option(help: "Wall-clock limit for --follow, seconds.") var followTimeout: Double = 300
    @Flag(help: "Count guest instructions (a per-instruction hook: about 10x slower).") var countInstructions = false

    func validate() throws {
        try validateBudget(budget)
        if let u = until {
            guard follow else { throw ValidationError("--until: only with --follow") }
            guard FollowGoal(rawValue: u) != nil else {
                throw ValidationError(
                    "--until: unknown milestone \"\(u)\" (one of: \(FollowGoal.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
        }
        guard followTimeout > 0 else { throw ValidationError("--follow-timeout: must be more than 0 seconds") }
    }

    func run() throws {
        let o = outcome()
        if !o.stderr.isEmpty { FileHandle.standardError.write(Data(o.stderr.utf8)) }
        print(o.stdout, terminator: "")
        if o.status != 0 { throw ExitCode(o.status) }
    }

    /// What `run` prints and its exit status, without printing or exiting: 0 the verdict matches
    /// the expectation (or there is none), 1 it differs, 2 bad input (with the message on stderr).
    func outcome() -> CommandOutcome {
        do throws(InputFailure) {
            let sc = try checkedScenario(fixture, kernel: kernel)
            var mode: PurgatoryMode?
            if let p = purgatory {
                guard let m = PurgatoryMode(rawValue: p) else {
                    throw InputFailure(message: "--purgatory: unknown mode \"\(p)\" (native or emulated)")
                }
                mode = m
            }
            let goal = follow ? (until.flatMap(FollowGoal.init(rawValue:)) ?? .memory) : nil
            let opts = RunOptions(
                budget: budget, timeoutSeconds: timeout, policyOverride: try checkedPolicy(policy),
                countInstructions: countInstructions, follow: goal, followTimeoutSeconds: followTimeout,
                purgatory: mode)
            let r: RunResult
            do {
                r = try Runner.run(sc, options: opts)
            } catch {
                throw InputFailure(message: error.description)
            }
            let text = json ? Report.runJSON(r) + "\n" : Report.runText(r)
            return CommandOutcome(status: r.matches == false ? 1 : 0, stdout: text)
        } catch {
            return CommandOutcome(status: 2, stderr: "kexec-sim: " + error.message + "\n")
        }
    }
}

/// A command's output and exit status, for a caller that prints it (`run`) or sends it on (the
/// matrix's long-lived `worker`).
struct CommandOutcome {
    var status: Int32
    var stdout = ""
    var stderr = ""
}
