import Foundation
import KexecModel

/// The matrix as people and CI read it: expectations as text, counts, the table, JSON lines.
extension Matrix {
    /// An expectation as text: "page-fault at 0x100000000", "rejected EINVAL"; "—" for none.
    public static func describe(_ e: Expectation?) -> String {
        guard let e else { return "—" }
        var s = e.verdict.rawValue
        if let a = e.address { s += " at \(hex(a))" }
        if let n = e.errno { s += " \(n)" }
        if let m = e.milestone { s += " (\(m.rawValue))" }
        return s
    }

    /// Passed, failed and skipped runs.
    public static func counts(_ results: [MatrixRunResult]) -> (passed: Int, failed: Int, skipped: Int) {
        (
            results.filter { $0.status == .passed }.count, results.filter { $0.status == .failed }.count,
            results.filter { $0.status == .skipped }.count
        )
    }

    /// "N passed, M failed, K skipped" (the table's last line).
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
        // A matrix with followed runs shows the milestone each reached.
        let followed = results.contains { $0.job.follow != nil }
        var header = ["fixture", "policy", "verdict", "expected", "match", "time"]
        if followed { header.insert("milestone", at: 3) }
        var rows: [[String]] = []
        for (r, name) in zip(results, names) {
            let match: String
            switch r.status {
            case .skipped: match = "skip"
            case .failed: match = "NO"
            case .passed: match = r.job.expected == nil ? "—" : "yes"
            }
            let verdict = r.verdict ?? "—"
            var row = [
                name, r.job.policy, verdict, r.status == .skipped ? "—" : r.expectedText, match,
                r.status == .skipped ? "" : String(format: "%.2fs", r.elapsed),
            ]
            if followed { row.insert(r.milestone ?? "—", at: 3) }
            rows.append(row)
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
                for e in r.evidence { out += "      \(e.key): \(e.value)\n" }
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

    /// One JSON object per run, one per line: the worker's `RunReport` (or one made from the job
    /// and the worker failure when there is none), with `policy` the matrix's label, plus
    /// `fixture_path`, `elapsed_s`, `status` and, for a worker failure, `error`.
    public static func jsonLines(_ results: [MatrixRunResult]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = ""
        for r in results {
            guard let data = try? encoder.encode(MatrixReportLine(r)) else { continue }
            out += String(decoding: data, as: UTF8.self) + "\n"
        }
        return out
    }
}

/// One line of `matrix --json`: a `RunReport`'s keys and the matrix's own.
public struct MatrixReportLine: Codable, Sendable, Equatable {
    public var report: RunReport
    /// The fixture's path relative to the working directory.
    public var fixturePath: String
    /// Worker wall-clock seconds, rounded to milliseconds.
    public var elapsedSeconds: Double
    public var status: MatrixStatus
    /// Why the worker gave no report.
    public var error: String?
    /// A followed run's last milestone (`MatrixRunResult.milestone`).
    public var milestone: String?

    public init(_ r: MatrixRunResult) {
        var report =
            r.report
            ?? RunReport(
                scenario: r.job.scenarioName, file: r.job.fixturePath, verdict: r.verdict, summary: r.summary,
                evidence: r.evidence, expected: r.job.expected.map(RunReport.Expected.init), matches: r.matches)
        report.policy = r.job.policy
        self.report = report
        fixturePath = r.job.relativePath
        elapsedSeconds = (r.elapsed * 1000).rounded() / 1000
        status = r.status
        error = r.report == nil ? r.workerError : nil
        milestone = r.milestone
    }

    enum CodingKeys: String, CodingKey {
        case fixturePath = "fixture_path"
        case elapsedSeconds = "elapsed_s"
        case status, error, milestone
    }

    public init(from decoder: Decoder) throws {
        report = try RunReport(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        fixturePath = try c.decode(String.self, forKey: .fixturePath)
        elapsedSeconds = try c.decode(Double.self, forKey: .elapsedSeconds)
        status = try c.decode(MatrixStatus.self, forKey: .status)
        error = try c.decodeIfPresent(String.self, forKey: .error)
        milestone = try c.decodeIfPresent(String.self, forKey: .milestone)
    }

    public func encode(to encoder: Encoder) throws {
        try report.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(fixturePath, forKey: .fixturePath)
        try c.encode(elapsedSeconds, forKey: .elapsedSeconds)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encodeIfPresent(milestone, forKey: .milestone)
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
