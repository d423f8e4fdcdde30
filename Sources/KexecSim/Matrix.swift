import Foundation
import KexecModel

// The regression matrix: every fixture × every applicable policy, each run in a worker process
// (`kexec-sim run FIXTURE --policy P --json`) so that a run which crashes or hangs its worker is
// that run's failure and the matrix goes on.

/// How one run of the matrix ended: passed (matches, or no expectation), failed (differs, or the
/// worker gave no report), skipped (nothing to run).
public enum MatrixStatus: String, Sendable, Codable { case passed, failed, skipped }

/// One finished run of the matrix.
public struct MatrixRunResult: Sendable {
    public var job: MatrixJob
    public var status: MatrixStatus
    /// The verdict's name; for a worker that did not answer: "hang" (timed out), "crash"
    /// (killed by a signal) or "error" (exited without a report); nil when skipped.
    public var verdict: String?
    public var summary: String
    /// Evidence in the order the worker's report (or the parent, for a worker failure) gives it.
    public var evidence: [RunReport.Evidence]
    /// What the worker said about matching its expectation (nil: no expectation or no report).
    public var matches: Bool?
    /// Wall-clock seconds of the worker, process start to exit.
    public var elapsed: Double
    /// Why the worker gave no report (timed out, signal, exit status).
    public var workerError: String?
    /// The worker's report, decoded from its `run --json` output (nil when it gave none).
    public var report: RunReport?

    public init(
        job: MatrixJob, status: MatrixStatus, verdict: String?, summary: String,
        evidence: [RunReport.Evidence] = [], matches: Bool? = nil, elapsed: Double = 0, workerError: String? = nil,
        report: RunReport? = nil
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

    /// A followed run: the last milestone the next kernel reached (the last of the `milestones`
    /// evidence: `memory`, `banner`, or an architecture's own such as `mmu-on`); nil otherwise.
    public var milestone: String? {
        guard job.follow != nil, let m = evidence.first(where: { $0.key == "milestones" })?.value else { return nil }
        return m.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// "page-fault at 0x100000000", "rejected EINVAL", "—" when there is no expectation.
    public var expectedText: String { Matrix.describe(job.expected) }
    /// Evidence and expectation as text (JUnit failure bodies, failure listings).
    public var evidenceText: String {
        var out = summary + "\n"
        let w = evidence.map(\.key.count).max() ?? 0
        for e in evidence {
            out += "  " + e.key.padding(toLength: w, withPad: " ", startingAt: 0) + "  " + e.value + "\n"
        }
        out += "expected: \(expectedText)\n"
        return out
    }
}

/// Running the matrix (its renderings are in MatrixOutput.swift).
public enum Matrix {
    /// Runs `jobs` on `parallelism` worker threads, each driving one child at a time (a long-lived
    /// one with `worker.persistent`, see MatrixWorkerSession). `onFinish`
    /// is called once per run, serialized, with the count finished so far. Results keep job order.
    public static func run(
        _ jobs: [MatrixJob], worker: MatrixWorker, parallelism: Int,
        onFinish: @escaping @Sendable (MatrixRunResult, Int) -> Void = { _, _ in }
    ) -> [MatrixRunResult] {
        let state = MatrixState(count: jobs.count)
        let n = max(1, min(parallelism, jobs.count))
        let group = DispatchGroup()
        // A long-lived worker that died leaves a broken pipe: a write to it must fail, not kill us.
        if worker.persistent { signal(SIGPIPE, SIG_IGN) }
        for _ in 0..<n {
            group.enter()
            let t = Thread {
                let session = MatrixWorkerSession(worker: worker)
                while let i = state.take() {
                    let r = session.run(jobs[i])
                    state.finish(i, r, onFinish)
                }
                session.finish()
                group.leave()
            }
            t.stackSize = 1 << 20
            t.start()
        }
        group.wait()
        return state.results.map { $0! }
    }
}

/// The shared queue of job indices and the results, in job order.
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
