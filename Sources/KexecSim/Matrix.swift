import Foundation
import KexecModel

// The regression matrix: every fixture × every applicable policy, each run in a worker process
// (`kexec-sim run FIXTURE --policy P --json`) so that a run which crashes or hangs its worker is
// that run's failure and the matrix goes on.

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
