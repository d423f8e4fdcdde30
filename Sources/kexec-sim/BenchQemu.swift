import Foundation
import KexecSim

/// `bench --compare-qemu`: the same kexec under QEMU in the same session, through the real-kernel
/// truth harness — `scripts/kernel-truth --shapes-file scripts/kernel-truth.d/bench.tsv --shape
/// pc-4g-exec`: QEMU (TCG) boots Debian's 6.1 kernel on a pc 4 GiB machine, `kexec -s -l` loads the
/// same kernel with an initrd, `kexec -e` runs it, and the second kernel reaches its /init. The
/// harness writes its JSON into a temporary folder (never Fixtures/); its `qemu.seconds` is the wall
/// time from QEMU start to power-off. The ratio against bench's Debian vmlinuz case is the figure
/// issue 16 asks for (absolute times on a shared machine mean little).
enum BenchQemu {
    /// The QEMU route's wall time, or why it was not measured.
    static func measure(root: String, note: (String) -> Void) -> Bench.QemuComparison {
        let script = root + "/scripts/kernel-truth"
        let shapes = root + "/scripts/kernel-truth.d/bench.tsv"
        guard FileManager.default.isExecutableFile(atPath: script), FileManager.default.fileExists(atPath: shapes)
        else { return .skipped("no scripts/kernel-truth here (run bench from the repository root)") }
        guard onPath("qemu-system-x86_64") else {
            return .skipped("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-bench-qemu-\(getpid())")
        defer { try? FileManager.default.removeItem(at: out) }
        note("the same kexec under QEMU (scripts/kernel-truth, pc-4g-exec; a few minutes)…")
        let o = ChildProcess.run(
            executable: "/bin/bash",
            arguments: [
                script, "--version", "6.1", "--shapes-file", shapes, "--shape", "pc-4g-exec", "--force", "--out",
                out.path,
            ], timeout: 3600)
        let json = out.appendingPathComponent("6.1/pc-4g-exec.json")
        guard o.exitStatus == 0, let data = try? Data(contentsOf: json),
            let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else {
            let tail = String(decoding: o.stderr.suffix(400), as: UTF8.self)
            return .skipped("the QEMU run failed: \(tail)")
        }
        return Bench.qemuComparison(harnessJSON: obj)
    }

    static func onPath(_ tool: String) -> Bool {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
    }
}
