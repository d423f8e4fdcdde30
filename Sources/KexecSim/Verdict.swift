import KexecModel

/// One verdict per run, with the evidence a kernel developer needs to act on it.
public struct Verdict: Sendable {
    public var kind: VerdictKind
    /// One line for people.
    public var summary: String
    /// Ordered, typed evidence — printed as text and as JSON, in this order.
    public var evidence: [Evidence]
    /// The address the verdict is about, when there is one (fault VA, stray page, corrupted byte).
    public var address: UInt64?
    public var errno: String?
    /// Things a developer should know even when the run landed (hot-removable placement, leaves
    /// over reserved memory).
    public var warnings: [String] = []
    /// `--follow`: the furthest milestone the next kernel reached (nil: not followed, or no banner).
    public var followedTo: FollowGoal?

    public init(
        kind: VerdictKind, summary: String, evidence: [Evidence] = [], address: UInt64? = nil,
        errno: String? = nil
    ) {
        self.kind = kind
        self.summary = summary
        self.evidence = evidence
        self.address = address
        self.errno = errno
    }

    /// Does this verdict meet `expect:`? Addresses compare by 4 KiB page (the MMU reports faults per page).
    public func matches(_ e: Expectation) -> Bool {
        guard e.verdict == kind else { return false }
        if let want = e.address {
            guard let got = address, want & ~0xfff == got & ~0xfff else { return false }
        }
        if let want = e.errno, want != errno { return false }
        if let want = e.milestone {
            guard let got = followedTo, got >= want else { return false }
        }
        return true
    }
}
