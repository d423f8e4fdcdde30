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
        let sc = loadScenario(fixture, kernel: kernel)
        let goal = follow ? (until.flatMap(FollowGoal.init(rawValue:)) ?? .memory) : nil
        let opts = RunOptions(
            budget: budget, timeoutSeconds: timeout, policyOverride: parsePolicy(policy),
            countInstructions: countInstructions, follow: goal, followTimeoutSeconds: followTimeout)
        let r: RunResult
        do {
            r = try Runner.run(sc, options: opts)
        } catch {
            fail(error.description)
        }
        print(json ? Report.runJSON(r) : Report.runText(r), terminator: json ? "\n" : "")
        if r.matches == false { throw ExitCode(1) }
    }
}
