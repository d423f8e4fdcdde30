import Foundation
import Testing

@testable import KexecModel

private func tempDir() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-import-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir + "/logs", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: dir + "/machines", withIntermediateDirectories: true)
    return dir
}

private func decode(_ yaml: String, file: String, base: String) -> Result<Scenario, InputError> {
    Result { () throws(InputError) -> Scenario in
        try FixtureDecoder.decode(yaml: yaml, file: file, baseDirectory: base)
    }
}

private func decodeError(_ yaml: String, file: String = "m.yaml", base: String = "") -> InputError? {
    if case .failure(let e) = decode(yaml, file: file, base: base) { return e }
    return nil
}

@Suite("Importer: fixtures")
struct ImporterFixtureTests {
    // MARK: memory: { import: … }

    @Test func decoderImportsTheLog() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try logText("synthetic-qemu-q35-4g-dmesg.txt")
        try log.write(toFile: dir + "/logs/q35.txt", atomically: true, encoding: .utf8)
        let yaml = """
            name: imported q35
            arch: x86_64
            memory: { import: { format: e820, file: ../logs/q35.txt } }

            """
        let s = try decode(yaml, file: dir + "/machines/m.yaml", base: dir + "/machines").get()
        let expected = try importLog(log)
        #expect(s.machine.memory == expected.memory)
        #expect(s.machine.memory.regions[0].source?.file == dir + "/machines/../logs/q35.txt")
        #expect(s.machine.memory.regions[0].source?.line == 37)
        // The log's crashkernel line fills the ranges (the fixture gives neither crashkernel nor ranges).
        #expect(s.machine.crashkernelRanges == [rng(0x6f00_0000, 0x7eff_ffff)])

        // auto works too.
        let auto = try decode(
            yaml.replacingOccurrences(of: "format: e820", with: "format: auto"), file: dir + "/machines/m.yaml",
            base: dir + "/machines"
        ).get()
        #expect(auto.machine.memory == expected.memory)

