import Foundation
import KexecModel

/// The machine-readable report of one run: what `kexec-sim run --json` prints and what the
/// matrix parent decodes from each worker (JSONDecoder, no re-parsing into dictionaries).
///
/// JSON field names are snake_case and stable: `scenario`, `file`, `verdict`, `summary`,
/// `address`, `errno`, `evidence` (an ordered list of `{"key", "value"}` objects), `warnings`,
/// `expected`, `matches`, `engine`, `policy`, `stats`. Absent optional values are written as
/// `null` (never left out), so every report has every key.
public struct RunReport: Codable, Sendable, Equatable {
    /// One piece of evidence, in the order the verdict gives it.
    public struct Evidence: Codable, Sendable, Equatable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// The fixture's expectation for the policy that ran (`expect:` or `expect_by_policy:`).
    public struct Expected: Codable, Sendable, Equatable {
        public var verdict: String
        /// Hex, e.g. "0x100000000".
        public var address: String?
        public var errno: String?
        public init(verdict: String, address: String? = nil, errno: String? = nil) {
            self.verdict = verdict
            self.address = address
            self.errno = errno
        }
        public init(_ e: Expectation) {
            self.init(verdict: e.verdict.rawValue, address: e.address.map(hex), errno: e.errno)
        }
        enum CodingKeys: String, CodingKey { case verdict, address, errno }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(verdict, forKey: .verdict)
            try c.encodeIfPresent(address, forKey: .address)
            try c.encodeIfPresent(errno, forKey: .errno)
        }
    }

    /// Per-phase timings and engine counters (seconds; bytes; counts).
    public struct Stats: Codable, Sendable, Equatable {
        public var planSeconds: Double
        public var setupSeconds: Double
        public var relocationSeconds: Double
        public var purgatorySeconds: Double
        public var verifySeconds: Double
        public var totalSeconds: Double
        public var payloadBytes: UInt64
        public var copyMBps: Double
        public var tlbFills: UInt64
        public var onDemandPages: Int
        public var guestBlocks: Int

        public init(
            planSeconds: Double = 0, setupSeconds: Double = 0, relocationSeconds: Double = 0,
            purgatorySeconds: Double = 0, verifySeconds: Double = 0, totalSeconds: Double = 0,
            payloadBytes: UInt64 = 0, copyMBps: Double = 0, tlbFills: UInt64 = 0, onDemandPages: Int = 0,
            guestBlocks: Int = 0
        ) {
            self.planSeconds = planSeconds
            self.setupSeconds = setupSeconds
            self.relocationSeconds = relocationSeconds
            self.purgatorySeconds = purgatorySeconds
            self.verifySeconds = verifySeconds
            self.totalSeconds = totalSeconds
            self.payloadBytes = payloadBytes
            self.copyMBps = copyMBps
            self.tlbFills = tlbFills
            self.onDemandPages = onDemandPages
            self.guestBlocks = guestBlocks
        }

        public init(_ s: RunStats) {
            self.init(
                planSeconds: s.planSeconds, setupSeconds: s.setupSeconds, relocationSeconds: s.relocationSeconds,
                purgatorySeconds: s.purgatorySeconds, verifySeconds: s.verifySeconds, totalSeconds: s.totalSeconds,
                payloadBytes: s.payloadBytes, copyMBps: s.copyMBps, tlbFills: s.tlbFills,
                onDemandPages: s.onDemandPages, guestBlocks: s.guestBlocks)
        }

        enum CodingKeys: String, CodingKey {
            case planSeconds = "plan_s"
            case setupSeconds = "setup_s"
            case relocationSeconds = "relocation_s"
            case purgatorySeconds = "purgatory_s"
            case verifySeconds = "verify_s"
            case totalSeconds = "total_s"
            case payloadBytes = "payload_bytes"
            case copyMBps = "copy_mb_s"
            case tlbFills = "tlb_fills"
            case onDemandPages = "on_demand_pages"
            case guestBlocks = "guest_blocks"
        }
    }

    /// The fixture's `name:`.
    public var scenario: String
    /// The fixture's path as the run was given it.
    public var file: String
    /// The verdict's name (`landed`, `page-fault`, …). In matrix JSON lines, a worker that gave no
    /// report has "hang", "crash" or "error", and a skipped run nil.
    public var verdict: String?
    public var summary: String
    /// The address the verdict is about, in hex.
    public var address: String?
    public var errno: String?
    public var evidence: [Evidence]
    public var warnings: [String]
    public var expected: Expected?
    /// nil: no expectation for this policy (or no report).
    public var matches: Bool?
    public var engine: String
    /// The policy that ran: an x86_64 identity-map policy name, or an arm64 label
    /// "relocation granule mappings" (e.g. "mmu-on 4k blocks").
    public var policy: String
    /// nil only in matrix lines of runs without a worker report.
    public var stats: Stats?

    public init(
        scenario: String, file: String, verdict: String?, summary: String, address: String? = nil,
        errno: String? = nil, evidence: [Evidence] = [], warnings: [String] = [], expected: Expected? = nil,
        matches: Bool? = nil, engine: String = "", policy: String = "", stats: Stats? = nil
    ) {
        self.scenario = scenario
        self.file = file
        self.verdict = verdict
        self.summary = summary
        self.address = address
        self.errno = errno
        self.evidence = evidence
        self.warnings = warnings
        self.expected = expected
        self.matches = matches
        self.engine = engine
        self.policy = policy
        self.stats = stats
    }

    /// The report of a finished run.
    public init(_ r: RunResult) {
        self.init(
            scenario: r.scenario.name, file: r.scenario.file, verdict: r.verdict.kind.rawValue,
            summary: r.verdict.summary, address: r.verdict.address.map(hex), errno: r.verdict.errno,
            evidence: Self.evidence(r.verdict.evidence), warnings: r.verdict.warnings,
            expected: r.expectation.map(Expected.init), matches: r.matches, engine: r.engine, policy: r.policy,
            stats: Stats(r.stats))
    }

    /// The one place a verdict's evidence becomes report evidence (adapt here when
    /// `Verdict.evidence` changes type).
    public static func evidence(_ pairs: [(String, String)]) -> [Evidence] {
        pairs.map { Evidence(key: $0.0, value: $0.1) }
    }

    /// A verdict's typed evidence as the report lists it: each key by its name, in order.
    public static func evidence(_ items: [KexecSim.Evidence]) -> [Evidence] {
        items.map { Evidence(key: $0.key.name, value: $0.value) }
    }

    enum CodingKeys: String, CodingKey {
        case scenario, file, verdict, summary, address, errno, evidence, warnings, expected, matches, engine, policy,
            stats
    }

    /// Missing optional keys decode as nil, missing lists as empty and missing names as "", so a
    /// report from an older worker still decodes; `verdict` and `summary` must be there.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        scenario = try c.decodeIfPresent(String.self, forKey: .scenario) ?? ""
        file = try c.decodeIfPresent(String.self, forKey: .file) ?? ""
        verdict = try c.decode(String?.self, forKey: .verdict)
        summary = try c.decode(String.self, forKey: .summary)
        address = try c.decodeIfPresent(String.self, forKey: .address)
        errno = try c.decodeIfPresent(String.self, forKey: .errno)
        evidence = try c.decodeIfPresent([Evidence].self, forKey: .evidence) ?? []
        warnings = try c.decodeIfPresent([String].self, forKey: .warnings) ?? []
        expected = try c.decodeIfPresent(Expected.self, forKey: .expected)
        matches = try c.decodeIfPresent(Bool.self, forKey: .matches)
        engine = try c.decodeIfPresent(String.self, forKey: .engine) ?? ""
        policy = try c.decodeIfPresent(String.self, forKey: .policy) ?? ""
        stats = try c.decodeIfPresent(Stats.self, forKey: .stats)
    }

    /// Every key is written; nil as `null`.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(scenario, forKey: .scenario)
        try c.encode(file, forKey: .file)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(summary, forKey: .summary)
        try c.encode(address, forKey: .address)
        try c.encode(errno, forKey: .errno)
        try c.encode(evidence, forKey: .evidence)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(expected, forKey: .expected)
        try c.encode(matches, forKey: .matches)
        try c.encode(engine, forKey: .engine)
        try c.encode(policy, forKey: .policy)
        try c.encode(stats, forKey: .stats)
    }

    /// Pretty-printed with sorted keys (what `run --json` prints, without the final newline).
    public func prettyJSON() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Decodes a worker's `run --json` output; nil when it is not a report.
    public static func decode(_ data: Data) -> RunReport? {
        guard !data.isEmpty else { return nil }
        return try? JSONDecoder().decode(RunReport.self, from: data)
    }
}
