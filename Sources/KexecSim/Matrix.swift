import Foundation
import KexecModel

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// The regression matrix: every fixture × every applicable policy, each run in a worker process
// (`kexec-sim run FIXTURE --policy P --json`) so that a run which crashes or hangs its worker is
// that run's failure and the matrix goes on.

/// FNV-1a, 64 bits: a hash that is the same in every process and on every machine (Swift's
/// Hasher is seeded per process), for sharding.
public enum FNV1a {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x100_0000_01b3
    public static func hash64(_ s: String) -> UInt64 {
        var h = offsetBasis
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* prime
        }
        return h
    }
}

/// `--shard K/N` (1-based K): the runs whose key hashes to K-1 modulo N.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int
    public init?(index: Int, count: Int) {
        guard count >= 1, index >= 1, index <= count else { return nil }
        self.index = index
        self.count = count
    }
    /// Parses "K/N".
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0].trimmingCharacters(in: .whitespaces)),
            let n = Int(parts[1].trimmingCharacters(in: .whitespaces))
        else { return nil }
        self.init(index: k, count: n)
    }
    public var description: String { "\(index)/\(count)" }
    public func contains(key: String) -> Bool {
        FNV1a.hash64(key) % UInt64(count) == UInt64(index - 1)
    }
    public func contains(_ job: MatrixJob) -> Bool { contains(key: job.shardKey) }
}

/// Which policies each fixture runs under.
public enum MatrixPolicies: Sendable, Equatable {
    /// The fixture's own policy (the default).
    case own
    /// Every x86_64 identity-map policy.
    case all
    case list([IdentityMapPolicy])

