import ArgumentParser
import Foundation
import KexecModel
import KexecSim
import PageTables

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Show the segments, control pages and IND_* list the kernel would build.")
    @Argument(help: "Scenario fixture (YAML).") var fixture: String
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Run as this first-kernel version (X.Y or X.Y.Z), overriding the fixture's machine.kernel.")
    var kernel: String?
    @Option(help: "How many list entries to show.") var entries: Int = 16

    func run() throws {
        let sc = loadScenario(fixture, kernel: kernel)
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
