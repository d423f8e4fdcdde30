import ArgumentParser
import Foundation
import KexecModel
import KexecSim

/// `kexec-sim crashkernel MACHINE_OR_LOG --param "256M,high" [--kernel X.Y] [--json]`: what that
/// kernel prints for crashkernel= on that machine (CrashkernelByVersion); `--fit SCENARIO`: the
/// smallest crashkernel= that lets a kdump scenario land (CrashkernelFit).
///
/// Exit codes: 0 reserved (or a fit found), 1 nothing reserved (or no size fits), 2 bad input.
struct CrashkernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crashkernel",
        abstract:
            "Print what a kernel prints for crashkernel= on a machine, or the smallest crashkernel= a kdump lands with."
    )
    @Argument(help: "A machine or scenario fixture (YAML), or a boot log (dmesg, /proc/iomem, …).")
    var machineOrLog: String?
    @Option(help: "The crashkernel= value (default: the machine's crashkernel=).") var param: String?
    @Option(help: "The running kernel's version, X.Y or X.Y.Z (default: the machine's).") var kernel: String?
    @Option(help: "A kdump scenario: print the smallest crashkernel= (16 MiB steps) with which it loads and lands.")
    var fit: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    func run() throws {
        let version = kernel.map(parseKernel)
        if let fit {
            guard machineOrLog == nil, param == nil else {
                fail("--fit takes the machine from the scenario: give neither MACHINE_OR_LOG nor --param")
            }
            try runFit(fit, version: version)
            return
        }
        guard let path = machineOrLog else { fail("give a machine, scenario or boot log (or --fit SCENARIO)") }
        let machine = loadMachineOrLog(path)
        guard let text = param ?? machine.crashkernel else {
            fail("\(path) has no crashkernel=: give --param (e.g. --param 256M or --param 1G,high)")
        }
        let outcome: CrashkernelOutcome
        do {
            guard let o = try machine.crashkernelOutcome(text, for: version) else { fail("no crashkernel= value") }
            outcome = o
        } catch {
            fail(error.description)
        }
        if json {
            print(jsonText(Out(outcome)))
        } else if outcome.messages.isEmpty {
            print("(Linux \(outcome.version) prints nothing: \(outcome.failure ?? "nothing reserved"))")
        } else {
            print(outcome.messages.joined(separator: "\n"))
        }
        if !outcome.reserved { throw ExitCode(1) }
    }

    func parseKernel(_ s: String) -> KernelVersion {
        guard let v = KernelVersion(s) else { fail("--kernel: \"\(s)\" is not a kernel version (X.Y or X.Y.Z)") }
        guard v >= KernelVersion.oldestModelled else {
            fail("--kernel: \(v) is older than any modelled version (\(KernelVersion.oldestModelled) and newer)")
        }
        return v
    }

    /// A YAML fixture decodes as a scenario or machine; anything else is imported as a boot log.
    func loadMachineOrLog(_ path: String) -> Machine {
        if path.hasSuffix(".yaml") || path.hasSuffix(".yml") { return loadScenario(path).machine }
        let imported: ImportedMachine
        do {
            imported = try BootLog.load(path: path)
        } catch {
            fail(error.description)
        }
        var m = Machine(arch: imported.suggestedArch ?? .x86_64, memory: imported.memory, source: path)
        m.kernel = imported.kernel.map { max($0, KernelVersion.oldestModelled) }
        m.earlyReservations = imported.earlyReservations
        m.dmaZoneLimit = imported.dmaZoneLimit
        return m
    }

    func runFit(_ path: String, version: KernelVersion?) throws {
        let sc = loadScenario(path)
        let answer: CrashkernelFit.Answer
        do {
            answer = try CrashkernelFit.search(sc, version: version)
        } catch {
            fail(error.description)
        }
        if json {
            print(jsonText(FitOut(answer)))
        } else {
            let tried = answer.attempts.map { "\($0.size.raw >> 20)M: \($0.outcome)" }.joined(separator: ", ")
            if let fit = answer.fit {
                let where_ = fit.ranges.map { "\(hex($0.first.raw))-\(hex($0.last.raw))" }.joined(separator: " ")
                print("crashkernel=\(fit.size.raw >> 20)M (Linux \(answer.version): reserved \(where_))")
            } else {
                print("no crashkernel= up to \(answer.limit.raw >> 20)M lets it land (Linux \(answer.version))")
            }
            print("tried: \(tried)")
        }
        if answer.size == nil { throw ExitCode(1) }
    }

    struct Range: Encodable {
        var start: String
        var end: String
        init(_ r: AddressRange) {
            start = hex(r.first.raw)
            end = hex(r.last.raw)
        }
    }

    struct Out: Encodable {
        var version: String
        var rules: String
        var message: String
        var messages: [String]
        var ranges: [Range]
        var failure: String?
        init(_ o: CrashkernelOutcome) {
            version = o.version.description
            rules = o.rules.rawValue
            message = o.messages.joined(separator: "\n")
            messages = o.messages
            ranges = o.ranges.map(Range.init)
            failure = o.failure
        }
    }

    struct FitOut: Encodable {
        struct Try: Encodable {
            var size: String
            var outcome: String
            var ranges: [Range]
        }
        var version: String
        var fit: String?
        var size: String?
        var ranges: [Range]
        var tried: [Try]
        init(_ a: CrashkernelFit.Answer) {
            version = a.version.description
            fit = a.size.map { "\($0.raw >> 20)M" }
            size = a.size.map { hex($0.raw) }
            ranges = a.fit?.ranges.map(Range.init) ?? []
            tried = a.attempts.map {
                Try(size: "\($0.size.raw >> 20)M", outcome: $0.outcome, ranges: $0.ranges.map(Range.init))
            }
        }
    }

    func jsonText<T: Encodable>(_ v: T) -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? enc.encode(v) else { fail("cannot encode JSON") }
        return String(decoding: data, as: UTF8.self)
    }
}
