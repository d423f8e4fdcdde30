import ArgumentParser
import Foundation
import KexecModel
import KexecSim

/// `kexec-sim bench`: each case runs in a child process of this binary (`bench --child NAME`), so
/// its peak RSS is its own; the relocation copy is compared with the engine's bare `rep movsq` in
/// one more child; `--matrix` times `matrix Fixtures/scenarios --policies all`; `--compare-qemu`
/// times the same kexec under QEMU (BenchQemu.swift). Prints the runs
/// and issue 16's table of figures against their targets. Figures only: tests never check time.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Time a fixed set of runs per phase, against host memcpy and sha256.")
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Only the cases whose name contains this.") var filter: String?
    @Flag(help: "Also time `matrix Fixtures/scenarios --policies all` (run from the repository root).")
    var matrix = false
    @Flag(
        help:
            "Also run the same kexec under QEMU (scripts/kernel-truth, pc-4g-exec) and print the ratio; skipped with a message without QEMU."
    )
    var compareQemu = false
    @Option(help: .hidden) var child: String?
    @Flag(help: .hidden) var childCopy = false

    func run() throws {
        let root = FileManager.default.currentDirectoryPath
        var all = Bench.cases
        if let real = Bench.realKernelCase(root: root) { all.insert(real, at: 0) }
        if let name = child {
            guard let c = all.first(where: { $0.name == name }) else { fail("bench --child: no case \(name)") }
            do {
                print(Report.json(Bench.json(try Bench.runCase(c))))
            } catch {
                fail("\(c.name): \(error)")
            }
            return
        }
        if childCopy {
            print(Report.json(Self.copyFigures(all)))
            return
        }
        guard let exe = ChildProcess.selfExecutable() else { fail("cannot find this program's own executable") }
        let host = Bench.host()
        let cal: (relocation: Double, purgatory: Double, counted: UInt64)
        do {
            cal = try Bench.calibrate()
        } catch {
            fail("calibration: \(error)")
        }
        func note(_ s: String) { if !json { FileHandle.standardError.write(Data("bench: \(s)\n".utf8)) } }
        if Bench.realKernelCase(root: root) == nil {
            note("no .kernels/vmlinuz: the real-kernel run is skipped (scripts/fetch-debian-kernel fetches it)")
        }
        var runs: [Bench.Result] = []
        for c in all where filter.map({ c.name.contains($0) }) ?? true {
            note("\(c.name)…")
            let o = ChildProcess.run(executable: exe, arguments: ["bench", "--child", c.name], timeout: 1800)
            guard o.exitStatus == 0, let obj = Self.object(o.stdout), var r = Bench.result(json: obj) else {
                fail("\(c.name): the child failed: \(String(decoding: o.stderr.suffix(800), as: UTF8.self))")
            }
            if c.name.contains("x86_64"), r.guestInstructions == nil, !c.name.contains("debian") {
                r.guestInstructions = UInt64((cal.relocation + cal.purgatory) * Double(r.payloadBytes))
                r.instructionsEstimated = true
            }
            runs.append(r)
        }
        var copy: Bench.CopyFigures?
        if filter == nil || filter.map({ "x86_64-64MiB-payload-4GiB-machine".contains($0) }) == true {
            note("relocation copy against a bare rep movsq…")
            let o = ChildProcess.run(executable: exe, arguments: ["bench", "--child-copy"], timeout: 1800)
            if let obj = Self.object(o.stdout), let r = obj["relocation_mb_s"] as? Double,
                let b = obj["rep_movsq_mb_s"] as? Double
            {
                copy = Bench.CopyFigures(relocationMBps: r, repMovsqMBps: b)
            }
        }
        var matrixTime: (seconds: Double, runs: Int)?
        if matrix {
            note("matrix Fixtures/scenarios --policies all…")
            let t0 = Date()
            let o = ChildProcess.run(
                executable: exe, arguments: ["matrix", "Fixtures/scenarios", "--policies", "all"], timeout: 3600)
            let s = Date().timeIntervalSince(t0)
            let last = String(decoding: o.stdout, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            let n = last.split(separator: " ").compactMap { Int($0) }.reduce(0, +)
            matrixTime = (s, n)
        }
        let qemu = compareQemu ? BenchQemu.measure(root: root, note: note) : nil
        let figs = Bench.figures(runs: runs, copy: copy, matrix: matrixTime, qemu: qemu)
        if json {
            var out: [String: Any] = [
                "runs": runs.map(Bench.json), "host": ["memcpy_mb_s": host.memcpyMBps, "sha256_mb_s": host.sha256MBps],
                "instructions_per_payload_byte": ["relocation": cal.relocation, "purgatory": cal.purgatory],
                "figures": figs.map { ["run": $0.what, "before": $0.before, "now": $0.now, "target": $0.target] },
            ]
            if let c = copy {
                out["relocation_copy"] = ["relocation_mb_s": c.relocationMBps, "rep_movsq_mb_s": c.repMovsqMBps]
            }
            if let m = matrixTime { out["matrix"] = ["total_s": m.seconds, "runs": m.runs] }
            switch qemu {
            case .measured(let s)?: out["qemu"] = ["total_s": s]
            case .skipped(let why)?: out["qemu"] = ["skipped": why]
            case nil: break
            }
            print(Report.json(out))
            return
        }
        Self.printRuns(runs, host: host, cal: cal)
        print("")
        print(Bench.figuresTable(figs), terminator: "")
    }

    static func object(_ d: Data) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
    }

    /// The 64 MiB case's relocation MB/s and the bare `rep movsq` over the same size, in this one process.
    static func copyFigures(_ all: [Bench.Case]) -> [String: Any] {
        guard let c = all.first(where: { $0.name == "x86_64-64MiB-payload-4GiB-machine" }),
            let r = try? Bench.runCase(c)
        else { return [:] }
        let reloc = r.phases.first { $0.0 == "relocation" }?.1 ?? 0
        let mbps = reloc > 0 ? Double(r.payloadBytes) / reloc / 1e6 : 0
        guard let bare = Bench.bareCopyMBps(bytes: Int(r.payloadBytes)) else { return ["relocation_mb_s": mbps] }
        return ["relocation_mb_s": mbps, "rep_movsq_mb_s": bare]
    }

    static func printRuns(
        _ runs: [Bench.Result], host: Bench.Host, cal: (relocation: Double, purgatory: Double, counted: UInt64)
    ) {
        func f(_ v: Double) -> String { String(format: "%.3f", v) }
        print("host (64 MiB, best of 3): memcpy \(Int(host.memcpyMBps)) MB/s, sha256 \(Int(host.sha256MBps)) MB/s")
        print(
            String(
                format:
                    "guest instructions per payload byte (counted on a 1 MiB run, %llu instructions): relocation %.2f, purgatory %.2f; the instructions column is scaled from these",
                cal.counted, cal.relocation, cal.purgatory))
        print("each run in its own process: peak RSS is that run's")
        print("")
        let phaseNames = runs.first?.phases.map(\.0) ?? []
        print(
            "run".padding(toLength: 48, withPad: " ", startingAt: 0) + "payload   RAM       "
                + phaseNames.map { String($0.prefix(8)).padding(toLength: 9, withPad: " ", startingAt: 0) }.joined()
                + "total    guest MB/s  vs memcpy  vs sha256  instructions   peak RSS  verdict")
        for r in runs {
            var line = r.name.padding(toLength: 48, withPad: " ", startingAt: 0)
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
