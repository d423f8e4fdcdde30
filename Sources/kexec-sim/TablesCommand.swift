import ArgumentParser
import Foundation
import KexecModel
import KexecSim
import PageTables

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
