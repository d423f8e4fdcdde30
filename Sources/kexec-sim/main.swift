import ArgumentParser
import Foundation
import KexecModel
import KexecSim
import PageTables

/// Exit codes: 0 verdict matches `expect:` (or none given), 1 it differs, 2 bad input.
struct KexecSimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kexec-sim",
        abstract: "Emulate a Linux kexec at machine level and say whether the next kernel lands intact, or why not.",
        subcommands: [RunCommand.self, PlanCommand.self, TablesCommand.self])
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("kexec-sim: " + message + "\n").utf8))
    exit(2)
}

func loadScenario(_ path: String) -> Scenario {
    do {
        return try FixtureDecoder.load(path: path)
    } catch {
        fail(error.description)
    }
}

func parsePolicy(_ s: String?) -> IdentityMapPolicy? {
    guard let s else { return nil }
    guard let p = IdentityMapPolicy(rawValue: s) else {
        fail(
            "--policy: unknown policy \"\(s)\" (one of: \(IdentityMapPolicy.allCases.map(\.rawValue).joined(separator: ", ")))"
        )
    }
    return p
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Plan and emulate a fixture's kexec; print the verdict.")
    @Argument(help: "Scenario fixture (YAML).") var fixture: String
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(help: "Identity-map policy, overriding the fixture's.") var policy: String?
    @Option(help: "Exact instruction budget (counting slows the engine about 10x). Default: wall-clock limit only.")
    var budget: UInt64?
    @Option(help: "Wall-clock limit per emulated phase, seconds.") var timeout: Double = 120

    func run() throws {
        let sc = loadScenario(fixture)
        let opts = RunOptions(budget: budget, timeoutSeconds: timeout, policyOverride: parsePolicy(policy))
        let r: RunResult
        do {
            r = try Runner.run(sc, options: opts)
        } catch {
            fail(error.description)
        }
        print(json ? Report.json(Report.runDict(r)) : Report.runText(r), terminator: json ? "\n" : "")
        if r.matches == false { throw ExitCode(1) }
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Show the segments, control pages and IND_* list the kernel would build.")
    @Argument(help: "Scenario fixture (YAML).") var fixture: String
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "How many list entries to show.") var entries: Int = 16

    func run() throws {
        let sc = loadScenario(fixture)
        do {
            switch try Planner.plan(sc) {
            case .planned(let p):
                print(
                    json ? Report.json(Report.planDict(p, firstEntries: entries)) : Report.planText(p),
                    terminator: json ? "\n" : "")
            case .rejected(let r, _):
                if json {
                    print(
                        Report.json(["rejected": true, "errno": r.errno.rawValue, "check": r.check, "detail": r.detail])
                    )
                } else {
                    print("rejected: \(r)")
                }
            }
        } catch {
            fail(error.description)
        }
    }
}

struct TablesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tables", abstract: "Count the identity-map page-table pages per level under a policy.")
    @Argument(help: "Scenario or machine fixture (YAML).") var fixture: String
    @Option(help: "Identity-map policy (default: the fixture's).") var policy: String?
    @Flag(help: "Count only the machine's own ranges (RAM as direct-mapped, first 1 MiB, ACPI, NVS).") var noSegments =
        false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        var sc = loadScenario(fixture)
        if let p = parsePolicy(policy) { sc.policy.identityMap = p }
        var segs: [(name: String, range: AddressRange)] = []
        var type = ImageType.normal
        if let k = sc.kexec, !noSegments {
            type = k.type
            do {
                if case .planned(let p) = try Planner.plan(sc) {
                    segs = p.segments.compactMap { s in s.range.map { (s.name, $0) } }
                }
            } catch {
                fail(error.description)
            }
        }
        var pol = sc.policy
        if noSegments { pol.mapSegments = false }
        let requests = X86IdentityMap.requests(
            machine: sc.machine, segments: segs, policy: pol, imageType: type, crashkernel: sc.machine.crashkernelRanges
        )
        let cost = X86IdentityMap.cost(
            requests: requests, policy: sc.policy.identityMap, platform: sc.machine.platform,
            levels: sc.machine.paging.levels,
            transition: Planner.controlVA)
        print(json ? Report.json(Report.costDict(cost)) : Report.costText(cost))
    }
}

KexecSimCommand.main()
