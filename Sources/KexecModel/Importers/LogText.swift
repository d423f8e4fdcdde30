/// The lines of a boot log as the importers see them: numbered, split at LF, CRLF or CR, with the
/// kernel message separated from timestamps and syslog prefixes. Decoding the file's bytes (UTF-8,
/// UTF-16 with a byte-order mark) is in LogTextDecoding.swift; splitting a log into boots in
/// LogBoots.swift.

/// A line of a log: its number, the text as written, and the message without prefixes.
public struct LogLine: Sendable {
    public let number: Int
    public let raw: Substring
    public let body: Substring
}

public enum LogText {
    /// The lines of `text`, numbered from 1, without their line breaks. A line break is LF, CRLF or a
    /// lone CR (a log saved on Windows, or by a terminal that wrote bare carriage returns), so the same
    /// log gives the same lines whichever it uses; a final line break starts no other line.
    public static func lines(_ text: String) -> [LogLine] {
        var out: [LogLine] = []
        let utf8 = text.utf8
        var start = utf8.startIndex
        var i = start
        func add(_ end: String.Index) {
            let raw = text[start..<end]
            out.append(LogLine(number: out.count + 1, raw: raw, body: body(raw)))
        }
        // CR and LF are ASCII and end a grapheme cluster on either side (CRLF aside, which is never
        // cut in two here), so these byte positions are character boundaries of `text`.
        while i < utf8.endIndex {
            let c = utf8[i]
            guard c == 0x0A || c == 0x0D else {
                i = utf8.index(after: i)
                continue
            }
            add(i)
            i = utf8.index(after: i)
            if c == 0x0D, i < utf8.endIndex, utf8[i] == 0x0A { i = utf8.index(after: i) }
            start = i
        }
        if start < utf8.endIndex { add(utf8.endIndex) }
        return out
    }

    /// The kernel message of a dmesg / journalctl / console line: drops a syslog or journal header up
    /// to `kernel: `, `<N>` log levels, `kern  :info  : ` (dmesg -x), `[    0.000000]` timestamps,
    /// `[    T0]` caller ids and `[Mon Jan  1 00:00:00 2024]` (dmesg -T), then surrounding blanks.
    /// A log quoted in a mail reply (`> [    0.000000] …`, `>> …`) loses its quote marks first.
    public static func body(_ raw: Substring) -> Substring {
        var s = raw
        while s.first == ">" { s = s.dropFirst().drop { $0 == " " } }
        if let r = s.range(of: " kernel: ") {
            s = s[r.upperBound...]
        } else if s.hasPrefix("kernel: ") {
            s = s.dropFirst("kernel: ".count)
        }
        var changed = true
        while changed {
            changed = false
            s = s.drop { $0 == " " || $0 == "\t" }
            if s.first == "<", let close = s.firstIndex(of: ">"), s.index(after: s.startIndex) < close,
                s[s.index(after: s.startIndex)..<close].allSatisfy(\.isNumber)
            {
                s = s[s.index(after: close)...]
                changed = true
            } else if s.first == "[", let close = s.firstIndex(of: "]"),
                isPrefixBracket(s[s.index(after: s.startIndex)..<close])
            {
                s = s[s.index(after: close)...]
                changed = true
            } else if let colon = facilityPrefixEnd(s) {
                s = s[colon...]
                changed = true
            }
        }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }

    /// `[    0.000000]`, `[    T1]`, `[  C0]`, `[Mon Jan  1 00:00:00 2024]`; never `[mem …]` and the like.
    private static func isPrefixBracket(_ inner: Substring) -> Bool {
        let t = inner.drop { $0 == " " }
        guard !t.isEmpty, inner.count <= 40 else { return false }
        if t.allSatisfy({ $0.isNumber || $0 == "." }) { return true }
        if let f = t.first, f == "T" || f == "C", t.count > 1, t.dropFirst().allSatisfy(\.isNumber) { return true }
        // dmesg -T: a weekday, a month, a time.
        let days = ["Mon ", "Tue ", "Wed ", "Thu ", "Fri ", "Sat ", "Sun "]
        return days.contains { t.hasPrefix($0) } && t.contains(":")
    }

    /// End of `kern  :info  : ` (dmesg -x), if `s` starts with one.
    private static func facilityPrefixEnd(_ s: Substring) -> Substring.Index? {
        let facilities = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news"]
        guard let f = facilities.first(where: { s.hasPrefix($0) }) else { return nil }
        var t = s.dropFirst(f.count).drop { $0 == " " }
        guard t.first == ":" else { return nil }
        t = t.dropFirst()
        let levels = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"]
        guard let l = levels.first(where: { t.hasPrefix($0) }) else { return nil }
        t = t.dropFirst(l.count).drop { $0 == " " }
        guard t.first == ":" else { return nil }
        return t.index(after: t.startIndex)
    }

    /// The text with control characters shown as `?` (for messages and YAML comments).
    public static func printable(_ s: Substring) -> String {
        String(
            String.UnicodeScalarView(
                s.unicodeScalars.map { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7f ? "?" : $0 }))
    }
}
