import Foundation
import Testing

@testable import KexecModel

private let multiboot = "synthetic-arm64-multiboot-memblock.txt"
private let multibootPath = importerPackageRoot + "/Fixtures/logs/" + multiboot

private func load(_ path: String, _ format: ImportFormat = .auto, boot: Int = 1) -> Result<ImportedMachine, InputError>
{
    Result { () throws(InputError) in try BootLog.load(path: path, format: format, boot: boot) }
}

private func importBoot(_ text: String, boot: Int = 1) throws -> ImportedMachine {
    try Result { () throws(ImportError) in try BootLog.parse(text, file: "log.txt", boot: boot) }.get()
}

@Suite("Importer: logs holding several boots")
struct ImporterMultiBootTests {
    @Test func theShippedLogSplitsIntoTwoBoots() throws {
        let boots = LogBoots.split(LogText.lines(try logText(multiboot)))
        #expect(boots.map(\.firstLine) == [1, 33])
        #expect(boots.map(\.lastLine) == [32, 51])
        #expect(boots.map(\.kernelVersion) == ["6.6.30", "6.6.30"])
        #expect(boots.map(\.isKdump) == [false, true])
        #expect(boots.map(\.label) == ["Linux 6.6.30", "kdump kernel, Linux 6.6.30"])
    }

