import Foundation

/// JUnit XML for CI systems: one `<testsuite>` per fixture, one `<testcase>` per policy
/// (classname = the fixture's file name without extension), `<failure>` with the evidence,
/// `<skipped/>` for runs that cannot be made.
public enum JUnit {
    public static func xml(_ results: [MatrixRunResult], name: String = "kexec-sim matrix") -> String {
        // Suites in first-appearance order.
        var order: [String] = []
        var byFixture: [String: [MatrixRunResult]] = [:]
        for r in results {
            if byFixture[r.job.relativePath] == nil { order.append(r.job.relativePath) }
            byFixture[r.job.relativePath, default: []].append(r)
        }
        let c = Matrix.counts(results)
        let total = results.reduce(0) { $0 + $1.elapsed }
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out +=
            "<testsuites name=\"\(attr(name))\" tests=\"\(results.count)\" failures=\"\(c.failed)\" errors=\"0\""
            + " skipped=\"\(c.skipped)\" time=\"\(time(total))\">\n"
        for fixture in order {
            let rs = byFixture[fixture]!
            let fc = Matrix.counts(rs)
            let t = rs.reduce(0) { $0 + $1.elapsed }
            out +=
                "  <testsuite name=\"\(attr(fixture))\" tests=\"\(rs.count)\" failures=\"\(fc.failed)\" errors=\"0\""
                + " skipped=\"\(fc.skipped)\" time=\"\(time(t))\">\n"
            out += "    <properties>\n"
            out += "      <property name=\"scenario\" value=\"\(attr(rs[0].job.scenarioName))\"/>\n"
            out += "    </properties>\n"
            for r in rs {
                out +=
                    "    <testcase name=\"\(attr(r.job.policy))\" classname=\"\(attr(r.job.fixtureStem))\""
                    + " time=\"\(time(r.elapsed))\""
                switch r.status {
                case .passed:
                    out += "/>\n"
                case .skipped:
                    out += ">\n      <skipped message=\"\(attr(r.summary))\"/>\n    </testcase>\n"
                case .failed:
                    let type = r.verdict ?? "error"
                    out += ">\n      <failure message=\"\(attr(r.summary))\" type=\"\(attr(type))\">"
                    out += text(r.evidenceText)
                    out += "</failure>\n    </testcase>\n"
                }
            }
            out += "  </testsuite>\n"
        }
        out += "</testsuites>\n"
        return out
    }

    static func time(_ s: Double) -> String { String(format: "%.3f", s) }

    /// Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/U+FFFF)
    /// become U+FFFD.
    static func legal(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x9, 0xA, 0xD: return true
        case 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: return true
        default: return false
        }
    }

    /// Escaped for character data.
    public static func text(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\r": out += "&#13;"
            default: out.unicodeScalars.append(legal(u) ? u : "\u{FFFD}")
            }
        }
        return out
    }

    /// Escaped for a double-quoted attribute value (newlines and tabs kept as character references,
    /// which attribute normalization would otherwise turn into spaces).
    public static func attr(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            case "\t": out += "&#9;"
            default: out.unicodeScalars.append(legal(u) ? u : "\u{FFFD}")
            }
        }
        return out
    }
}
