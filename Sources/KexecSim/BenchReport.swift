import Foundation
import KexecModel

/// `kexec-sim bench`'s results as JSON (one run per child process) and its table of figures
/// against the targets of issue 16 ("Speed: a kexec replay 50× faster than a QEMU boot").
extension Bench {
    /// The real-kernel run: Debian's vmlinuz (scripts/fetch-debian-kernel puts it in
    /// `.kernels/vmlinuz`) and a 1 MiB initrd, kexec_file_load on a pc-like 4 GiB map; nil when
    /// the file is absent.
    public static func realKernelCase(root: String) -> Case? {
        let path = root + "/.kernels/vmlinuz"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let y =
            "name: Debian vmlinuz\n" + machineYAML(name: "pc 4 GiB", ram: 4 << 30)
            + "kexec:\n  kernel: { file: \"\(path)\" }\n  initrd: { size: 1MiB }\n"
            + "policy: { identity_map: ram-2m }\nexpect: { verdict: landed }\n"
        return Case(name: "x86_64-debian-vmlinuz-1MiB-initrd-4GiB-machine", yaml: y, count: false)
    }

    /// The JSON object of one run (`runs[]` of `bench --json`).
    public static func json(_ r: Result) -> [String: Any] {
        var phases: [String: Any] = [:]
        for (k, v) in r.phases { phases[k + "_s"] = v }
        return [
            "name": r.name, "arch": r.arch, "payload_bytes": r.payloadBytes, "ram_bytes": r.ramBytes,
            "total_s": r.totalSeconds, "phases": phases, "phase_order": r.phases.map(\.0),
            "guest_instructions": r.guestInstructions.map { $0 as Any } ?? NSNull(),
            "guest_instructions_estimated": r.instructionsEstimated,
            "guest_mb_s": r.guestMBps, "peak_rss_bytes": r.peakRSS, "verdict": r.verdict,
        ]
    }

    /// A run back from its JSON object (what a `bench --child` process printed).
    public static func result(json o: [String: Any]) -> Result? {
        guard let name = o["name"] as? String, let arch = o["arch"] as? String,
            let payload = (o["payload_bytes"] as? NSNumber)?.uint64Value,
            let ram = (o["ram_bytes"] as? NSNumber)?.uint64Value, let total = o["total_s"] as? Double,
            let phases = o["phases"] as? [String: Any], let order = o["phase_order"] as? [String],
            let mbps = o["guest_mb_s"] as? Double, let rss = (o["peak_rss_bytes"] as? NSNumber)?.uint64Value,
            let verdict = o["verdict"] as? String
        else { return nil }
        return Result(
            name: name, arch: arch, payloadBytes: payload, ramBytes: ram,
            phases: order.map { ($0, phases[$0 + "_s"] as? Double ?? 0) }, totalSeconds: total,
            guestInstructions: (o["guest_instructions"] as? NSNumber)?.uint64Value,
            instructionsEstimated: o["guest_instructions_estimated"] as? Bool ?? false, guestMBps: mbps,
            peakRSS: rss, verdict: verdict)
    }

    /// One line of the figures table: what was measured against the target.
    public struct Figure: Sendable {
        public var what: String
        /// Measured before this work (issue 16's "now" column, release build, 2 cores).
        public var before: String
        public var now: String
        public var target: String
        /// nil: not measured in this run.
        public var met: Bool?
    }

    /// The relocation copy against the engine's bare `rep movsq`, measured in one process.
    public struct CopyFigures: Sendable {
        public var relocationMBps: Double
        public var repMovsqMBps: Double
        public init(relocationMBps: Double, repMovsqMBps: Double) {
            self.relocationMBps = relocationMBps
            self.repMovsqMBps = repMovsqMBps
        }
    }

    /// `bench --compare-qemu`: the same kexec under QEMU (boot, `kexec -s -l`, `kexec -e`, the
    /// second kernel's /init), timed in this session, or why it was not.
    public enum QemuComparison: Sendable, Equatable {
        case measured(seconds: Double)
        case skipped(String)
    }

    /// The harness's JSON: `qemu.seconds` and whether the second kernel reached user space.
    public static func qemuComparison(harnessJSON obj: [String: Any]) -> QemuComparison {
        guard let q = obj["qemu"] as? [String: Any], let s = (q["seconds"] as? NSNumber)?.doubleValue else {
            return .skipped("the harness's JSON has no qemu.seconds")
        }
        let exec = obj["exec"] as? [String: Any]
        guard exec?["second_kernel_userspace"] as? Bool == true else {
            return .skipped(String(format: "QEMU ran %.0f s but its second kernel never reached /init", s))
        }
        return .measured(seconds: s)
    }

    /// The QEMU route against the Debian vmlinuz run: "QEMU 19.0 s / kexec-sim 0.23 s = 83×",
    /// target ≥ 50×.
    public static func qemuFigure(_ q: QemuComparison?, debian: Result?) -> Figure {
        let what = "same kexec under QEMU (Debian 6.1, pc 4 GiB)"
        switch (q, debian) {
        case (nil, _):
            return Figure(what: what, before: "6.7×", now: "not run (bench --compare-qemu)", target: "≥ 50×", met: nil)
        case (.skipped(let why)?, _):
            return Figure(what: what, before: "6.7×", now: "skipped: " + why, target: "≥ 50×", met: nil)
        case (.measured(let s)?, nil):
            return Figure(
                what: what, before: "6.7×", now: String(format: "QEMU %.1f s; no Debian vmlinuz run", s),
                target: "≥ 50×", met: nil)
        case (.measured(let s)?, let r?):
            let ratio = s / max(r.totalSeconds, 1e-6)
            return Figure(
                what: what, before: "6.7×",
                now: String(format: "QEMU %.1f s / kexec-sim %.2f s = %.0f×", s, r.totalSeconds, ratio),
                target: "≥ 50×", met: ratio >= 50 && r.verdict == "landed")
        }
    }