    @Test func firstBootByDefault() throws {
        let m = try load(multibootPath, .memblock).get()
        #expect(m.format == .memblock)
        #expect(m.memory.regions == [reg(0x4000_0000, 0x1_3fff_ffff, .usable)])
        #expect(m.sourceLines.map(\.number) == [19])
        #expect(m.memory.regions[0].source == SourceLocation(file: multibootPath, line: 19, field: "memblock"))
        #expect(m.crashkernelRanges == [rng(0xdfe0_0000, 0xefdf_ffff)])
        #expect(m.crashkernelLines.map(\.number) == [12])
        #expect(m.dmaZoneLimit == PhysAddr(1 << 32))
        // `cma: Reserved 32 MiB at 0x00000000fc000000`: never kexec_file_load space.
        #expect(m.memblockReserved == [rng(0xfc00_0000, 0xfdff_ffff)])
        #expect(
            m.notes == [
                "the log holds 2 boots; boot 1 (lines 1–32, Linux 6.6.30) is imported",
                "lines 33–51 belong to boot 2 (kdump kernel, Linux 6.6.30); not imported; use --boot 2",
                "line 20: Initmem setup node 0 [mem 0x0000000040000000-0x000000013fffffff]",
                "line 21: memblock reserved [0x00000000fc000000-0x00000000fdffffff]",
                "zone DMA: [0x0000000040000000-0x00000000ffffffff]",
                "zone DMA32: empty",
                "zone Normal: [0x0000000100000000-0x000000013fffffff]",
            ])
        // auto finds the same, and the fixture writer carries the notes as comments.
        #expect(try load(multibootPath).get() == m)
        let yaml = MachineFixtureWriter.yaml(m, name: "multi", arch: .arm64, logFile: multiboot)
        #expect(
            yaml.contains(
                "# note: lines 33–51 belong to boot 2 (kdump kernel, Linux 6.6.30); not imported; use --boot 2\n"))
    }

    @Test func secondBootIsTheKdumpKernel() throws {
        let m = try load(multibootPath, .memblock, boot: 2).get()
        #expect(m.memory.regions == [reg(0xdfe0_0000, 0xefdf_ffff, .usable)])
        #expect(m.sourceLines.map(\.number) == [46])
        #expect(m.crashkernelRanges == [])
        #expect(m.dmaZoneLimit == PhysAddr(0xefe0_0000))
        #expect(
            Array(m.notes.prefix(3)) == [
                "the log holds 2 boots; boot 2 (lines 33–51, kdump kernel, Linux 6.6.30) is imported",
                "lines 1–32 belong to boot 1 (Linux 6.6.30); not imported; use --boot 1",
                "line 47: Initmem setup node 0 [mem 0x00000000dfe00000-0x00000000efdfffff]",
            ])
    }

    @Test func aBootPastTheLastIsAnError() throws {
        for boot in [3, 7] {
            guard case .failure(let e) = load(multibootPath, .memblock, boot: boot) else {
                Issue.record("boot \(boot) imported")
                continue
            }
            #expect(e.file == multibootPath)
            #expect(e.line == nil)
            #expect(e.field == "boot")
            #expect(e.message == "the log holds 2 boots, so there is no boot \(boot)")
            #expect(e.description == "\(multibootPath): boot: the log holds 2 boots, so there is no boot \(boot)")
        }
        guard case .failure(let zero) = load(multibootPath, boot: 0) else {
            Issue.record("boot 0 imported")
            return
        }
        #expect(zero.message == "boots are numbered from 1 (asked for 0)")
        // A log of one boot has only boot 1.
        let single = importerPackageRoot + "/Fixtures/logs/rpi4-4gb-memblock.txt"
        guard case .failure(let one) = load(single, boot: 2) else {
            Issue.record("boot 2 of a single-boot log imported")
            return
        }
        #expect(one.description == "\(single): boot: the log holds 1 boot, so there is no boot 2")
    }

    @Test func singleBootLogsImportAsBefore() throws {
        for name in [
            "rpi4-4gb-memblock.txt", "synthetic-qemu-q35-4g-dmesg.txt", "thinkpad-t14-gen1-linux-7.1-dmesg.txt",
        ] {
            let text = try logText(name)
            #expect(LogBoots.split(LogText.lines(text)).count == 1, "\(name)")
            let m = try importBoot(text)
            #expect(!m.notes.contains { $0.hasPrefix("the log holds") || $0.contains("belong to boot") }, "\(name)")
        }
    }

    @Test func e820BootsSplitAtTheSecondTableAfterTheTimestampsReset() throws {
        let log = """
            [    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)
            [    0.000000] BIOS-provided physical RAM map:
            [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
            [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable
            [    0.000000] Reserving 256MB of memory at 2800MB for crashkernel (System RAM: 3071MB)
            [   93.100000] sysrq: Trigger a crash
            [    0.000000] Command line: BOOT_IMAGE=/vmlinuz reset_devices elfcorehdr=0xbf000000 nr_cpus=1
            [    0.000000] BIOS-provided physical RAM map:
            [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
            [    0.000000] BIOS-e820: [mem 0x00000000af000000-0x00000000beffffff] usable

            """
        let boots = LogBoots.split(LogText.lines(log))
        #expect(boots.map(\.firstLine) == [1, 7])
        #expect(boots.map(\.label) == ["Linux 6.1.0-18-amd64", "kdump kernel"])
        let first = try importBoot(log)
        #expect(first.memory.regions == [reg(0, 0x9_fbff, .usable), reg(0x10_0000, 0xbfff_ffff, .usable)])
        #expect(first.crashkernelRanges == [rng(0xaf00_0000, 0xbeff_ffff)])
        #expect(
            Array(first.notes.prefix(2)) == [
                "the log holds 2 boots; boot 1 (lines 1–6, Linux 6.1.0-18-amd64) is imported",
                "lines 7–10 belong to boot 2 (kdump kernel); not imported; use --boot 2",
            ])
        let second = try importBoot(log, boot: 2)
        #expect(second.memory.regions == [reg(0, 0x9_fbff, .usable), reg(0xaf00_0000, 0xbeff_ffff, .usable)])
        #expect(second.sourceLines.map(\.number) == [9, 10])
    }

    @Test func manyBootsGetOneNoteForTheRest() throws {
        let oneBoot = "Early memory node ranges\n  node   0: [mem 0x0000000040000000-0x000000007fffffff]\n"
        let log = String(repeating: oneBoot, count: 20)
        let first = try importBoot(log)
        #expect(first.memory.regions == [reg(0x4000_0000, 0x7fff_ffff, .usable)])
        #expect(first.notes.count == 2 + BootLog.maxBootNotes)
        #expect(first.notes[0] == "the log holds 20 boots; boot 1 (lines 1–2) is imported")
        #expect(first.notes[1] == "lines 3–4 belong to boot 2; not imported; use --boot 2")
        #expect(first.notes[17] == "3 more boots from line 35 on (boots 18 to 20); not imported")
        let middle = try importBoot(log, boot: 19)
        #expect(middle.sourceLines.map(\.number) == [38])
        #expect(middle.notes[17] == "3 more boots from line 33 on (boots 17 to 20 but 19); not imported")
    }

    @Test func boundaries() throws {
        func starts(_ log: String) -> [Int] { LogBoots.split(LogText.lines(log)).map(\.firstLine) }
        // Without timestamps going back, arm64's "Booting Linux" line goes with the version after it.
        #expect(
            starts(
                "Booting Linux on physical CPU 0x0\nLinux version 6.1\nZone ranges:\n"
                    + "Booting Linux on physical CPU 0x1\nLinux version 6.1\nZone ranges:\n") == [1, 4])
        // journalctl's separator starts a boot once the current one has shown a once-per-boot line.
        #expect(
            starts("-- Boot 1111 --\nkernel: Linux version 6.1\nx\n-- Boot 2222 --\nkernel: Linux version 6.1\n")
                == [1, 4])
        // Never before the previous boot's last once-per-boot line, even when time goes back before it.
        #expect(
            starts("[    5.0] a\n[    1.0] Linux version 6.1\n[    1.0] Zone ranges:\n[    1.0] Zone ranges:\n") == [
                1, 4,
            ])
        // Lines between the reset and the repeated line go with the new boot.
        #expect(
            starts(
                "[    0.000000] Zone ranges:\n[   9.500000] panic\n[    0.000000] early\n[    0.000000] Zone ranges:\n")
                == [1, 3])
        #expect(LogBoots.split([]).isEmpty)
    }

    @Test func fixtureImportTakesABoot() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-boot-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func decode(_ yaml: String) -> Result<Scenario, InputError> {
            Result { () throws(InputError) in
                try FixtureDecoder.decode(yaml: yaml, file: dir + "/m.yaml", baseDirectory: dir)
            }
        }
        func yaml(_ extra: String) -> String {
            "arch: arm64\nmemory: { import: { format: memblock, file: \(multibootPath)\(extra) } }\n"
        }
        let first = try decode(yaml("")).get()
        #expect(first.machine.memory.regions == [reg(0x4000_0000, 0x1_3fff_ffff, .usable)])
        #expect(first.machine.crashkernelRanges == [rng(0xdfe0_0000, 0xefdf_ffff)])
        #expect(try decode(yaml(", boot: 1")).get().machine.memory == first.machine.memory)
        let second = try decode(yaml(", boot: 2")).get()
        #expect(second.machine.memory.regions == [reg(0xdfe0_0000, 0xefdf_ffff, .usable)])
        #expect(second.machine.memory.regions[0].source?.line == 46)
        #expect(second.machine.crashkernelRanges == [])

        guard case .failure(let past) = decode(yaml(", boot: 3")) else {
            Issue.record("boot 3 decoded")
            return
        }
        #expect(past.file == dir + "/m.yaml")
        #expect(past.line == 2)
        #expect(past.field == "memory.import.boot")
        #expect(past.message == "\"\(multibootPath)\": the log holds 2 boots, so there is no boot 3")

        guard case .failure(let zero) = decode(yaml(", boot: 0")), case .failure(let word) = decode(yaml(", boot: two"))
        else {
            Issue.record("boot 0 or two decoded")
            return
        }
        #expect(zero.field == "memory.import.boot")
        #expect(zero.message == "boots are numbered from 1, found 0")
        #expect(word.field == "memory.import.boot")
        #expect(word.message == "\"two\" is not a number (e.g. 4096, 0x1000)")

        guard case .failure(let unknown) = decode(yaml(", boots: 2")) else {
            Issue.record("boots: decoded")
            return
        }
        #expect(unknown.field == "memory.import.boots")
        #expect(unknown.message == "unknown key \"boots\" (expected one of: format, file, boot)")
    }

    @Test func theShippedScenarioImportsTheFirstBoot() throws {
        let s = try Result { () throws(InputError) in
            try FixtureDecoder.load(path: importerPackageRoot + "/Fixtures/scenarios/arm64-multiboot-log.yaml")
        }.get()
        #expect(s.machine.arch == .arm64)
        #expect(s.machine.memory.regions == [reg(0x4000_0000, 0x1_3fff_ffff, .usable)])
        #expect(s.machine.crashkernelRanges == [rng(0xdfe0_0000, 0xefdf_ffff)])
        #expect(s.expect?.verdict == .landed)
    }
}
