import ArgumentParser
import Foundation
import KexecModel
import KexecSim
import PageTables

/// Exit codes: 0 verdict matches `expect:` (or none given), 1 it differs, 2 bad input.
struct KexecSimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kexec-sim",
        abstract: "Emulate a Linux kexec at machine level and say whether the next kernel lands intact, or why not.",
        subcommands: [
            RunCommand.self, PlanCommand.self, TablesCommand.self, BenchCommand.self, MatrixCommand.self,
            RenderCommand.self, ImportCommand.self,
        ])
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("kexec-sim: " + message + "\n").utf8))
    exit(2)
}

func loadScenario(_ path: String) -> Scenario {
    do {
        return try FixtureDecoder.load(path: path)
    } catch {
        fail(error.description)
    }
}

func parsePolicy(_ s: String?) -> IdentityMapPolicy? {
    guard let s else { return nil }
    guard let p = IdentityMapPolicy(rawValue: s) else {
        fail(
            "--policy: unknown policy \"\(s)\" (one of: \(IdentityMapPolicy.allCases.map(\.rawValue).joined(separator: ", ")))"
        )
    }
    return p
}
