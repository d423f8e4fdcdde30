import ArgumentParser
import Foundation
import KexecSim

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `kexec-sim worker`: the matrix's long-lived worker (one per core). Reads one job per line on
/// stdin, runs it in this process as `kexec-sim run` would, and answers one line on stdout
/// (MatrixWorkerProtocol); ends at EOF. A job that crashes or hangs takes this process with it:
/// the matrix reports that job's failure and starts another worker. Not for people: hidden.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Serve matrix runs read from stdin (used by `matrix`).", shouldDisplay: false)

    func run() throws {
        // Only responses go to the parent's pipe: anything else printed while a job runs goes to stderr.
        let responses = FileHandle(fileDescriptor: dup(STDOUT_FILENO), closeOnDealloc: true)
        dup2(STDERR_FILENO, STDOUT_FILENO)
        while let line = readLine(strippingNewline: true) {
            let o: CommandOutcome
            if let args = MatrixWorkerProtocol.arguments(fromRequest: line) {
                o = Self.serve(args)
            } else {
                o = CommandOutcome(status: 2, stderr: "kexec-sim worker: a request is a JSON array of strings\n")
            }
            let r = MatrixWorkerProtocol.Response(status: o.status, stdout: o.stdout, stderr: o.stderr)
            responses.write(Data((MatrixWorkerProtocol.responseLine(r) + "\n").utf8))
        }
    }

    /// One job: `run ARGS…` in this process.
    static func serve(_ args: [String]) -> CommandOutcome {
        guard args.first == "run" else {
            return CommandOutcome(
                status: 2, stderr: "kexec-sim worker: only `run` jobs, got \(args.first ?? "nothing")\n")
        }
        do {
            return try RunCommand.parse(Array(args.dropFirst())).outcome()
        } catch {
            return CommandOutcome(status: 2, stderr: RunCommand.fullMessage(for: error) + "\n")
        }
    }
}