    /// nil text: `.own`; "all"; or a comma-separated list of policy names.
    public static func parse(_ text: String?) throws(MatrixError) -> MatrixPolicies {
        guard let text else { return .own }
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "all" { return .all }
        if t == "own" || t == "default" { return .own }
        var out: [IdentityMapPolicy] = []
        for part in t.split(separator: ",") {
            let name = part.trimmingCharacters(in: .whitespaces)
            guard let p = IdentityMapPolicy(rawValue: name) else {
                throw MatrixError(
                    "--policies: unknown policy \"\(name)\" (all, or a comma-separated list of: "
                        + IdentityMapPolicy.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            if !out.contains(p) { out.append(p) }
        }
        guard !out.isEmpty else { throw MatrixError("--policies: empty list") }
        return .list(out)
    }

    func policies(for scenario: Scenario) -> [IdentityMapPolicy] {
        switch self {
        case .own: return [scenario.policy.identityMap]
        case .all: return IdentityMapPolicy.allCases
        case .list(let l): return l
        }
    }
}

public struct MatrixError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One fixture under one policy.
public struct MatrixJob: Sendable, Equatable {
    /// The path the worker is given.
    public var fixturePath: String
    /// The path relative to the working directory (what sharding hashes and reports show).
    public var relativePath: String
    /// The fixture's `name:` (its file stem when it did not load).
    public var scenarioName: String
    public var policy: String
    public var expected: Expectation?
    /// Set when the run cannot be made here (arm64, a machine file): reported as skipped.
    public var skipReason: String?
    /// Set when the fixture did not decode: reported as failed without a worker.
    public var loadError: String?

    public init(
        fixturePath: String, relativePath: String, scenarioName: String, policy: String,
        expected: Expectation? = nil, skipReason: String? = nil, loadError: String? = nil
    ) {
        self.fixturePath = fixturePath
        self.relativePath = relativePath
        self.scenarioName = scenarioName
        self.policy = policy
        self.expected = expected
        self.skipReason = skipReason
        self.loadError = loadError
    }

    /// "fixture-relative-path|policy", the string the shard hash is taken of.
    public var shardKey: String { "\(relativePath)|\(policy)" }
    /// The file name without its extension (JUnit classname).
    public var fixtureStem: String {
        let last = relativePath.split(separator: "/").last.map(String.init) ?? relativePath
        if let dot = last.lastIndex(of: "."), dot != last.startIndex { return String(last[..<dot]) }
        return last
    }
}

public enum MatrixStatus: String, Sendable { case passed, failed, skipped }

public struct MatrixRunResult: Sendable {
    public var job: MatrixJob
    public var status: MatrixStatus
    /// The verdict's name; for a worker that did not answer: "hang" (timed out), "crash"
    /// (killed by a signal) or "error" (exited without a report); nil when skipped.
    public var verdict: String?
    public var summary: String
    /// Ordered evidence (sorted by key when it came from the worker's JSON).
    public var evidence: [(String, String)]
    /// What the worker said about matching its expectation (nil: no expectation or no report).
    public var matches: Bool?
    /// Wall-clock seconds of the worker, process start to exit.
    public var elapsed: Double
    /// Why the worker gave no report (timed out, signal, exit status).
    public var workerError: String?
    /// The worker's JSON report (Report.runDict), as it printed it.
    public var report: String?

    public init(
        job: MatrixJob, status: MatrixStatus, verdict: String?, summary: String, evidence: [(String, String)] = [],
        matches: Bool? = nil, elapsed: Double = 0, workerError: String? = nil, report: String? = nil
    ) {
        self.job = job
        self.status = status
        self.verdict = verdict
        self.summary = summary
        self.evidence = evidence
        self.matches = matches
        self.elapsed = elapsed
        self.workerError = workerError
        self.report = report
    }

    /// "page-fault at 0x100000000", "rejected EINVAL", "—" when there is no expectation.
    public var expectedText: String { Matrix.describe(job.expected) }
    /// Evidence and expectation as text (JUnit failure bodies, failure listings).
    public var evidenceText: String {
        var out = summary + "\n"
        let w = evidence.map(\.0.count).max() ?? 0
        for (k, v) in evidence { out += "  " + k.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + v + "\n" }
        out += "expected: \(expectedText)\n"
        return out
    }
}

/// Enumerating fixtures and jobs.
public enum MatrixPlanner {
    /// Architectures whose runs exist (Planner.plan throws PlanError.unsupported for the others):
    /// fixtures of other architectures are reported as skipped. Extend when arm64 runs land.
    public static let runnableArchs: Set<Arch> = [.x86_64, .arm64]

    /// Fixture files named by `arguments` (files, or directories searched recursively for
    /// .yaml/.yml), in order, without repeats. `fromDirectory` tells which ones a directory gave.
    public static func fixtureFiles(_ arguments: [String]) throws(MatrixError) -> [(path: String, fromDirectory: Bool)]
    {
        let fm = FileManager.default
        var out: [(String, Bool)] = []
        var seen = Set<String>()
        for arg in arguments {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: arg, isDirectory: &isDir) else {
                throw MatrixError("\(arg): no such file or directory")
            }
            if isDir.boolValue {
                guard let e = fm.enumerator(atPath: arg) else { throw MatrixError("\(arg): cannot list") }
                var found: [String] = []
                while let rel = e.nextObject() as? String {
                    if rel.hasSuffix(".yaml") || rel.hasSuffix(".yml") {
                        let p = (arg.hasSuffix("/") ? arg : arg + "/") + rel
                        var d: ObjCBool = false
                        if fm.fileExists(atPath: p, isDirectory: &d), !d.boolValue { found.append(p) }
                    }
                }
                for p in found.sorted() where seen.insert(standardized(p)).inserted { out.append((p, true)) }
            } else if seen.insert(standardized(arg)).inserted {
                out.append((arg, false))
            }
        }
        return out
    }

    static func standardized(_ p: String) -> String {
        let abs = p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
        return URL(fileURLWithPath: abs).standardizedFileURL.path
    }

    /// `path` relative to `base` when it lies under it, else the standardized absolute path.
    public static func relativePath(_ path: String, to base: String = FileManager.default.currentDirectoryPath)
        -> String
    {
        let abs = standardized(path)
        let b = URL(fileURLWithPath: base).standardizedFileURL.path
        let prefix = b.hasSuffix("/") ? b : b + "/"
        return abs.hasPrefix(prefix) ? String(abs.dropFirst(prefix.count)) : abs
    }

    /// Every fixture × policy: loads each fixture (in this process) to learn its arch, name,
    /// policy and expectations. Machine-only files found in a directory are left out.
    public static func jobs(
        fixtures: [(path: String, fromDirectory: Bool)], arch: Arch? = nil, policies: MatrixPolicies = .own,
        base: String = FileManager.default.currentDirectoryPath
    ) -> [MatrixJob] {
        var jobs: [MatrixJob] = []
        for (path, fromDirectory) in fixtures {
            let rel = relativePath(path, to: base)
            let abs = standardized(path)
            let sc: Scenario
            do {
                sc = try FixtureDecoder.load(path: path)
            } catch {
                var j = MatrixJob(fixturePath: abs, relativePath: rel, scenarioName: "", policy: "-")
                j.scenarioName = j.fixtureStem
                j.loadError = error.description
                jobs.append(j)
                continue
            }
            if let arch, sc.machine.arch != arch { continue }
            if sc.kexec == nil {
                if fromDirectory { continue }
                jobs.append(
                    MatrixJob(
                        fixturePath: abs, relativePath: rel, scenarioName: sc.name, policy: "-",
                        skipReason: "a machine fixture (no kexec section): nothing to run"))
                continue
            }
            if !runnableArchs.contains(sc.machine.arch) {
                // Planner.plan throws PlanError.unsupported for these; the policies are x86_64's.
                jobs.append(
                    MatrixJob(
                        fixturePath: abs, relativePath: rel, scenarioName: sc.name, policy: "default",
                        expected: sc.expect,
                        skipReason: "machine.arch: \(sc.machine.arch.rawValue) runs are not built yet (x86_64 only)"))
                continue
            }
            if sc.machine.arch == .arm64 {
                // The identity-map policies are x86_64's: an arm64 fixture runs once, under its own
                // relocation mode and granule (the --policy passed to the worker is ignored there).
                jobs.append(
                    MatrixJob(
                        fixturePath: abs, relativePath: rel, scenarioName: sc.name,
                        policy: sc.policy.identityMap.rawValue,
                        expected: sc.expect))
                continue
            }
            for p in policies.policies(for: sc) {
                jobs.append(
                    MatrixJob(
                        fixturePath: abs, relativePath: rel, scenarioName: sc.name, policy: p.rawValue,
                        expected: sc.expectation(for: p)))
            }
        }
        return jobs
    }
}

/// Runs one job in a child process: `EXECUTABLE run FIXTURE --policy P --json --timeout T`.
public struct MatrixWorker: Sendable {
    public var executable: String
    /// Wall-clock limit of one worker, seconds; past it the child is killed.
    public var timeoutSeconds: Double
    public init(executable: String, timeoutSeconds: Double = 300) {
        self.executable = executable
        self.timeoutSeconds = timeoutSeconds
    }