    /// Issue 16's table: each target with what this bench measured.
    public static func figures(
        runs: [Result], copy: CopyFigures?, matrix: (seconds: Double, runs: Int)?, qemu: QemuComparison? = nil
    ) -> [Figure] {
        func run(_ name: String) -> Result? { runs.first { $0.name == name } }
        func secs(_ s: Double) -> String { String(format: "%.2f s", s) }
        func mib(_ b: UInt64) -> String { "\(b >> 20) MiB" }
        func timed(_ what: String, _ name: String, before: String, limit: Double, rss: UInt64? = nil) -> Figure {
            guard let r = run(name) else { return Figure(what: what, before: before, now: "-", target: "", met: nil) }
            var target = "≤ " + secs(limit)
            var met = r.totalSeconds <= limit && r.verdict == "landed"
            var now = secs(r.totalSeconds) + ", " + mib(r.peakRSS)
            if let rss {
                target += ", ≤ " + mib(rss)
                met = met && r.peakRSS <= rss
            }
            if r.verdict != "landed" { now += " (" + r.verdict + ")" }
            return Figure(what: what, before: before, now: now, target: target, met: met)
        }
        var out: [Figure] = []
        if let r = run("x86_64-debian-vmlinuz-1MiB-initrd-4GiB-machine") {
            out.append(timed("Debian vmlinuz + 1 MiB initrd, 4 GiB", r.name, before: "2.89 s, 177 MiB", limit: 0.39))
        } else {
            out.append(
                Figure(
                    what: "Debian vmlinuz + 1 MiB initrd, 4 GiB", before: "2.89 s, 177 MiB",
                    now: "skipped: no .kernels/vmlinuz (scripts/fetch-debian-kernel)", target: "≤ 0.39 s", met: nil))
        }
        out.append(qemuFigure(qemu, debian: run("x86_64-debian-vmlinuz-1MiB-initrd-4GiB-machine")))
        out.append(
            timed(
                "x86_64 10 MiB payload, 1 GiB", "x86_64-10MiB-payload-1GiB-machine", before: "0.52–0.96 s", limit: 0.2))
        out.append(
            timed("x86_64 64 MiB payload, 4 GiB", "x86_64-64MiB-payload-4GiB-machine", before: "4.8 s", limit: 0.8))
        let p512 = run("x86_64-512MiB-payload-4GiB-machine")?.payloadBytes ?? (512 << 20)
        out.append(
            timed(
                "x86_64 512 MiB payload, 4 GiB", "x86_64-512MiB-payload-4GiB-machine", before: "33.6 s, 1.6 GiB",
                limit: 6, rss: 2 * p512 + (100 << 20)))
        out.append(
            timed(
                "24 TiB kdump, ram-2m", "x86_64-kdump-24TiB-machine-ram-2m", before: "0.9 s, 354 MiB", limit: 0.5,
                rss: 256 << 20))
        if let m = matrix {
            out.append(
                Figure(
                    what: "matrix Fixtures/scenarios --policies all", before: "167 s (148 runs)",
                    now: String(format: "%.1f s (%d runs)", m.seconds, m.runs), target: "≤ 60 s", met: m.seconds <= 60))
        } else {
            out.append(
                Figure(
                    what: "matrix Fixtures/scenarios --policies all", before: "167 s (148 runs)",
                    now: "not run (bench --matrix)", target: "≤ 60 s", met: nil))
        }
        if let c = copy {
            let pct = c.relocationMBps / max(c.repMovsqMBps, 0.001) * 100
            out.append(
                Figure(
                    what: "relocation copy vs bare rep movsq", before: "-",
                    now: String(format: "%.0f vs %.0f MB/s (%.0f %%)", c.relocationMBps, c.repMovsqMBps, pct),
                    target: "≥ 80 %", met: pct >= 80))
        }
        return out
    }

    /// The figures as an aligned text table.
    public static func figuresTable(_ figs: [Figure]) -> String {
        let header = Figure(what: "run", before: "before", now: "now", target: "target", met: nil)
        let rows = [header] + figs
        let w0 = rows.map(\.what.count).max() ?? 0
        let w1 = rows.map(\.before.count).max() ?? 0
        let w2 = rows.map(\.now.count).max() ?? 0
        let w3 = rows.map(\.target.count).max() ?? 0
        var out = ""
        for (i, f) in rows.enumerated() {
            let met = i == 0 ? "met" : f.met.map { $0 ? "yes" : "no" } ?? "-"
            out +=
                [
                    f.what.padding(toLength: w0, withPad: " ", startingAt: 0),
                    f.before.padding(toLength: w1, withPad: " ", startingAt: 0),
                    f.now.padding(toLength: w2, withPad: " ", startingAt: 0),
                    f.target.padding(toLength: w3, withPad: " ", startingAt: 0), met,
                ].joined(separator: "  ") + "\n"
        }
        return out
    }
}
