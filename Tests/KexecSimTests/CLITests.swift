import Crypto
import Emulator
import Foundation
import GuestCode
import KexecModel
import KexecSim
import Kimage
import Testing

/// The command line as a user runs it: exit codes 0 (matches expect), 1 (differs), 2 (bad input).
@Suite struct CLITests {
    /// The kexec-sim binary built next to this test bundle.
    static var binary: String? {
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("kexec-sim").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        let fallback = repoRoot + "/.build/debug/kexec-sim"
        return FileManager.default.isExecutableFile(atPath: fallback) ? fallback : nil
    }

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let bin = try #require(Self.binary, "kexec-sim binary not found next to the tests")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    static let logs =
        (try? FileManager.default.contentsOfDirectory(atPath: repoRoot + "/Fixtures/logs"))?
        .filter { $0.hasSuffix(".txt") }.sorted() ?? []

    /// Issue 5's round trip: `import` writes a machine fixture from every shipped log, and `run`
    /// accepts a scenario built on it and lands (kexec_file_load of a small kernel and initrd).
    @Test(arguments: logs) func importedLogRunsAndLands(_ log: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let imported = try run(["import", repoRoot + "/Fixtures/logs/" + log])
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.out.hasPrefix("# Imported by kexec-sim import from "))
        try imported.out.write(to: dir.appendingPathComponent("machine.yaml"), atomically: true, encoding: .utf8)
        let arm64 = imported.out.contains("\narch: arm64\n")
        let scenario = """
            name: \(log) imported
            machine: machine.yaml
            kexec:
              kernel: { size: 2MiB }
              initrd: { size: 1MiB }
            policy: \(arm64 ? "{ relocation: mmu-on }" : "{ identity_map: ram-2m }")
            expect: { verdict: landed }

            """
        let path = dir.appendingPathComponent("scenario.yaml").path
        try scenario.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try run(["run", path, "--json"])
        #expect(r.status == 0, "\(r.out)\(r.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect(obj?["verdict"] as? String == "landed")
    }

    /// `import -o FILE` writes what stdout would get, through a temporary file that does not stay.
    @Test func importWritesItsOutputFileWhole() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-o-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = repoRoot + "/Fixtures/logs/hpe-uv-4tib-dmesg.txt"
        let out = dir.appendingPathComponent("uv.yaml").path
        let written = try run(["import", log, "-o", out])
        #expect(written.status == 0 && written.out.isEmpty, "\(written.err)")
        let printed = try run(["import", log])
        #expect(try String(contentsOfFile: out, encoding: .utf8) == printed.out)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["uv.yaml"])
        let nowhere = try run(["import", log, "-o", dir.path + "/missing/uv.yaml"])
        #expect(nowhere.status == 2)
        #expect(nowhere.err.contains("cannot write \(dir.path)/missing/uv.yaml"))
    }

    /// The DTB kexec-sim hands an arm64 kernel, read back by `import` (auto-detected by its magic)
    /// and by a fixture's `import: { format: dtb }`, lands on the same memory.
    @Test func deviceTreeBlobImportsAndRuns() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-dtb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let map = try MemoryMap([
            Region(range: AddressRange(first: PhysAddr(0x4000_0000), last: PhysAddr(0xbfff_ffff))!, type: .usable),
            Region(range: AddressRange(first: PhysAddr(0x8_8000_0000), last: PhysAddr(0x8_bfff_ffff))!, type: .usable),
        ])
        let blob = Dtb.build(memory: map, chosen: Dtb.Chosen(bootargs: "console=ttyAMA0"))
        let dtb = dir.appendingPathComponent("board.dtb")
        try Data(blob).write(to: dtb)
        let imported = try run(["import", dtb.path])
        #expect(imported.status == 0, "\(imported.err)")
        #expect(imported.out.contains("(format: dtb)"))
        #expect(imported.out.contains("  # dtb: /memory@40000000 reg[0] [0x0000000040000000-0x00000000bfffffff]\n"))
        #expect(imported.out.contains("  - { range: 0x0000000880000000-0x00000008bfffffff, type: usable }"))
        let scenario = """
            name: dtb machine
            machine:
              arch: arm64
              memory: { import: { file: board.dtb, format: dtb } }
            kexec:
              kernel: { size: 4MiB }
            expect: { verdict: landed }

            """
        let path = dir.appendingPathComponent("s.yaml").path
        try scenario.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try run(["run", path])
        #expect(r.status == 0, "\(r.out)\(r.err)")
    }

    @Test func matchingVerdictExitsZeroWithJSONKeys() throws {
        let r = try run(["run", repoRoot + "/Fixtures/scenarios/x86_64-overlapping-segments.yaml", "--json"])
        #expect(r.status == 0)
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        #expect(obj?["verdict"] as? String == "rejected")
        #expect(obj?["matches"] as? Bool == true)
        #expect((obj?["engine"] as? String)?.hasPrefix("Unicorn 2.1") == true)
        #expect((obj?["expected"] as? [String: Any])?["errno"] as? String == "EINVAL")
        // Evidence is an ordered list of {key, value} objects; every report key is there.
        let evidence = try #require(obj?["evidence"] as? [[String: String]])
        #expect(evidence.first { $0["key"] == "check" }?["value"] == "sanity_check_segment_list")
        #expect(evidence.allSatisfy { $0.keys.sorted() == ["key", "value"] })
        #expect(obj?["errno"] as? String == "EINVAL")
        #expect(obj?["address"] is NSNull)
        #expect(obj?["policy"] as? String == "ram-2m")
        for k in ["scenario", "file", "warnings", "stats", "summary"] { #expect(obj?[k] != nil, "missing \(k)") }
        // The same text decodes as the report the matrix parent reads.
        let report = try JSONDecoder().decode(RunReport.self, from: Data(r.out.utf8))
        #expect(report.verdict == "rejected")
        #expect(report.errno == "EINVAL")
        #expect(report.expected == RunReport.Expected(verdict: "rejected", errno: "EINVAL"))
        #expect(report.evidence.map(\.key) == ["errno", "check", "detail", "kernel"])
        #expect(report.matches == true)
        #expect(report.stats != nil)
    }

    /// `--version`: the tool, the engine it is linked with, and the digest of its guest code.
    @Test func versionNamesToolEngineAndGuestCode() throws {
        let r = try run(["--version"])
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines.first == "kexec-sim 0.4.0")
        #expect(lines.dropFirst().first == "engine: " + EngineVersion.current.description)
        #expect(EngineVersion.current.description == "Unicorn 2.1.4")
        var sha = SHA256()
        for blob in [
            X86_64GuestCode.relocateKernel, X86_64GuestCode.purgatory, X86_64GuestCode.probe,
            Arm64GuestCode.relocateKernel, Arm64GuestCode.purgatory, Arm64GuestCode.probe,
        ] {
            sha.update(data: blob.bytes)
        }
        let digest = sha.finalize().map { String(format: "%02x", $0) }.joined()
        #expect(lines.last == "guest code: sha256 " + digest)
        #expect(KexecSimVersion.text == r.out.trimmingCharacters(in: .newlines))
    }

    /// `--budget 0` is a usage error (exit 2, nothing run), with a message naming the option.
    @Test func budgetZeroIsAUsageError() throws {
        let r = try run(["run", repoRoot + "/Fixtures/scenarios/x86_64-overlapping-segments.yaml", "--budget", "0"])
        #expect(r.status == 2)
        #expect(r.out.isEmpty)
        #expect(r.err.contains("Error: --budget: must be at least 1 instruction"), "\(r.err)")
        // Other usage errors exit 2 as well.
        #expect(try run(["run"]).status == 2)
        #expect(try run(["run", "x.yaml", "--budget", "-1"]).status == 2)
    }

    /// A kernel or initrd that is not a regular file is bad input naming the field, not a read error.
    @Test(arguments: [("kernel", "kexec.kernel.file"), ("initrd", "kexec.initrd.file")])
    func deviceAsPayloadIsNotARegularFile(_ which: String, _ field: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-dev-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let kernel = which == "kernel" ? "{ file: /dev/zero }" : "{ size: 2MiB }"
        let scenario = """
            name: a device as \(which)
            machine: \(repoRoot)/Fixtures/machines/x86_64-4g.yaml
            kexec:
              kernel: \(kernel)
            \(which == "initrd" ? "  initrd: { file: /dev/zero }\n" : "")expect: { verdict: landed }

            """
        let path = dir.appendingPathComponent("s.yaml").path
        try scenario.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try run(["run", path])
        #expect(r.status == 2, "\(r.out)\(r.err)")
        #expect(r.err.contains(field), "\(r.err)")
        #expect(r.err.contains("\"/dev/zero\": not a regular file (a character device)"), "\(r.err)")
    }

    /// RealImages.readFile names the field and what the path is when it is not a regular file.
    @Test func readFileRefusesWhatIsNotARegularFile() throws {
        let sc = try FixtureDecoder.load(path: repoRoot + "/Fixtures/scenarios/x86_64-basic.yaml")
        let dir = FileManager.default.temporaryDirectory.path
        #expect(throws: PlanError.self) { try RealImages.readFile(dir, field: "kexec.initrd.file", scenario: sc) }
        do {
            _ = try RealImages.readFile(dir, field: "kexec.initrd.file", scenario: sc)
        } catch {
            guard case .input(let e) = error else {
                Issue.record("not an input error: \(error)")
                return
            }
            #expect(e.field == "kexec.initrd.file")
            #expect(e.message == "\"\(dir)\": not a regular file (a directory)")
        }
        do {
            _ = try RealImages.readFile("/nonexistent/bzImage", field: "kexec.kernel.file", scenario: sc)
        } catch {
            guard case .input(let e) = error else {
                Issue.record("not an input error: \(error)")
                return
            }
            #expect(e.message == "\"/nonexistent/bzImage\": no such file")
        }
    }

    @Test func differingVerdictExitsOne() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-cli-\(getpid()).yaml")
        // Overlapping kexec_load segments are rejected, but this fixture claims they land.
        try """
        name: claims the impossible
        machine:
          arch: x86_64
          memory:
            - { range: 0x0-0x9ffff, type: usable }
            - { range: 0x100000-0xbfffffff, type: usable }
        kexec:
          syscall: kexec_load
          segments:
            - { name: kernel, mem: 0x1000000, memsz: 8MiB }
            - { name: initrd, mem: 0x1600000, memsz: 4MiB }
        expect: { verdict: landed }

        """.write(to: tmp, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let d = try run(["run", tmp.path])
        #expect(d.status == 1)
        #expect(d.out.contains("verdict: rejected"))
        #expect(d.out.contains("expected: landed — DIFFERS"))
        // Under a policy the fixture says nothing about, the run is informational: exit 0.
        let r = try run([
            "run", repoRoot + "/Fixtures/scenarios/x86_64-destination-not-mapped.yaml", "--policy", "ram-1g",
        ])
        #expect(r.status == 0)
        #expect(!r.out.contains("expected:"))
    }

    @Test func badInputExitsTwoNamingFileLineField() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-bad-\(getpid()).yaml")
        try "name: x\nmachine:\n  arch: x86_64\n  memory:\n    - { range: 0x2000-0x1000, type: usable }\n"
            .write(to: tmp, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let r = try run(["run", tmp.path])
        #expect(r.status == 2)
        #expect(r.err.contains(tmp.path + ":5: machine.memory[0].range: inverted range"))
        #expect(r.out.isEmpty)
        let p = try run(["run", tmp.path, "--policy", "no-such-policy"])
        #expect(p.status == 2)
    }

    @Test func tablesJSONCarriesTheKeys() throws {
        let r = try run(["tables", repoRoot + "/Fixtures/machines/x86_64-4gib-box.yaml", "--no-segments", "--json"])
        #expect(r.status == 0)
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any]
        for k in ["policy", "pgd", "p4d", "pud", "pmd", "pte", "pages", "bytes", "transition"] {
            #expect(obj?[k] != nil, "missing \(k)")
        }
        // The default is the newest kernel's identity map (exact gbpages): pgd, pud and one pmd
        // page for the GiB that RAM fills only up to 0xbffdffff.
        #expect(obj?["pages"] as? Int == 3)
        #expect(obj?["policy"] as? String == "kernel")
    }
}
