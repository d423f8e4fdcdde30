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
    @Option(help: "Run as this first-kernel version (X.Y or X.Y.Z), overriding the fixture's machine.kernel.")
    var kernel: String?
    @Flag(help: "Count only the machine's own ranges (RAM as direct-mapped, first 1 MiB, ACPI, NVS).")
    var noSegments = false
    @Flag(help: "One row per policy, and which policies leave a touched address unmapped or cover a hazard.")
    var compare = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let sc = loadScenario(fixture, kernel: kernel)
        if sc.machine.arch == .arm64 {
            // Payload: the segments' sizes as one range per segment (placement does not change the count much).
            var payload: [AddressRange] = []
            if let k = sc.kexec {
                var at = sc.machine.memory.usable.ranges.first?.first.raw ?? 0
                for s in [k.kernel?.size, k.initrd?.size].compactMap({ $0 }) + k.segments.map(\.memsz) {
                    if let r = AddressRange(start: PhysAddr(at), size: s) {
                        payload.append(r)
                        at = r.endSaturated
                    }
                }
            }
            let rows = Arm64TableReport.rows(sc, payload: payload)
            print(
                json ? Report.json(Arm64TableReport.json(rows)) : Arm64TableReport.text(rows),
                terminator: json ? "\n" : "")
            return
        }
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
            let p = parsePolicy(policy) ?? sc.x86Policy?.identityMap ?? X86Policy().identityMap
            let cost = try TableReport.cost(sc, policy: p, noSegments: noSegments)
            print(json ? Report.json(Report.costDict(cost)) : Report.costText(cost))
        } catch {
            fail(error.description)
        }
    }
}
