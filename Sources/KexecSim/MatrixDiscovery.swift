import Foundation
import KexecModel

// Discovering the matrix: fixture files (named or found in directories) and the jobs they give,
// one per fixture and policy.

/// Which policies each fixture runs under.
public enum MatrixPolicies: Sendable, Equatable {
    /// The fixture's own policy (the default).
    case own
    /// Every x86_64 identity-map policy.
    case all
    case list([IdentityMapPolicy])

    /// nil text: `.own`; "all"; or a comma-separated list of policy names.
    public static func parse(_ text: String?) throws(MatrixError) -> MatrixPolicies {
        guard let text else { return .own }
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "all" { return .all }
        if t == "own" || t == "default" { return .own }
        var out: [IdentityMapPolicy] = []
        for part in t.split(separator: ",") {
            let name = part.trimmingCharacters(in: .whitespaces)
            guard let p = IdentityMapPolicy(rawValue: name) else {
                throw MatrixError(
                    "--policies: unknown policy \"\(name)\" (all, or a comma-separated list of: "
                        + IdentityMapPolicy.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            if !out.contains(p) { out.append(p) }
        }
        guard !out.isEmpty else { throw MatrixError("--policies: empty list") }
        return .list(out)
    }

    func policies(for scenario: Scenario) -> [IdentityMapPolicy] {
        switch self {
        case .own: return scenario.x86Policy.map { [$0.identityMap] } ?? []
        case .all: return IdentityMapPolicy.allCases
        case .list(let l): return l
        }
    }
}

public struct MatrixError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One fixture under one policy.
public struct MatrixJob: Sendable, Equatable {
    /// The path the worker is given.
    public var fixturePath: String
    /// The path relative to the working directory (what sharding hashes and reports show).
    public var relativePath: String
    /// The fixture's `name:` (its file stem when it did not load).
    public var scenarioName: String
    /// The policy label the run is shown and sharded under: an x86_64 identity-map policy
    /// ("ram-2m"), or an arm64 fixture's own "relocation granule mappings" ("mmu-on 4k blocks").
    public var policy: String
    /// Whether the worker is given `--policy <policy>` (x86_64); false for arm64 jobs, which run
    /// under the fixture's own policy.
    public var passesPolicy: Bool
    public var expected: Expectation?
    /// The first-kernel version the worker runs as (`run --kernel`): from `matrix --kernel` (the
    /// label stays as it is) or `matrix --kernels` (the label gets " @6.1"); nil: the fixture's own.
    public var kernel: KernelVersion?
    /// The identity-map policy the worker is given (`policy` is the label, which may carry " @X.Y").
    var policyName: String
    /// `matrix --follow`: the goal the worker follows the next kernel to (`run --follow --until
    /// GOAL`); nil: not followed.
    public var follow: FollowGoal?
    /// Set when the run cannot be made here (a machine file): reported as skipped.
    public var skipReason: String?
    /// Set when the fixture did not decode: reported as failed without a worker.
    public var loadError: String?
    /// The fixture's own `follow:` goal (nil: the fixture does not follow the next kernel).
    public var followGoal: FollowGoal?

    public init(
        fixturePath: String, relativePath: String, scenarioName: String, policy: String,
        expected: Expectation? = nil, skipReason: String? = nil, loadError: String? = nil, passesPolicy: Bool = true
    ) {
        self.fixturePath = fixturePath
        self.relativePath = relativePath
        self.scenarioName = scenarioName
        self.policy = policy
        self.policyName = policy
        self.passesPolicy = passesPolicy
        self.expected = expected
        self.skipReason = skipReason
        self.loadError = loadError
    }

    /// The `--policy` the worker is given, nil for none (arm64).
    public var policyOverride: String? { passesPolicy ? policyName : nil }

    /// This job run as kernel `version`; with `inLabel` its label (and so its row, JUnit test
    /// name and shard key) names the version: "ram-2m @6.1". An arm64 job's label is its policy as
    /// that kernel resolves it ("mmu-off 4k base-pages @5.15", "mmu-on 4k blocks @6.12": relocation
    /// and linear-map rules follow the version). Jobs that run nothing stay as they are.
    public func runningKernel(_ version: KernelVersion, inLabel: Bool) -> MatrixJob {
        var j = self
        guard skipReason == nil, loadError == nil else { return j }
        j.kernel = version
        guard inLabel else { return j }
        var label = policy
        if !passesPolicy, let sc = try? FixtureDecoder.load(path: fixturePath), sc.machine.arch == .arm64 {
            label = sc.overridingKernel(version).policyLabel
        }
        j.policy = "\(label) @\(version)"
        return j
    }
    /// "fixture-relative-path|policy", the string the shard hash is taken of.
    public var shardKey: String { "\(relativePath)|\(policy)" }
    /// The file name without its extension (JUnit classname).
    public var fixtureStem: String {
        let last = relativePath.split(separator: "/").last.map(String.init) ?? relativePath
        if let dot = last.lastIndex(of: "."), dot != last.startIndex { return String(last[..<dot]) }
        return last
    }
}

/// Enumerating fixtures and jobs.
public enum MatrixPlanner {
    /// Architectures whose runs exist (Planner.plan throws PlanError.unsupported for the others):
    /// fixtures of other architectures are reported as skipped.

    /// Fixture files named by `arguments` (files, or directories searched recursively for
    /// .yaml/.yml), in order, without repeats. `fromDirectory` tells which ones a directory gave.
    public static func fixtureFiles(_ arguments: [String]) throws(MatrixError) -> [(path: String, fromDirectory: Bool)]
    {
        let fm = FileManager.default
        var out: [(String, Bool)] = []
        var seen = Set<String>()
        for arg in arguments {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: arg, isDirectory: &isDir) else {
                throw MatrixError("\(arg): no such file or directory")
            }
            if isDir.boolValue {
                guard let e = fm.enumerator(atPath: arg) else { throw MatrixError("\(arg): cannot list") }
                var found: [String] = []
                while let rel = e.nextObject() as? String {
                    if rel.hasSuffix(".yaml") || rel.hasSuffix(".yml") {
                        let p = (arg.hasSuffix("/") ? arg : arg + "/") + rel
                        var d: ObjCBool = false
                        if fm.fileExists(atPath: p, isDirectory: &d), !d.boolValue { found.append(p) }
                    }
                }
                for p in found.sorted() where seen.insert(standardized(p)).inserted { out.append((p, true)) }
            } else if seen.insert(standardized(arg)).inserted {
                out.append((arg, false))
            }
        }
        return out
    }

    static func standardized(_ p: String) -> String {
        let abs = p.hasPrefix("/") ? p : FileManager.default.currentDirectoryPath + "/" + p
        return URL(fileURLWithPath: abs).standardizedFileURL.path
    }

    /// `path` relative to `base` when it lies under it, else the standardized absolute path.
    public static func relativePath(_ path: String, to base: String = FileManager.default.currentDirectoryPath)
        -> String
    {
        let abs = standardized(path)
        let b = URL(fileURLWithPath: base).standardizedFileURL.path
        let prefix = b.hasSuffix("/") ? b : b + "/"
        return abs.hasPrefix(prefix) ? String(abs.dropFirst(prefix.count)) : abs
    }

    /// An arm64 fixture's policy as one label, "relocation granule mappings": "mmu-on 4k blocks",
    /// "mmu-off 64k base-pages" (the label `run` reports for it; a rule left to the kernel's
    /// version is "auto" here, `Scenario.policyLabel` resolves it).
    public static func arm64PolicyLabel(_ p: Arm64Policy) -> String {
        "\(p.relocation?.rawValue ?? "auto") \(p.granule.rawValue) \(p.mappings?.rawValue ?? "auto")"
    }

    /// Every fixture × policy (x86_64), or once under its own policy (arm64): loads each fixture
    /// (in this process) to learn its arch, name, policy and expectations. Machine-only files
    /// found in a directory are left out.
    ///
    /// `kernels` (`--kernels 6.1,6.12`): every job once per version, its label suffixed " @6.1";
    /// `kernel` (`--kernel 6.1`): every job as that version, labels unchanged. Empty and nil: each
    /// fixture's own version, the jobs as they always were.
    ///
    /// `follow`: see `MatrixFollow` (nil: the default matrix, which skips fixtures with `follow:`).
    public static func jobs(
        fixtures: [(path: String, fromDirectory: Bool)], arch: Arch? = nil, policies: MatrixPolicies = .own,
        kernels: [KernelVersion] = [], kernel: KernelVersion? = nil, follow: MatrixFollow? = nil,
        base: String = FileManager.default.currentDirectoryPath
    ) -> [MatrixJob] {
        let base = jobs(fixtures: fixtures, arch: arch, policies: policies, base: base).map {
            MatrixFollow.apply(follow, to: $0)
        }
        if let kernel { return base.map { $0.runningKernel(kernel, inLabel: false) } }
        guard !kernels.isEmpty else { return base }
        return base.flatMap { j -> [MatrixJob] in
            guard j.skipReason == nil, j.loadError == nil else { return [j] }
            return kernels.map { j.runningKernel($0, inLabel: true) }
        }
    }

    static func jobs(
        fixtures: [(path: String, fromDirectory: Bool)], arch: Arch?, policies: MatrixPolicies, base: String
    ) -> [MatrixJob] {
        var jobs: [MatrixJob] = []
        for (path, fromDirectory) in fixtures {
            let rel = relativePath(path, to: base)
            let abs = standardized(path)
            let sc: Scenario
            do {
                sc = try FixtureDecoder.load(path: path)
            } catch {
                var j = MatrixJob(fixturePath: abs, relativePath: rel, scenarioName: "", policy: "-")
                j.scenarioName = j.fixtureStem
                j.loadError = error.description
                jobs.append(j)
                continue
            }
            if let arch, sc.machine.arch != arch { continue }
            if sc.kexec == nil {
                if fromDirectory { continue }
                jobs.append(
                    MatrixJob(
                        fixturePath: abs, relativePath: rel, scenarioName: sc.name, policy: "-",
                        skipReason: "a machine fixture (no kexec section): nothing to run"))
                continue
            }
            if let goal = sc.follow {
                // Followed runs are opted into (`matrix --follow`); which goal is decided then.
                var j = MatrixJob(
                    fixturePath: abs, relativePath: rel, scenarioName: sc.name,
                    policy: sc.machine.arch == .arm64 ? sc.policyLabel : sc.x86Policy?.identityMap.rawValue ?? "-",
                    expected: sc.expect, passesPolicy: false)
                j.followGoal = goal
                jobs.append(j)
                continue
            }
            if sc.machine.arch == .arm64 {
                // The identity-map policies are x86_64's: whatever --policies says, an arm64 fixture
                // runs once, under its own relocation mode and linear map, and is shown and
                // sharded under that label.
                jobs.append(
                    MatrixJob(
                        fixturePath: abs, relativePath: rel, scenarioName: sc.name, policy: sc.policyLabel,
                        expected: sc.expect, passesPolicy: false))
                continue
            }
            for p in policies.policies(for: sc) {
                jobs.append(
                    MatrixJob(
                        fixturePath: abs, relativePath: rel, scenarioName: sc.name, policy: p.rawValue,
                        expected: sc.expectation(for: p)))
            }
        }
        return jobs
    }
}
