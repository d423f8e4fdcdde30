import Foundation
import KexecModel
import PageTables

/// Wall time and work of each phase of one run.
public struct RunStats: Sendable {
    public var planSeconds = 0.0
    public var setupSeconds = 0.0
    public var relocationSeconds = 0.0
    public var purgatorySeconds = 0.0
    public var verifySeconds = 0.0
    /// `--follow`: wall time running the next kernel.
    public var followSeconds = 0.0
    /// Bytes the relocation routine moved (3 × page per IND_SOURCE with the swap).
    public var relocatedBytes: UInt64 = 0
    public var payloadBytes: UInt64 = 0
    public var tlbFills: UInt64 = 0
    public var onDemandPages = 0
    public var guestBlocks = 0
    /// Part of planSeconds spent building the page tables.
    public var tablesSeconds = 0.0
    /// Counted only with RunOptions.countInstructions.
    public var relocationInstructions: UInt64?
    public var purgatoryInstructions: UInt64?
    /// Host memory reserved for guest blocks (mostly untouched, lazily committed).
    public var guestReservedBytes: UInt64 = 0
    public var totalSeconds: Double {
        planSeconds + setupSeconds + relocationSeconds + purgatorySeconds + verifySeconds + followSeconds
    }
    /// Payload MB (10^6) per second of relocation.
    public var copyMBps: Double { relocationSeconds > 0 ? Double(payloadBytes) / relocationSeconds / 1e6 : 0 }
}

public struct RunResult: Sendable {
    public var scenario: Scenario
    public var verdict: Verdict
    public var engine: String
    public var stats: RunStats
    public var policy: String
    /// The expectation for the policy this run used (see Scenario.expectation(for:)).
    public var expectation: Expectation? {
        IdentityMapPolicy(rawValue: policy).flatMap { scenario.expectation(for: $0) } ?? scenario.expect
    }
    public var matches: Bool? {
        expectation.map { verdict.matches($0) }
    }
}

public struct RunOptions: Sendable {
    /// Exact instruction budget (engine counting: about 10× slower). nil: wall-clock limit only.
    public var budget: UInt64?
    /// Wall-clock limit for each emulated phase.
    public var timeoutSeconds: Double
    public var policyOverride: IdentityMapPolicy?
    /// Count guest instructions per phase (a per-instruction hook: about 10× slower).
    public var countInstructions: Bool
    /// Follow the next kernel to this milestone, overriding the fixture's `follow:` (nil: the
    /// fixture decides).
    public var follow: FollowGoal?
    /// Wall-clock limit for following the next kernel, seconds (a runaway guest ends as `hang`).
    public var followTimeoutSeconds: Double
    public init(
        budget: UInt64? = nil, timeoutSeconds: Double = 120, policyOverride: IdentityMapPolicy? = nil,
        countInstructions: Bool = false, follow: FollowGoal? = nil, followTimeoutSeconds: Double = 300
    ) {
        self.budget = budget
        self.timeoutSeconds = timeoutSeconds
        self.policyOverride = policyOverride
        self.countInstructions = countInstructions
        self.follow = follow
        self.followTimeoutSeconds = followTimeoutSeconds
    }
}
