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
    @Flag(help: "Count only the machine's own ranges (RAM as direct-mapped, first 1 MiB, ACPI, NVS).")
    var noSegments = false
    @Flag(help: "One row per policy, and which policies leave a touched address unmapped or cover a hazard.")
    var compare = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let sc = loadScenario(fixture)
        do {
            if compare {
                let rows = try TableReport.compare(sc, noSegments: noSegments)
                if json {
                    let arr: [[String: Any]] = rows.map { r in
                        var d = Report.costDict(r.cost)
                        d["unmapped_touches"] = r.unmappedTouches.map { hex($0.raw) }
                        d["hazard_leaves"] = r.hazardLeaves.count
                        return d
                    }
                    print(Report.json(arr))
                } else {
                    print(TableReport.compareText(rows, platform: sc.machine.platform), terminator: "")
                }
                return
            }
            let p = parsePolicy(policy) ?? sc.policy.identityMap
            let cost = try TableReport.cost(sc, policy: p, noSegments: noSegments)
            print(json ? Report.json(Report.costDict(cost)) : Report.costText(cost))
        } catch {
            fail(error.description)
        }
    }
}
