import ArgumentParser
import Foundation
import KexecModel
import KexecSim

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Time a fixed set of runs per phase, against host memcpy and sha256.")
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Only the cases whose name contains this.") var filter: String?

    func run() throws {
        let host = Bench.host()
        var runs: [Bench.Result] = []
        let cal: (relocation: Double, purgatory: Double, counted: UInt64)
        do {
            cal = try Bench.calibrate()
        } catch {
            fail("calibration: \(error)")
        }
        for c in Bench.cases where filter.map({ c.name.contains($0) }) ?? true {
            if !json { FileHandle.standardError.write(Data("bench: \(c.name)…\n".utf8)) }
            do {
                runs.append(try Bench.runCase(c, perByte: (cal.relocation, cal.purgatory)))
            } catch {
                fail("\(c.name): \(error)")
            }
        }
        if json {
            let arr: [[String: Any]] = runs.map { r in
                var phases: [String: Any] = [:]
                for (k, v) in r.phases { phases[k + "_s"] = v }
                return [
                    "name": r.name, "arch": r.arch, "payload_bytes": r.payloadBytes, "ram_bytes": r.ramBytes,
                    "total_s": r.totalSeconds, "phases": phases,
                    "guest_instructions": r.guestInstructions.map { $0 as Any } ?? NSNull(),
                    "guest_instructions_estimated": r.instructionsEstimated,
                    "guest_mb_s": r.guestMBps, "peak_rss_bytes": r.peakRSS, "verdict": r.verdict,
                ]
            }
            print(
                Report.json([
                    "runs": arr, "host": ["memcpy_mb_s": host.memcpyMBps, "sha256_mb_s": host.sha256MBps],
                    "instructions_per_payload_byte": ["relocation": cal.relocation, "purgatory": cal.purgatory],
                ]))
            return
        }
        func f(_ v: Double) -> String { String(format: "%.3f", v) }
        print("host (64 MiB, best of 3): memcpy \(Int(host.memcpyMBps)) MB/s, sha256 \(Int(host.sha256MBps)) MB/s")
        print(
            String(
                format:
                    "guest instructions per payload byte (counted on a 1 MiB run, %llu instructions): relocation %.2f, purgatory %.2f; the instructions column is scaled from these",
                cal.counted, cal.relocation, cal.purgatory))
        print("")
        let phaseNames = runs.first?.phases.map(\.0) ?? []
        print(
            "run".padding(toLength: 44, withPad: " ", startingAt: 0) + "payload   RAM       "
                + phaseNames.map { String($0.prefix(8)).padding(toLength: 9, withPad: " ", startingAt: 0) }.joined()
                + "total    guest MB/s  vs memcpy  vs sha256  instructions   peak RSS  verdict")
        for r in runs {
            var line = r.name.padding(toLength: 44, withPad: " ", startingAt: 0)
            line += formatSize(r.payloadBytes).padding(toLength: 10, withPad: " ", startingAt: 0)
            line += formatSize(r.ramBytes).padding(toLength: 10, withPad: " ", startingAt: 0)
            for (_, v) in r.phases { line += f(v).padding(toLength: 9, withPad: " ", startingAt: 0) }
            line += f(r.totalSeconds).padding(toLength: 9, withPad: " ", startingAt: 0)
            line += String(format: "%-12.1f", r.guestMBps)
            line += String(format: "1/%-8.0f", host.memcpyMBps / max(r.guestMBps, 0.001))
            line += String(format: "1/%-8.0f", host.sha256MBps / max(r.guestMBps, 0.001))
            line += (r.guestInstructions.map { "\($0)" } ?? "-").padding(toLength: 15, withPad: " ", startingAt: 0)
            line += formatSize(r.peakRSS).padding(toLength: 10, withPad: " ", startingAt: 0)
            line += r.verdict
            print(line)
        }
    }
}