    /// The child's own per-phase limit: well under the worker's, so that a guest that loops is
    /// diagnosed by the emulator (a `hang` with its evidence) before the worker is killed.
    public var childPhaseTimeout: Double { max(0.001, timeoutSeconds * 0.4) }

    public func arguments(for job: MatrixJob) -> [String] {
        [
            "run", job.fixturePath, "--policy", job.policy, "--json", "--timeout",
            String(format: "%.3f", childPhaseTimeout),
        ]
    }

    public func run(_ job: MatrixJob) -> MatrixRunResult {
        if let reason = job.skipReason {
            return MatrixRunResult(job: job, status: .skipped, verdict: nil, summary: reason)
        }
        if let err = job.loadError {
            return MatrixRunResult(
                job: job, status: .failed, verdict: "error", summary: err, workerError: "the fixture does not load")
        }
        let t0 = Date()
        let outcome = ChildProcess.run(executable: executable, arguments: arguments(for: job), timeout: timeoutSeconds)
        let elapsed = Date().timeIntervalSince(t0)
        return Self.interpret(outcome, job: job, elapsed: elapsed, timeout: timeoutSeconds)
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
                job: job, status: .failed, verdict: verdict, summary: why, evidence: ev, matches: false,
                elapsed: elapsed, workerError: why)
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
        if status == 0 || status == 1, let obj = Self.parse(o.stdout) {
            let verdict = obj["verdict"] as? String
            let summary = obj["summary"] as? String ?? ""
            var ev: [(String, String)] = []
            if let d = obj["evidence"] as? [String: Any] {
                for k in d.keys.sorted() { ev.append((k, "\(d[k]!)")) }
            }
            let matches = obj["matches"] as? Bool
            let passed = matches != false && (status == 0 || matches == nil)
            return MatrixRunResult(
                job: job, status: passed ? .passed : .failed, verdict: verdict, summary: summary, evidence: ev,
                matches: matches, elapsed: elapsed, report: String(decoding: o.stdout, as: UTF8.self))
        }
        let why =
            status == 0 || status == 1
            ? "worker exited with status \(status) without a JSON report"
            : "worker exited with status \(status)"
        return failure("error", why)
    }

