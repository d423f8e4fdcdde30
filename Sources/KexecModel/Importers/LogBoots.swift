/// Splitting a log that holds several boots (a reboot, or a panic and then the kdump kernel's boot,
/// captured on one serial console or pasted one after the other) into its boots.
///
/// A kernel prints some lines exactly once per boot: `Linux version …`, `Kernel command line: …`,
/// the e820 header `BIOS-provided physical RAM map:`, memblock's `Zone ranges:` and `Early memory node
/// ranges`, and arm64's `efi: Processing EFI memory map:`. The second of any of them starts another
/// boot, and so does journalctl's `-- Boot <id> --` separator. The new boot starts at that line, or
/// earlier: at the line where the timestamps went back (a new boot counts from 0), else at the
/// `Booting Linux on physical CPU …` lines arm64 prints before `Linux version`; never before the
/// previous boot's last once-per-boot line.
///
/// A boot whose command line has `elfcorehdr=` or `reset_devices`, or that says it reserved memory
/// for the elfcorehdr, is a kdump kernel.
public struct LogBoot: Sendable, Equatable {
    /// 1-based.
    public var number: Int
    /// The 1-based numbers of its first and last lines in the log.
    public var firstLine: Int
    public var lastLine: Int
    /// From its `Linux version` line.
    public var kernelVersion: String?
    public var isKdump: Bool
    /// Indices into the line array it was split from.
    var indices: Range<Int>

    /// "kdump kernel, Linux 6.6.30", "Linux 6.6.30" or "" when the lines say neither.
    public var label: String {
        var parts: [String] = []
        if isKdump { parts.append("kdump kernel") }
        if let v = kernelVersion { parts.append("Linux \(v)") }
        return parts.joined(separator: ", ")
    }

    /// "lines 27–52" (an en dash between the two numbers).
    public var lineSpan: String { firstLine == lastLine ? "line \(firstLine)" : "lines \(firstLine)–\(lastLine)" }
}

public enum LogBoots {
    /// The boots of `lines` (one when nothing repeats; none for an empty log).
    public static func split(_ lines: [LogLine]) -> [LogBoot] {
        guard !lines.isEmpty else { return [] }
        var starts = [0]
        var seen: Set<Marker> = []
        var lastMarker: Int?  // index of the current boot's last once-per-boot line
        for (i, l) in lines.enumerated() {
            if isJournalBootSeparator(l.raw) {
                if !seen.isEmpty {
                    starts.append(i)
                    seen = []
                    lastMarker = nil
                }
                continue
            }
            guard let m = marker(l.body) else { continue }
            if seen.contains(m) {
                let floor = (lastMarker ?? starts[starts.count - 1]) + 1
                starts.append(start(of: i, in: lines, from: starts[starts.count - 1], floor: floor))
                seen = []
            }
            seen.insert(m)
            lastMarker = i
        }
        var boots: [LogBoot] = []
        for (n, s) in starts.enumerated() {
            let end = n + 1 < starts.count ? starts[n + 1] : lines.count
            boots.append(describe(lines, s..<end, number: n + 1))
        }
        return boots
    }

    private enum Marker: Hashable {
        case version, commandLine, e820Header, zones, nodeRanges, efiMemoryMap
    }

    private static func marker(_ body: Substring) -> Marker? {
        if body.hasPrefix("Linux version ") { return .version }
        if body.hasPrefix("Kernel command line:") { return .commandLine }
        if body == "BIOS-provided physical RAM map:" || body == "e820: BIOS-provided physical RAM map:" {
            return .e820Header
        }
        if body == "Zone ranges:" { return .zones }
        if body == "Early memory node ranges" { return .nodeRanges }
        if body == "efi: Processing EFI memory map:" { return .efiMemoryMap }
        return nil
    }

    /// `-- Boot 0123abcd… --` as journalctl prints it between boots.
    private static func isJournalBootSeparator(_ raw: Substring) -> Bool {
        raw.hasPrefix("-- Boot ") && raw.hasSuffix(" --")
    }

    /// Where the boot whose once-per-boot line is at `trigger` starts (at least `floor`), in the boot
    /// that started at `from`.
    private static func start(of trigger: Int, in lines: [LogLine], from: Int, floor: Int) -> Int {
        // The last place at or after `floor` where the timestamps went back.
        var previous: Timestamp?
        var reset: Int?
        for j in from...trigger {
            guard let t = timestamp(lines[j].raw) else { continue }
            if let p = previous, t < p, j >= floor { reset = j }
            previous = t
        }
        if let reset { return reset }
        var b = trigger
        while b - 1 >= floor, lines[b - 1].body.hasPrefix("Booting Linux on physical CPU") { b -= 1 }
        return b
    }

    private static func describe(_ lines: [LogLine], _ indices: Range<Int>, number: Int) -> LogBoot {
        var version: String?
        var kdump = false
        for l in lines[indices] {
            let body = l.body
            if version == nil, body.hasPrefix("Linux version ") {
                version = body.dropFirst("Linux version ".count).split(separator: " ").first.map(String.init)
            }
            for p in ["Kernel command line:", "Command line:"] where body.hasPrefix(p) {
                let words = body.dropFirst(p.count).split(separator: " ")
                if words.contains(where: { $0.hasPrefix("elfcorehdr=") || $0 == "reset_devices" }) { kdump = true }
            }
            if body.hasPrefix("Reserving "), body.contains("for elfcorehdr") { kdump = true }
        }
        return LogBoot(
            number: number, firstLine: lines[indices.lowerBound].number,
            lastLine: lines[indices.upperBound - 1].number, kernelVersion: version, isKdump: kdump, indices: indices)
    }

    /// A `[ 12.345678]` dmesg timestamp: seconds and nanoseconds.
    struct Timestamp: Comparable {
        var seconds: UInt64
        var nanoseconds: UInt64
        static func < (a: Timestamp, b: Timestamp) -> Bool {
            (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
        }
    }

    /// The dmesg timestamp a line starts with (after mail quotes and a `<N>` level); nil when it has none.

    static func timestamp(_ raw: Substring) -> Timestamp? {
        var s = raw
        while s.first == ">" { s = s.dropFirst().drop { $0 == " " } }
        if s.first == "<", let close = s.firstIndex(of: ">") { s = s[s.index(after: close)...] }
        guard s.first == "[", let close = s.firstIndex(of: "]") else { return nil }
        let inner = s[s.index(after: s.startIndex)..<close].drop { $0 == " " }
        let parts = inner.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].count <= 9,
            parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
            let sec = UInt64(parts[0]), var nanos = UInt64(parts[1])
        else { return nil }
        // At most 9 digits: scaled to nanoseconds (so "0.5" and "0.500000" compare equal) it stays below 10^9.
        for _ in parts[1].count..<9 { nanos *= 10 }
        return Timestamp(seconds: sec, nanoseconds: nanos)
    }
}
