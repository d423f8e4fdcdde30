import Foundation

/// The running (first) kernel's version, which selects every kexec rule that changed over time.
///
/// Written `X.Y`, `X.Y.Z` or `X.Y-rcN` (fixtures, `--kernel`), and read from a boot log's
/// `Linux version …` banner (Debian's banner names the stable release at its end:
/// `… Debian 6.1.192-3 (2025-…)`, which is preferred over the ABI name `6.1.0-40-amd64`).
/// `X.Y` alone means the release's first stable update as the rules are concerned: X.Y.0.
/// Order: 6.9-rc1 < 6.9-rc2 < 6.9 = 6.9.0 < 6.9.1.
public struct KernelVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    /// The stable update (Z of X.Y.Z); nil when only X.Y was given.
    public var patch: Int?
    /// A mainline release candidate (N of X.Y-rcN); nil for a release.
    public var rc: Int?

    public init(_ major: Int, _ minor: Int, _ patch: Int? = nil, rc: Int? = nil) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.rc = rc
    }

    /// Parses `X.Y`, `X.Y.Z`, `X.Y-rcN` (a leading `v` is allowed). nil for anything else.
    public init?(_ text: String) {
        var t = Substring(text)
        if t.hasPrefix("v") { t = t.dropFirst() }
        var rc: Int?
        if let r = t.range(of: "-rc") {
            guard let n = Int(t[r.upperBound...]), n > 0, n < 100 else { return nil }
            rc = n
            t = t[..<r.lowerBound]
        }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) }),
            let major = Int(parts[0]), let minor = Int(parts[1]), (2...99).contains(major), (0...99).contains(minor)
        else { return nil }
        var patch: Int?
        if parts.count == 3 {
            guard let p = Int(parts[2]), (0...999).contains(p), rc == nil else { return nil }
            patch = p
        }
        self.init(major, minor, patch, rc: rc)
    }

    /// The version a `Linux version …` banner names: Debian's `Debian X.Y.Z-N` release when the
    /// banner has one, else the leading `X.Y.Z` (or `X.Y-rcN`) of the release string.
    public init?(banner line: String) {
        guard let at = line.range(of: "Linux version ") else { return nil }
        let rest = line[at.upperBound...]
        let release = rest.prefix { !$0.isWhitespace }
        // 6.1.0-40-amd64 → 6.1.0; 6.9.0-rc1+ → 6.9-rc1; 7.1.0-arch1 → 7.1.0
        let numeric = release.prefix { $0.isNumber || $0 == "." }
        var text = String(numeric).trimmingCharacters(in: ["."])
        if let rc = release.range(of: "-rc") {
            let n = release[rc.upperBound...].prefix(while: \.isNumber)
            let xy = text.split(separator: ".").prefix(2).joined(separator: ".")
            text = "\(xy)-rc\(n)"
        }
        guard let v = KernelVersion(text) else { return nil }
        // Debian names the stable release after the build number: `#1 SMP … Debian 6.1.192-3 (…)`.
        // Only there (the compiler's own "Debian 12.2.0-14" comes earlier), and only when it is the
        // same X.Y as the release string.
        if let hash = rest.range(of: "#", options: .backwards),
            let deb = rest[hash.upperBound...].range(of: "Debian ")
        {
            let word = rest[deb.upperBound...].prefix { $0.isNumber || $0 == "." }
            if let d = KernelVersion(String(word)), d.patch != nil, d.line == v.line {
                self = d
                return
            }
        }
        self = v
    }

    public var description: String {
        var s = "\(major).\(minor)"
        if let patch { s += ".\(patch)" }
        if let rc { s += "-rc\(rc)" }
        return s
    }

    /// The release lines whose rules kexec-sim models (Debian 11, RHEL 9, Debian 12, 6.6 LTS, 6.8,
    /// Debian 12 backports / Debian 13, and the newest mainline read).
    public static let modelled: [KernelVersion] = [
        KernelVersion(5, 10), KernelVersion(5, 14), KernelVersion(6, 1), KernelVersion(6, 6), KernelVersion(6, 8),
        KernelVersion(6, 12), KernelVersion(6, 18),
    ]
    /// What a fixture without `machine.kernel` runs as.
    public static let newestModelled = KernelVersion(6, 18)
    /// Nothing older is modelled.
    public static let oldestModelled = KernelVersion(5, 10)

    /// X.Y of this version (the release line its stable updates belong to).
    public var line: KernelVersion { KernelVersion(major, minor) }

    public static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        func key(_ v: KernelVersion) -> (Int, Int, Int, Int) { (v.major, v.minor, v.patch ?? 0, v.rc ?? Int.max) }
        return key(a) < key(b)
    }
    public static func == (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor, a.patch ?? 0, a.rc) == (b.major, b.minor, b.patch ?? 0, b.rc)
    }
    public func hash(into h: inout Hasher) {
        h.combine(major)
        h.combine(minor)
        h.combine(patch ?? 0)
        h.combine(rc)
    }

    /// At least `x.y` (any stable update or release candidate of x.y counts from its .0 release
    /// on; a release candidate of x.y is below x.y).
    public func atLeast(_ major: Int, _ minor: Int, _ patch: Int = 0) -> Bool {
        self >= KernelVersion(major, minor, patch)
    }
}
