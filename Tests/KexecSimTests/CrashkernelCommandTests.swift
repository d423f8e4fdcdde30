import Foundation
import KexecModel
import KexecSim
import Testing

/// `kexec-sim crashkernel` through the binary, as a user runs it (CLITests' harness).
@Suite struct CrashkernelCommandTests {
    let cli = CLITests()
    let log = repoRoot + "/Fixtures/logs/synthetic-qemu-q35-4g-dmesg.txt"
    let machine = repoRoot + "/Fixtures/machines/x86_64-4g.yaml"

    /// The log's RAMDISK (0x7f5c5000-0x7ffcffff) caps the search below 4 GiB; 6.1 prints the line the
    /// log itself has (`Reserving 256MB of memory at 1776MB …`), 6.12 the generic one.
    @Test func textInEachVersionsWords() throws {
        let r61 = try cli.run(["crashkernel", log, "--param", "256M", "--kernel", "6.1"])
        #expect(r61.status == 0, "\(r61.err)")
        #expect(r61.out == "Reserving 256MB of memory at 1776MB for crashkernel (System RAM: 4095MB)\n")
        let r612 = try cli.run(["crashkernel", machine, "--param", "256M,high", "--kernel", "6.12"])
        #expect(
            r612.out == "crashkernel low memory reserved: 0xaf000000 - 0xbf000000 (256 MB)\n"
                + "crashkernel reserved: 0x0000000130000000 - 0x0000000140000000 (256 MB)\n")
        let r510 = try cli.run(["crashkernel", machine, "--param", "256M,high", "--kernel", "5.10"])
        #expect(
            r510.out == "kexec: Reserving the low 1M of memory for crashkernel\n"
                + "Reserving 256MB of low memory at 2800MB for crashkernel (low RAM limit: 4095MB)\n"
                + "Reserving 256MB of memory at 4864MB for crashkernel (System RAM: 4095MB)\n")
        let fail = try cli.run(["crashkernel", machine, "--param", "256M@0xbf000000", "--kernel", "6.1"])
        #expect(fail.status == 1)
        #expect(fail.out == "crashkernel reservation failed - memory is in use.\n")
    }

    @Test func json() throws {
        let r = try cli.run(["crashkernel", machine, "--param", "256M,high", "--kernel", "6.1", "--json"])
        #expect(r.status == 0, "\(r.err)")
        struct Out: Decodable {
            struct R: Decodable, Equatable {
                var start: String
                var end: String
            }
            var version: String
            var message: String
            var ranges: [R]
        }
        let o = try JSONDecoder().decode(Out.self, from: Data(r.out.utf8))
        #expect(o.version == "6.1")
        #expect(
            o.message == "Reserving 256MB of low memory at 2800MB for crashkernel (low RAM limit: 4095MB)\n"
                + "Reserving 256MB of memory at 4864MB for crashkernel (System RAM: 4095MB)")
        // The main range (crashk_res) first, inclusive ends.
        #expect(
            o.ranges == [
                .init(start: "0x130000000", end: "0x13fffffff"), .init(start: "0xaf000000", end: "0xbeffffff"),
            ])
    }

    /// A 36 MiB kernel and a 20 MiB initrd (56 MiB with purgatory, boot_params and the ELF headers)
    /// do not fit 48 MiB and land in 64 MiB: doubling tries 16, 32, 64, then 48.
    @Test func fitOnASmallScenario() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-fit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.yaml").path
        try """
        name: small kdump fit
        machine: \(machine)
        kexec:
          syscall: kexec_file_load
          type: crash
          kernel: { size: 36MiB, init_size: 36MiB }
          initrd: { size: 20MiB }
        policy: { identity_map: kdump-only }

        """.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try cli.run(["crashkernel", "--fit", path, "--kernel", "6.1"])
        #expect(r.status == 0, "\(r.err)")
        #expect(
            r.out == "crashkernel=64M (Linux 6.1: reserved 0xbb000000-0xbeffffff)\n"
                + "tried: 16M: rejected, 32M: rejected, 64M: landed, 48M: rejected\n")
        let sc = try FixtureDecoder.load(path: path)
        let answer = try CrashkernelFit.search(sc, version: KernelVersion(6, 12))
        #expect(answer.size == .mib(64))
        #expect(answer.attempts.map(\.size) == [.mib(16), .mib(32), .mib(64), .mib(48)])
    }

    /// An arm64 boot log recorded from Debian's 6.1.192 under QEMU (Fixtures/kernel-truth/arm64/6.1/
    /// virt-2g.json, its boot lines): the memblock block, the DMA zone and the crashkernel line it
    /// names give back the kernel's own line for 6.1 and what 5.10 and 6.12 would do in its place.
    @Test func arm64BootLogByVersion() throws {
        struct Case: Decodable { var lines: [String] }
        let json = repoRoot + "/Fixtures/kernel-truth/arm64/6.1/virt-2g.json"
        let c = try JSONDecoder().decode(Case.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-arm64-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("dmesg.txt").path
        try (c.lines.joined(separator: "\n") + "\n").write(toFile: log, atomically: true, encoding: .utf8)
        let said = c.lines.first { $0.contains("crashkernel reserved:") }.map {
            String($0.split(separator: "] ", maxSplits: 1)[1])
        }
        let r61 = try cli.run(["crashkernel", log, "--param", "256M", "--kernel", "6.1"])
        #expect(r61.status == 0, "\(r61.err)")
        #expect(r61.out == (said ?? "?") + "\n")
        #expect(r61.out == "crashkernel reserved: 0x00000000a9a00000 - 0x00000000b9a00000 (256 MB)\n")
        let high510 = try cli.run(["crashkernel", log, "--param", "256M,high", "--kernel", "5.10"])
        #expect(high510.status == 1)
        #expect(high510.out.hasPrefix("(Linux 5.10 prints nothing: "))
        let high612 = try cli.run(["crashkernel", log, "--param", "256M,high", "--kernel", "6.12"])
        #expect(high612.status == 0, "\(high612.err)")
        // All RAM (1-3 GiB) is below the DMA limit: ,high falls back to low memory, no low part.
        #expect(high612.out == "crashkernel reserved: 0x00000000a9a00000 - 0x00000000b9a00000 (256 MB)\n")
    }
}
