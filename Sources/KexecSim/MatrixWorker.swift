import Foundation
import KexecModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs one job in a child process: `EXECUTABLE run FIXTURE [--policy P] [--kernel V] --json --timeout T`,
/// and turns what the child did (its decoded `RunReport`, or how it failed) into the run's result.
///
/// With `persistent`, a matrix thread keeps one long-lived `EXECUTABLE worker` child instead
/// (`MatrixWorkerSession`): the same jobs, arguments and outcomes, without a process start per run.
public struct MatrixWorker: Sendable {
    public var executable: String
    /// Wall-clock limit of one worker, seconds; past it the child is killed.
    public var timeoutSeconds: Double
    /// Long-lived `worker` children, one per matrix thread, instead of one `run` child per job.
    public var persistent: Bool
    /// `--purgatory` for every run (nil: each fixture's own, native by default).
    public var purgatory: PurgatoryMode?
    public init(
        executable: String, timeoutSeconds: Double = 300, persistent: Bool = false, purgatory: PurgatoryMode? = nil
    ) {
        self.executable = executable
        self.timeoutSeconds = timeoutSeconds
        self.persistent = persistent
        self.purgatory = purgatory
    }

    /// The child's own per-phase limit: well under the worker's, so that a guest that loops is
    /// diagnosed by the emulator (a `hang` with its evidence) before the worker is killed.
    public var childPhaseTimeout: Double { max(0.001, timeoutSeconds * 0.4) }

    /// `run FIXTURE [--policy P] [--kernel V] [--purgatory M] [--follow --until G --follow-timeout T]
    /// --json --timeout T`: `--follow` for a job of `matrix --follow`; `--policy` only for an x86_64 job
    /// (an arm64 job runs under the fixture's own relocation mode and linear map); `--kernel` for a
    /// job of `matrix --kernel` / `--kernels`.
    public func arguments(for job: MatrixJob) -> [String] {
        var args = ["run", job.fixturePath]
        if let p = job.policyOverride { args += ["--policy", p] }
        if let v = job.kernel { args += ["--kernel", v.description] }
        if let m = purgatory { args += ["--purgatory", m.rawValue] }
        if let g = job.follow {
            // Relocation and the followed kernel each get the child's phase limit: both together
            // stay under the worker's.
            args += ["--follow", "--until", g.rawValue, "--follow-timeout", String(format: "%.3f", childPhaseTimeout)]
        }
        return args + ["--json", "--timeout", String(format: "%.3f", childPhaseTimeout)]
    }

    /// Skipped and unloadable jobs are answered without a child.
    public func run(_ job: MatrixJob) -> MatrixRunResult {
        if let r = answerWithoutChild(job) { return r }
        let t0 = Date()
        let outcome = ChildProcess.run(executable: executable, arguments: arguments(for: job), timeout: timeoutSeconds)
        let elapsed = Date().timeIntervalSince(t0)
        return Self.interpret(outcome, job: job, elapsed: elapsed, timeout: timeoutSeconds)
    }

    /// The result of a job that needs no child: skipped, or a fixture that does not load.
    func answerWithoutChild(_ job: MatrixJob) -> MatrixRunResult? {
        if let reason = job.skipReason {
            return MatrixRunResult(job: job, status: .skipped, verdict: nil, summary: reason)
        }
        if let err = job.loadError {
            return MatrixRunResult(
                job: job, status: .failed, verdict: "error", summary: err, workerError: "the fixture does not load")
        }
        return nil
    }