        // crashkernel= in the fixture wins over the log; crashkernel_ranges win over both.
        let withCk = try decode(yaml + "crashkernel: 512M\n", file: dir + "/machines/m.yaml", base: dir + "/machines")
            .get()
        #expect(withCk.machine.crashkernelRanges == [rng(0x5f00_0000, 0x7eff_ffff)])
        let withRanges = try decode(
            yaml + "crashkernel: 512M\ncrashkernel_ranges: [0x10000000-0x1fffffff]\n", file: dir + "/machines/m.yaml",
            base: dir + "/machines"
        ).get()
        #expect(withRanges.machine.crashkernelRanges == [rng(0x1000_0000, 0x1fff_ffff)])
    }

    @Test func arm64ImportUsesTheLogsDmaZone() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        Zone ranges:
          DMA      [mem 0x0000000040000000-0x000000007fffffff]
          DMA32    empty
          Normal   [mem 0x0000000080000000-0x000000013fffffff]
        Early memory node ranges
          node   0: [mem 0x0000000040000000-0x000000013fffffff]
        """.write(toFile: dir + "/logs/arm.txt", atomically: true, encoding: .utf8)
        let yaml = """
            arch: arm64
            memory: { import: { format: memblock, file: logs/arm.txt } }
            crashkernel: 256M

            """
        let s = try decode(yaml, file: dir + "/m.yaml", base: dir).get()
        #expect(s.machine.crashkernelRanges == [rng(0x7000_0000, 0x7fff_ffff)])
    }

    @Test func importErrors() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A missing log: blamed on the fixture's file: line.
        let missing = try #require(
            decodeError(
                "arch: x86_64\nmemory:\n  import:\n    format: e820\n    file: logs/none.txt\n", file: dir + "/m.yaml",
                base: dir))
        #expect(missing.file == dir + "/m.yaml")
        #expect(missing.line == 5)
        #expect(missing.field == "memory.import.file")
        #expect(missing.message == "cannot read boot log \"\(dir)/logs/none.txt\": no such file")

        // A malformed log line: blamed on the log, with its line.
        try "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\nBIOS-e820: [mem 0x100000-0xzz] usable\n"
            .write(toFile: dir + "/logs/bad.txt", atomically: true, encoding: .utf8)
        let bad = try #require(
            decodeError(
                "arch: x86_64\nmemory: { import: { format: e820, file: logs/bad.txt } }\n", file: dir + "/m.yaml",
                base: dir))
        #expect(bad.file == dir + "/logs/bad.txt")
        #expect(bad.line == 2)
        #expect(bad.field == "e820 log")
        #expect(
            bad.message
                == "expected the end address of the [mem …] range: \"BIOS-e820: [mem 0x100000-0xzz] usable\" (imported by \(dir)/m.yaml line 2)"
        )

        // The wrong importer finds nothing.
        let wrong = try #require(
            decodeError(
                "arch: x86_64\nmemory: { import: { format: iomem, file: logs/bad.txt } }\n", file: dir + "/m.yaml",
                base: dir))
        #expect(wrong.file == dir + "/logs/bad.txt")
        #expect(wrong.line == nil)
        #expect(wrong.message.hasPrefix("no memory ranges found"))

        let unknown = try #require(decodeError("arch: x86_64\nmemory: { import: { format: acpi, file: x } }\n"))
        #expect(unknown.field == "memory.import.format")
        #expect(unknown.message == "unknown value \"acpi\" (expected one of: auto, e820, iomem, efi, memblock, dtb)")
    }

    // MARK: crashkernel: in fixtures

    @Test func crashkernelIsReserved() throws {
        let path = importerPackageRoot + "/Fixtures/machines/x86_64-4g.yaml"
        let m = try Result { () throws(InputError) in try FixtureDecoder.loadMachine(path: path) }.get()
        #expect(m.crashkernel == "256M")
        // Top of 0x100000-0xbffdefff minus 256 MiB, 16 MiB aligned.
        #expect(m.crashkernelRanges == [rng(0xaf00_0000, 0xbeff_ffff)])

        let yaml = """
            name: t
            machine:
              arch: x86_64
              memory:
                - { range: 0x0-0x9ffff, type: usable }
                - { range: 0x100000-0xbffdffff, type: usable }
                - { range: 0x100000000-0x13fffffff, type: usable }
              crashkernel: 1G,high

            """
        let s = try decode(yaml, file: "s.yaml", base: "").get()
        #expect(s.machine.crashkernelRanges == [rng(0xaf00_0000, 0xbeff_ffff), rng(0x1_0000_0000, 0x1_3fff_ffff)])
        #expect(
            try decode(yaml.replacingOccurrences(of: "1G,high", with: "512M-2G:64M"), file: "s.yaml", base: "").get()
                .machine.crashkernelRanges == [])
    }

    @Test func crashkernelErrors() throws {
        let yaml = """
            name: t
            machine:
              arch: x86_64
              memory:
                - { range: 0x0-0x9ffff, type: usable }
                - { range: 0x100000-0xbffdffff, type: usable }
                - { range: 0x100000000-0x13fffffff, type: usable }
              crashkernel: 8G

            """
        let e = try #require(decodeError(yaml, file: "s.yaml"))
        #expect(e.file == "s.yaml")
        #expect(e.line == 8)
        #expect(e.field == "machine.crashkernel")
        #expect(e.message.hasPrefix("crashkernel=8G is larger than the RAM that can hold it"))

        let bad = try #require(decodeError(yaml.replacingOccurrences(of: "8G", with: "256MB"), file: "s.yaml"))
        #expect(bad.line == 8)
        #expect(bad.message.hasPrefix("crashkernel=256MB: unexpected \"B\""))

        let room = try #require(decodeError(yaml.replacingOccurrences(of: "8G", with: "3G"), file: "s.yaml"))
        #expect(room.message.contains("no 16MiB-aligned free range of 3GiB"))
    }

    // MARK: Round trip: log → fixture YAML → decoder

    @Test(
        arguments: [
            "synthetic-qemu-q35-4g-dmesg.txt", "synthetic-server-16g-iomem.txt", "synthetic-ovmf-q35-efi-memmap.txt",
            "synthetic-arm64-virt-memblock.txt",
        ] + RealLogTests.real)
    func roundTrip(_ name: String) throws {
        let imported = try importLog(try logText(name))
        let arch = imported.suggestedArch ?? .x86_64
        let yaml = MachineFixtureWriter.yaml(imported, name: name, arch: arch, logFile: "Fixtures/logs/" + name)
        let s = try decode(yaml, file: "imported.yaml", base: "").get()
        #expect(s.kexec == nil)
        #expect(s.name == name)
        #expect(s.machine.arch == arch)
        #expect(s.machine.memory == imported.memory)
        #expect(s.machine.crashkernelRanges == imported.crashkernelRanges)
        // Every region's comment quotes its source line.
        for (i, src) in imported.sources.enumerated() {
            for l in src.lines {
                #expect(yaml.contains("  # line \(l.number): \(l.message)\n"), "region \(i)")
            }
        }
    }

    @Test func writerOutput() throws {
        let m = try importLog(
            """
            [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
            [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable
            [    0.000000] crashkernel reserved: 0x0000000070000000 - 0x0000000078000000 (128 MB)
            """)
        let yaml = MachineFixtureWriter.yaml(m, name: "a \"quoted\" name", arch: .x86_64, logFile: "d.txt")
        #expect(
            yaml == """
                # Imported by kexec-sim import from d.txt (format: e820).
                name: "a \\"quoted\\" name"
                arch: x86_64
                memory:
                  # line 1: BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
                  - { range: 0x0000000000000000-0x000000000009fbff, type: usable }
                  # line 2: BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable
                  - { range: 0x0000000000100000-0x000000007fffffff, type: usable }
                crashkernel_ranges:
                  # line 3: crashkernel reserved: 0x0000000070000000 - 0x0000000078000000 (128 MB)
                  - 0x0000000070000000-0x0000000077ffffff

                """)
        #expect(MachineFixtureWriter.comment("a\u{1}b\nc") == "a?b c")
    }

    @Test func loadNamesTheLogFile() {
        do throws(InputError) {
            _ = try BootLog.load(path: importerPackageRoot + "/Fixtures/logs/none.txt")
            Issue.record("no error")
        } catch {
            #expect(error.message == "no such file")
        }
    }
}
