import ArgumentParser
import Foundation
import KexecModel
import KexecSim
import PageTables

/// Exit codes: 0 verdict matches `expect:` (or none given), 1 it differs, 2 bad input (usage
/// errors included). `--version` prints the tool's version, the Unicorn it runs on and the digest
/// of its guest code (KexecSimVersion.text).
struct KexecSimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kexec-sim",
        abstract: "Emulate a Linux kexec at machine level and say whether the next kernel lands intact, or why not.",
        version: KexecSimVersion.text,
        subcommands: [
            RunCommand.self, PlanCommand.self, TablesCommand.self, BenchCommand.self, MatrixCommand.self,
            RenderCommand.self, ImportCommand.self, CrashkernelCommand.self,
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

/// `--budget N`: an exact instruction budget must allow at least one instruction; leave the option
/// out for the wall-clock limit only.
func validateBudget(_ budget: UInt64?) throws {
    if budget == 0 {
        throw ValidationError(
            "--budget: must be at least 1 instruction (leave --budget out to stop on the wall-clock limit only)")
    }
}
