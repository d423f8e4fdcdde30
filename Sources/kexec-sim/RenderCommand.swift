import ArgumentParser
import Foundation
import KexecModel
import KexecSim

/// Exit codes: 0 drawn, 1 the kernel would reject the load (nothing to lay out), 2 bad input.
struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Draw the physical address space of a planned (and run) kexec as SVG.",
        discussion: """
            Regions by type, crashkernel, hazards, hotpluggable ranges, the identity map, segments, \
            their source pages, control / swap / indirection and page-table pages, and the failure \
            point when the run fails. Huge uniform stretches are compressed with a marked break.
            """)

    @Argument(help: "Scenario fixture (YAML).") var fixture: String
    @Option(help: "Output SVG file.") var svg: String
    @Option(help: "Identity-map policy, overriding the fixture's.") var policy: String?
    @Option(help: "Run as this first-kernel version (X.Y or X.Y.Z), overriding the fixture's machine.kernel.")
    var kernel: String?
    @Flag(help: "Only plan; do not run the emulation (no failure point).") var noRun = false
    @Option(help: "Wall-clock limit per emulated phase, seconds.") var timeout: Double = 120

    func run() throws {
        var sc = loadScenario(fixture, kernel: kernel)
        let override = parsePolicy(policy)
        if let p = override { sc = sc.overridingIdentityMap(p) }
        let outcome: PlanOutcome
        do {
            outcome = try Planner.plan(sc)
        } catch {
            fail(error.description)
        }
        guard case .planned(let plan) = outcome else {
            if case .rejected(let r, _) = outcome {
                FileHandle.standardError.write(
                    Data("kexec-sim: rejected: \(r) (the kernel refuses the load; nothing is laid out)\n".utf8))
            }
            throw ExitCode(1)
        }
        var result: RunResult?
        if !noRun {
            do {
                result = try Runner.run(sc, options: RunOptions(timeoutSeconds: timeout, policyOverride: override))
            } catch {
                fail(error.description)
            }
        }
        do {
            try AtomicWrite.write(LayoutRenderer.svg(plan: plan, result: result), to: svg)
        } catch {
            fail(error.description)
        }
        var line = "wrote \(svg)"
        if let r = result { line += ": \(r.verdict.kind.rawValue) — \(r.verdict.summary)" }
        print(line)
    }
}