    static func interpret(_ o: ChildProcess.Outcome, job: MatrixJob, elapsed: Double, timeout: Double)
        -> MatrixRunResult
    {
        func failure(_ verdict: String, _ why: String, _ extra: [(String, String)] = []) -> MatrixRunResult {
            var ev: [(String, String)] = [("worker", why)]
            ev += extra
            let tail = Self.tail(o.stderr)
            if !tail.isEmpty { ev.append(("stderr", tail)) }
            return MatrixRunResult(
                job: job, status: .failed, verdict: verdict, summary: why, evidence: RunReport.evidence(ev),
                matches: false, elapsed: elapsed, workerError: why)
        }
        if let e = o.launchError { return failure("error", "worker could not start: \(e)") }
        if o.timedOut {
            return failure(
                "hang", "worker timed out after \(Self.seconds(timeout)) and was killed",
                [("pid", "\(o.pid)"), ("limit", Self.seconds(timeout) + " wall clock")])
        }
        if let sig = o.signal {
            return failure("crash", "worker killed by signal \(signalName(sig)) (\(sig))", [("pid", "\(o.pid)")])
        }
        let status = o.exitStatus ?? -1
        // `run` exits 0 (matches or no expectation) or 1 (differs) after printing its JSON.
        if status == 0 || status == 1, let report = RunReport.decode(o.stdout) {
            let passed = report.matches != false && (status == 0 || report.matches == nil)
            return MatrixRunResult(
                job: job, status: passed ? .passed : .failed, verdict: report.verdict, summary: report.summary,
                evidence: report.evidence, matches: report.matches, elapsed: elapsed, report: report)
        }
        let why =
            status == 0 || status == 1
            ? "worker exited with status \(status) without a JSON report"
            : "worker exited with status \(status)"
        return failure("error", why)
    }

    /// Last non-empty lines of the child's stderr, at most 2000 characters.
    static func tail(_ data: Data) -> String {
        let s = String(decoding: data.suffix(2000), as: UTF8.self)
        let lines = s.split(separator: "\n").map(String.init).filter {
            !$0.trimmingCharacters(in: .whitespaces).isEmpty
        }
        return lines.suffix(5).joined(separator: " | ")
    }

    static func seconds(_ s: Double) -> String {
        s >= 10 ? String(format: "%.0f s", s) : String(format: "%.3g s", s)
    }

    public static func signalName(_ s: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV",
            SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2",
            SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS",
        ]
        return names[s] ?? "signal \(s)"
    }
}

/// A child process with its output collected in temporary files (no pipes to drain) and a
/// wall-clock limit enforced with SIGKILL to that child's pid.
public enum ChildProcess {
    public struct Outcome: Sendable {
        public var pid: Int32 = 0
        public var exitStatus: Int32?
        public var signal: Int32?
        public var timedOut = false
        public var launchError: String?
        public var stdout = Data()
        public var stderr = Data()
    }

    public static func run(executable: String, arguments: [String], timeout: Double) -> Outcome {
        var o = Outcome()
        let tmp = NSTemporaryDirectory()
        let tag = "kexec-sim-worker-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let outPath = tmp + "/" + tag + ".out"
        let errPath = tmp + "/" + tag + ".err"
        defer {
            unlink(outPath)
            unlink(errPath)
        }
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
            FileManager.default.createFile(atPath: errPath, contents: nil),
            let outH = FileHandle(forWritingAtPath: outPath), let errH = FileHandle(forWritingAtPath: errPath)
        else {
            o.launchError = "cannot create temporary files in \(tmp)"
            return o
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.standardOutput = outH
        p.standardError = errH
        p.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        do {
            try p.run()
        } catch {
            try? outH.close()
            try? errH.close()
            o.launchError = "\(error)"
            return o
        }
        try? outH.close()
        try? errH.close()
        o.pid = p.processIdentifier
        if done.wait(timeout: .now() + .milliseconds(Int(max(0.001, timeout) * 1000))) == .timedOut {
            o.timedOut = true
            kill(o.pid, SIGKILL)
            done.wait()
        }
        if p.terminationReason == .uncaughtSignal {
            if !o.timedOut { o.signal = p.terminationStatus }
        } else {
            o.exitStatus = p.terminationStatus
        }
        o.stdout = FileManager.default.contents(atPath: outPath) ?? Data()
        o.stderr = FileManager.default.contents(atPath: errPath) ?? Data()
        return o
    }

    /// This program's own executable: /proc/self/exe where there is one, else argv[0] resolved
    /// against the working directory and PATH.
    public static func selfExecutable() -> String? {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            FileManager.default.isExecutableFile(atPath: p)
        {
            return p
        }
        let a0 = CommandLine.arguments.first ?? ""
        if a0.contains("/") {
            let abs = MatrixPlanner.standardized(a0)
            return FileManager.default.isExecutableFile(atPath: abs) ? abs : nil
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/\(a0)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}