    static func parse(_ data: Data) -> [String: Any]? {
        guard !data.isEmpty, let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return nil
        }
        return o
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

/// Running the matrix, and its text and JSON-lines renderings.
public enum Matrix {
    /// Runs `jobs` on `parallelism` worker threads, each driving one child at a time. `onFinish`
    /// is called once per run, serialized, with the count finished so far. Results keep job order.
    public static func run(
        _ jobs: [MatrixJob], worker: MatrixWorker, parallelism: Int,
        onFinish: @escaping @Sendable (MatrixRunResult, Int) -> Void = { _, _ in }
    ) -> [MatrixRunResult] {
        let state = MatrixState(count: jobs.count)
        let n = max(1, min(parallelism, jobs.count))
        let group = DispatchGroup()
        for _ in 0..<n {
            group.enter()
            let t = Thread {
                while let i = state.take() {
                    let r = worker.run(jobs[i])
                    state.finish(i, r, onFinish)
                }
                group.leave()
            }
            t.stackSize = 1 << 20
            t.start()
        }
        group.wait()
        return state.results.map { $0! }
    }

    public static func describe(_ e: Expectation?) -> String {
        guard let e else { return "—" }
        var s = e.verdict.rawValue
        if let a = e.address { s += " at \(hex(a))" }
        if let n = e.errno { s += " \(n)" }
        return s
    }

    public static func counts(_ results: [MatrixRunResult]) -> (passed: Int, failed: Int, skipped: Int) {
        (
            results.filter { $0.status == .passed }.count, results.filter { $0.status == .failed }.count,
            results.filter { $0.status == .skipped }.count
        )
    }

    public static func summaryLine(_ results: [MatrixRunResult]) -> String {
        let c = counts(results)
        return "\(c.passed) passed, \(c.failed) failed, \(c.skipped) skipped"
    }

    /// Fixture names as shown: relative paths without their common directory.
    public static func displayNames(_ jobs: [MatrixJob]) -> [String] {
        let dirs = jobs.map { j -> [Substring] in Array(j.relativePath.split(separator: "/").dropLast()) }
        var common = dirs.first ?? []
        for d in dirs.dropFirst() {
            var k = 0
            while k < common.count && k < d.count && common[k] == d[k] { k += 1 }
            common = Array(common.prefix(k))
        }
        return jobs.map { j in
            guard !common.isEmpty else { return j.relativePath }
            let parts = j.relativePath.split(separator: "/")
            return parts.dropFirst(common.count).joined(separator: "/")
        }
    }

    /// The table: fixture, policy, verdict, expected, match, time; then the failures with their
    /// evidence; the summary line last.
    public static func table(_ results: [MatrixRunResult]) -> String {
        let names = displayNames(results.map(\.job))
        let header = ["fixture", "policy", "verdict", "expected", "match", "time"]
        var rows: [[String]] = []
        for (r, name) in zip(results, names) {
            let match: String
            switch r.status {
            case .skipped: match = "skip"
            case .failed: match = "NO"
            case .passed: match = r.job.expected == nil ? "—" : "yes"
            }
            let verdict = r.verdict ?? "—"
            rows.append([
                name, r.job.policy, verdict, r.status == .skipped ? "—" : r.expectedText, match,
                r.status == .skipped ? "" : String(format: "%.2fs", r.elapsed),
            ])
        }
        var widths = header.map(\.count)
        for row in rows { for (i, c) in row.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            var s = ""
            for (i, c) in cells.enumerated() {
                if i == cells.count - 1 {
                    s += String(repeating: " ", count: widths[i] - c.count) + c
                } else {
                    s += c + String(repeating: " ", count: widths[i] - c.count + 2)
                }
            }
            return s
        }
        var out = line(header) + "\n"
        for row in rows { out += line(row) + "\n" }
        let failed = zip(results, names).filter { $0.0.status == .failed }
        if !failed.isEmpty {
            out += "\nfailures:\n"
            for (r, name) in failed {
                out += "  \(name) [\(r.job.policy)]: \(r.summary)\n"
                for (k, v) in r.evidence { out += "      \(k): \(v)\n" }
                out += "      expected: \(r.expectedText)\n"
            }
        }
        let skipped = zip(results, names).filter { $0.0.status == .skipped }
        if !skipped.isEmpty {
            out += "\nskipped:\n"
            for (r, name) in skipped { out += "  \(name): \(r.summary)\n" }
        }
        out += summaryLine(results) + "\n"
        return out
    }

