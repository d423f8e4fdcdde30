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

    func validate() throws { try validateBudget(budget) }

    func run() throws {
        let sc = loadScenario(fixture, kernel: kernel)
        var mode: PurgatoryMode?
        if let p = purgatory {
            guard let m = PurgatoryMode(rawValue: p) else {
                fail("--purgatory: unknown mode \"\(p)\" (native or emulated)")
            }
            mode = m
        }
        let opts = RunOptions(
            budget: budget, timeoutSeconds: timeout, policyOverride: parsePolicy(policy), purgatory: mode)
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
