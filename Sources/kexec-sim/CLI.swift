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
            RenderCommand.self, ImportCommand.self, CrashkernelCommand.self, WorkerCommand.self,
        ])
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("kexec-sim: " + message + "\n").utf8))
    exit(2)
}

/// Bad input found by a helper that must not exit (the matrix's long-lived worker runs many jobs
/// in one process): the message `fail` would print.
struct InputFailure: Error {
    var message: String
}

func loadScenario(_ path: String) -> Scenario {
    do throws(InputFailure) {
        return try checkedScenario(path)
    } catch {
        fail(error.message)
    }
}

func checkedScenario(_ path: String) throws(InputFailure) -> Scenario {
    do {
        return try FixtureDecoder.load(path: path)
    } catch {
        throw InputFailure(message: error.description)
    }
}

func parsePolicy(_ s: String?) -> IdentityMapPolicy? {
    do throws(InputFailure) {
        return try checkedPolicy(s)
    } catch {
        fail(error.message)
    }
}

func checkedPolicy(_ s: String?) throws(InputFailure) -> IdentityMapPolicy? {
    guard let s else { return nil }
    guard let p = IdentityMapPolicy(rawValue: s) else {
        throw InputFailure(
            message:
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
    do throws(InputFailure) {
        return try checkedKernel(s, option: option)
    } catch {
        fail(error.message)
    }
}

func checkedKernel(_ s: String, option: String = "--kernel") throws(InputFailure) -> KernelVersion {
    guard let v = KernelVersion(s) else {
        throw InputFailure(
            message: "\(option): \"\(s)\" is not a kernel version (expected X.Y, X.Y.Z or X.Y-rcN, e.g. 6.1 or 6.1.79)")
    }
    guard v >= KernelVersion.oldestModelled else {
        throw InputFailure(
            message:
                "\(option): kernel \(v) is older than any version kexec-sim models (\(KernelVersion.oldestModelled) and newer)"
        )
    }
    return v
}

/// The fixture at `path`, run as kernel `kernel` when given (`--kernel`).
func loadScenario(_ path: String, kernel: String?) -> Scenario {
    do throws(InputFailure) {
        return try checkedScenario(path, kernel: kernel)
    } catch {
        fail(error.message)
    }
}

func checkedScenario(_ path: String, kernel: String?) throws(InputFailure) -> Scenario {
    let sc = try checkedScenario(path)
    guard let kernel else { return sc }
    return sc.overridingKernel(try checkedKernel(kernel))
}