    /// One JSON object per run (Report.runDict's keys from the worker, plus fixture_path,
    /// policy, elapsed_s, status), one per line.
    public static func jsonLines(_ results: [MatrixRunResult]) -> String {
        var out = ""
        for r in results {
            var d: [String: Any] = MatrixWorker.parse(Data((r.report ?? "").utf8)) ?? [:]
            if r.report == nil {
                d["scenario"] = r.job.scenarioName
                d["file"] = r.job.fixturePath
                d["verdict"] = r.verdict.map { $0 as Any } ?? NSNull()
                d["summary"] = r.summary
                d["matches"] = r.matches.map { $0 as Any } ?? NSNull()
                var ev: [String: Any] = [:]
                for (k, v) in r.evidence { ev[k] = v }
                d["evidence"] = ev
                d["expected"] = expectationDict(r.job.expected)
                if let e = r.workerError { d["error"] = e }
            }
            d["fixture_path"] = r.job.relativePath
            d["policy"] = r.job.policy
            d["elapsed_s"] = (r.elapsed * 1000).rounded() / 1000
            d["status"] = r.status.rawValue
            guard
                let data = try? JSONSerialization.data(
                    withJSONObject: d, options: [.sortedKeys, .withoutEscapingSlashes])
            else { continue }
            out += String(decoding: data, as: UTF8.self) + "\n"
        }
        return out
    }

    static func expectationDict(_ e: Expectation?) -> Any {
        guard let e else { return NSNull() }
        var d: [String: Any] = ["verdict": e.verdict.rawValue]
        if let a = e.address { d["address"] = hex(a) }
        if let n = e.errno { d["errno"] = n }
        return d
    }
}

/// Progress of a running matrix: one redrawn line on a terminal, one line per run otherwise.
public struct MatrixProgress: Sendable {
    public var total: Int
    public var done = 0
    public var failed = 0
    public var skipped = 0
    public var start: Date
    public init(total: Int, start: Date = Date()) {
        self.total = total
        self.start = start
    }

    public mutating func record(_ r: MatrixRunResult) {
        done += 1
        if r.status == .failed { failed += 1 }
        if r.status == .skipped { skipped += 1 }
    }

    /// "12/40  3.1 runs/s  ETA 9s  1 failed" (the terminal line, without the \r).
    public func line(now: Date = Date()) -> String {
        // Skipped runs take no time: they would make the rate meaningless.
        let t = max(1, now.timeIntervalSince(start))
        let rate = Double(done - skipped) / t
        var s = "\(done)/\(total)  " + String(format: "%.1f runs/s", rate)
        if done < total {
            s += rate > 0 ? "  ETA " + Self.duration(Double(total - done) / rate) : "  ETA ?"
        } else {
            s += "  " + Self.duration(t)
        }
        s += "  \(failed) failed"
        return s
    }

    /// "[12/40] fixture policy: verdict (expected …) ok 0.84s" (a plain line for logs).
    public func plainLine(_ r: MatrixRunResult, name: String) -> String {
        let v = r.verdict ?? "skipped"
        let tag: String
        switch r.status {
        case .passed: tag = "ok"
        case .failed: tag = "FAILED"
        case .skipped: tag = "skipped"
        }
        return "[\(done)/\(total)] \(name) \(r.job.policy): \(v) (expected \(r.expectedText)) \(tag)"
            + String(format: " %.2fs", r.elapsed)
    }

    static func duration(_ s: Double) -> String {
        if s < 60 { return String(format: "%.0fs", s.rounded(.up)) }
        let m = Int(s) / 60
        return m < 60 ? "\(m)m\(Int(s) % 60)s" : "\(m / 60)h\(m % 60)m"
    }
}

final class MatrixState: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var finished = 0
    private(set) var results: [MatrixRunResult?]
    init(count: Int) { results = Array(repeating: nil, count: count) }

    func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < results.count else { return nil }
        next += 1
        return next - 1
    }

    func finish(_ i: Int, _ r: MatrixRunResult, _ onFinish: (MatrixRunResult, Int) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        results[i] = r
        finished += 1
        onFinish(r, finished)
    }
}
