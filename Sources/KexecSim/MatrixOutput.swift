import Foundation
import KexecModel

/// The matrix as people and CI read it: expectations as text, counts, the table, JSON lines.
extension Matrix {
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
