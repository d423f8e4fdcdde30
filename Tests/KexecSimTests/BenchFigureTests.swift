import Foundation
import KexecSim
import Testing

/// `bench --compare-qemu`'s figure: the harness's JSON read back, and the ratio against the Debian
/// vmlinuz run. No timing is measured here; the numbers are given.
@Suite struct BenchFigureTests {
    /// A recorded harness run (Debian 6.1.192 under QEMU, pc 2 GiB, `kexec -e`): 19 s to the second
    /// kernel's /init.
    @Test func harnessJSONGivesQemuSeconds() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/kernel-truth/6.1/pc-2g-exec.json")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        #expect(Bench.qemuComparison(harnessJSON: obj) == .measured(seconds: 19))
        var noInit = obj
        noInit["exec"] = ["second_kernel_userspace": false]
        #expect(
            Bench.qemuComparison(harnessJSON: noInit)
                == .skipped("QEMU ran 19 s but its second kernel never reached /init"))
        #expect(Bench.qemuComparison(harnessJSON: [:]) == .skipped("the harness's JSON has no qemu.seconds"))
    }

    static func debianRun(total: Double, verdict: String = "landed") throws -> Bench.Result {
        let o: [String: Any] = [
            "name": "x86_64-debian-vmlinuz-1MiB-initrd-4GiB-machine", "arch": "x86_64", "payload_bytes": 67_764_224,
            "ram_bytes": 4 << 30, "total_s": total, "phases": [String: Any](), "phase_order": [String](),
            "guest_mb_s": 400.0, "peak_rss_bytes": 185_532_416, "verdict": verdict,
        ]
        return try #require(Bench.result(json: o))
    }

    @Test func ratioAgainstTheDebianRun() throws {
        let f = Bench.qemuFigure(.measured(seconds: 16), debian: try Self.debianRun(total: 0.25))
        #expect(f.now == "QEMU 16.0 s / kexec-sim 0.25 s = 64×")
        #expect(f.target == "≥ 50×" && f.met == true)
        let slow = Bench.qemuFigure(.measured(seconds: 16), debian: try Self.debianRun(total: 0.4))
        #expect(slow.now == "QEMU 16.0 s / kexec-sim 0.40 s = 40×" && slow.met == false)
        let hung = Bench.qemuFigure(.measured(seconds: 16), debian: try Self.debianRun(total: 0.1, verdict: "hang"))
        #expect(hung.met == false)
        #expect(Bench.qemuFigure(nil, debian: nil).now == "not run (bench --compare-qemu)")
        let skipped = Bench.qemuFigure(.skipped("qemu-system-x86_64 is not installed"), debian: nil)
        #expect(skipped.now == "skipped: qemu-system-x86_64 is not installed" && skipped.met == nil)
    }

    /// The figure sits in issue 16's table right after the Debian run.
    @Test func figureIsInTheTable() throws {
        let figs = Bench.figures(
            runs: [try Self.debianRun(total: 0.2)], copy: nil, matrix: nil, qemu: .measured(seconds: 20))
        #expect(
            figs.map(\.what).prefix(2) == [
                "Debian vmlinuz + 1 MiB initrd, 4 GiB", "same kexec under QEMU (Debian 6.1, pc 4 GiB)",
            ])
        #expect(figs[1].now == "QEMU 20.0 s / kexec-sim 0.20 s = 100×")
    }
}
