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

/// `--kernel X.Y[.Z]` (and each entry of `--kernels`): a version kexec-sim models, or a usage
/// error (exit 2) naming the option.
func parseKernel(_ s: String, option: String = "--kernel") -> KernelVersion {
    guard let v = KernelVersion(s) else {
        fail("\(option): \"\(s)\" is not a kernel version (expected X.Y, X.Y.Z or X.Y-rcN, e.g. 6.1 or 6.1.79)")
    }
    guard v >= KernelVersion.oldestModelled else {
        fail(
            "\(option): kernel \(v) is older than any version kexec-sim models (\(KernelVersion.oldestModelled) and newer)"
        )
    }
    return v
}

/// The fixture at `path`, run as kernel `kernel` when given (`--kernel`).
func loadScenario(_ path: String, kernel: String?) -> Scenario {
    let sc = loadScenario(path)
    guard let kernel else { return sc }
    return sc.overridingKernel(parseKernel(kernel))
}
