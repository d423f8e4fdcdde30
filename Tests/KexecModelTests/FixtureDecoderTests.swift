import Foundation
import Testing

@testable import KexecModel

/// The package root, from this file's path (Tests/KexecModelTests/<file>).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

private func decodeResult(_ yaml: String, file: String = "s.yaml", base: String = "") -> Result<Scenario, InputError> {
    Result { () throws(InputError) -> Scenario in
        try FixtureDecoder.decode(yaml: yaml, file: file, baseDirectory: base)
    }
}

private func decodeError(_ yaml: String, file: String = "s.yaml", base: String = "") -> InputError? {
    if case .failure(let e) = decodeResult(yaml, file: file, base: base) { return e }
    return nil
}

private func loadError(_ path: String) -> InputError? {
    do throws(InputError) {
        _ = try FixtureDecoder.load(path: path)
        return nil
    } catch {
        return error
    }
}

/// A fresh directory under the system temporary directory, removed by the caller.
private func makeTempDir() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-model-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

private func write(_ text: String, to path: String) throws {
    try FileManager.default.createDirectory(
        atPath: FixtureDecoder.directory(of: path), withIntermediateDirectories: true)
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

/// Lines: 1 name, 2 machine, 3 arch, 4 memory, 5-6 regions, 7 kexec, 8 kernel.
private let minimal = """
    name: t
    machine:
      arch: x86_64
      memory:
        - { range: 0x0-0x9ffff, type: usable }
        - { range: 0x100000-0x7fffffff, type: usable }
    kexec:
      kernel: { size: 12MiB }

    """

@Suite("FixtureDecoder")
struct FixtureDecoderTests {
    // MARK: Decoding

    @Test func fullScenarioRoundTrip() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("initrd bytes", to: dir + "/images/initrd.img")
        let yaml = """
            name: full scenario
            machine:
              name: test box
              arch: x86_64
              platform: uv
              paging: 5-level
              memory:
                - { range: 0x0000000000000000-0x000000000009ffff, type: usable }
                - { range: 0x00000000000a0000-0x00000000000fffff, type: reserved }
                - { start: 0x100000, size: 2GiB, type: usable }
                - { range: 0x80100000-0x801fffff, type: acpi }
                - { range: 0x80200000-0x802fffff, type: nvs }
                - { range: 0x80300000-0x803fffff, type: persistent }
                - { range: 0x80400000-0x804fffff, type: soft-reserved }
                - { range: 0x80500000-0x805fffff, type: unusable }
              hazards: [0x80000000-0x800fffff, 0x90000000+1M]
              hotpluggable: [0x100000000+1GiB]
              crashkernel: 512M,high
              crashkernel_ranges: [0x70000000-0x7fffffff]
              efi_system_table: 0x7fe00000
              mem_limit: 2G
            kexec:
              syscall: kexec_file_load
              type: crash
              kernel: { size: 12MiB }
              initrd: { file: images/initrd.img }
              cmdline: "console=ttyS0 nokaslr"
              placement: bottom-up
              entry: 0x1000200
              inject:
                - wrong-digest
                - { flip-source-byte: { segment: kernel, offset: 0x1000 } }
            policy: { identity_map: gbpages-exact, map_segments: false }
            next_kernel_touches: [0x80000000, 0x7fe00000]
            expect: { verdict: rejected, address: 0x80000000, errno: EADDRNOTAVAIL }
            budget: 2_000_000_000

            """
        let s = try decodeResult(yaml, file: dir + "/full.yaml", base: dir).get()
        #expect(s.name == "full scenario")
        #expect(s.file == dir + "/full.yaml")

        let m = s.machine
        #expect(m.name == "test box")
        #expect(m.arch == .x86_64)
        #expect(m.platform == .uv)
        #expect(m.paging == .fiveLevel)
        #expect(m.source == dir + "/full.yaml")
        let regions = m.memory.regions
        #expect(regions.count == 8)
        #expect(
            regions.map(\.type) == [.usable, .reserved, .usable, .acpi, .nvs, .persistent, .softReserved, .unusable])
        #expect(regions[0].range == AddressRange(first: PhysAddr(0), last: PhysAddr(0x9ffff)))
        #expect(regions[1].range == AddressRange(first: PhysAddr(0xa0000), last: PhysAddr(0xfffff)))
        #expect(regions[2].range == AddressRange(first: PhysAddr(0x10_0000), last: PhysAddr(0x800f_ffff)))
        #expect(regions[7].range == AddressRange(first: PhysAddr(0x8050_0000), last: PhysAddr(0x805f_ffff)))
        #expect(
            regions[0].source == SourceLocation(file: dir + "/full.yaml", line: 8, field: "machine.memory[0].range"))
        #expect(
            regions[2].source == SourceLocation(file: dir + "/full.yaml", line: 10, field: "machine.memory[2].start"))
        #expect(regions[7].source?.line == 15)
        #expect(
            m.hazards == [
                AddressRange(first: PhysAddr(0x8000_0000), last: PhysAddr(0x800f_ffff))!,
                AddressRange(first: PhysAddr(0x9000_0000), last: PhysAddr(0x900f_ffff))!,
            ])
        #expect(m.hotpluggable == [AddressRange(first: PhysAddr(0x1_0000_0000), last: PhysAddr(0x1_3fff_ffff))!])
        #expect(m.crashkernel == "512M,high")
        #expect(m.crashkernelRanges == [AddressRange(first: PhysAddr(0x7000_0000), last: PhysAddr(0x7fff_ffff))!])
        #expect(m.efiSystemTable == PhysAddr(0x7fe0_0000))
        #expect(m.memLimit == ByteCount(2 << 30))

        let k = try #require(s.kexec)
        #expect(k.syscall == .kexecFileLoad)
        #expect(k.type == .crash)
        #expect(k.kernel == PayloadSpec(size: ByteCount(12 << 20)))
        #expect(k.initrd == PayloadSpec(file: dir + "/images/initrd.img"))
        #expect(k.cmdline == "console=ttyS0 nokaslr")
        #expect(k.placement == .bottomUp)
        #expect(k.segments == [])
        #expect(k.entry == PhysAddr(0x100_0200))
        #expect(k.inject == [.wrongDigest, .flipSourceByte(segment: "kernel", offset: ByteCount(0x1000))])

        #expect(s.policy == .x86_64(X86Policy(identityMap: .gbpagesExact, mapSegments: false)))
        #expect(s.nextKernelTouches == [PhysAddr(0x8000_0000), PhysAddr(0x7fe0_0000)])
        #expect(s.expect == Expectation(verdict: .rejected, address: 0x8000_0000, errno: "EADDRNOTAVAIL"))
        #expect(s.budget == 2_000_000_000)
    }

    @Test func defaults() throws {
        let s = try decodeResult(minimal).get()
        #expect(s.name == "t")
        #expect(s.file == "s.yaml")
        #expect(s.machine.name == nil)
        #expect(s.machine.platform == .generic)
        #expect(s.machine.paging == .fourLevel)
        #expect(s.machine.hazards == [])
        #expect(s.machine.hotpluggable == [])
        #expect(s.machine.crashkernel == nil)
        #expect(s.machine.crashkernelRanges == [])
        #expect(s.machine.efiSystemTable == nil)
        #expect(s.machine.memLimit == nil)
        #expect(s.machine.source == "s.yaml")
        let k = try #require(s.kexec)
        #expect(k.syscall == .kexecFileLoad)
        #expect(k.type == .normal)
        #expect(k.initrd == nil)
        #expect(k.cmdline == "console=ttyS0")
        #expect(k.placement == .topDown)
        #expect(k.entry == nil)
        #expect(k.inject == [])
        #expect(s.policy == .x86_64(X86Policy(identityMap: .kernel, mapSegments: true)))
        #expect(s.nextKernelTouches == [])
        #expect(s.expect == nil)
        #expect(s.budget == nil)
    }

    @Test func kexecLoadSegments() throws {
        let yaml = """
            name: user destinations
            machine:
              arch: arm64
              memory: [{ start: 0x40000000, size: 4GiB, type: usable }]
            kexec:
              syscall: kexec_load
              segments:
                - { name: kernel, mem: 0x41000000, memsz: 12MiB, bufsz: 0xb00000 }
                - { mem: 0x48000000, memsz: 32M }
              entry: 0x41000000
            expect: { verdict: landed }

            """
        let s = try decodeResult(yaml).get()
        #expect(s.machine.arch == .arm64)
        #expect(s.policy == .arm64(Arm64Policy(relocation: nil, granule: .g4k, mappings: nil)))
        let k = try #require(s.kexec)
        #expect(k.syscall == .kexecLoad)
        #expect(k.kernel == nil)
        #expect(
            k.segments == [
                SegmentSpec(
                    name: "kernel", mem: PhysAddr(0x4100_0000), memsz: ByteCount(12 << 20),
                    bufsz: ByteCount(0xb0_0000),
                    source: SourceLocation(file: "s.yaml", line: 8, field: "kexec.segments[0]")),
                SegmentSpec(
                    name: "segment1", mem: PhysAddr(0x4800_0000), memsz: ByteCount(32 << 20),
                    bufsz: ByteCount(32 << 20),
                    source: SourceLocation(file: "s.yaml", line: 9, field: "kexec.segments[1]")),
            ])
        #expect(k.entry == PhysAddr(0x4100_0000))
        #expect(s.expect == Expectation(verdict: .landed))
    }

    @Test func machineByPath() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let machineText = try String(
            contentsOfFile: packageRoot + "/Fixtures/machines/x86_64-4g.yaml", encoding: .utf8)
        try write(machineText, to: dir + "/machines/box.yaml")
        try write(
            """
            name: by path
            machine: ../machines/box.yaml
            kexec: { kernel: { size: 12MiB } }

            """, to: dir + "/scenarios/s.yaml")
        let s = try Result { () throws(InputError) in try FixtureDecoder.load(path: dir + "/scenarios/s.yaml") }.get()
        #expect(s.name == "by path")
        #expect(s.file == dir + "/scenarios/s.yaml")
        #expect(s.machine.source == dir + "/scenarios/../machines/box.yaml")
        #expect(s.machine.name == "x86_64 4 GiB (QEMU q35)")
        #expect(s.machine.memory.regions.count == 8)
        #expect(s.machine.memory.regions[3].source?.file == dir + "/scenarios/../machines/box.yaml")
        #expect(s.machine.memory.regions[3].source?.line == 11)
        #expect(s.machine.crashkernel == "256M")
        #expect(s.kexec?.kernel == PayloadSpec(size: ByteCount(12 << 20)))
    }

    @Test func bareMachineFiles() throws {
        let x86Path = packageRoot + "/Fixtures/machines/x86_64-4g.yaml"
        let s = try Result { () throws(InputError) in try FixtureDecoder.load(path: x86Path) }.get()
        #expect(s.name == "x86_64 4 GiB (QEMU q35)")
        #expect(s.kexec == nil)
        #expect(s.file == x86Path)
        #expect(s.machine.source == x86Path)
        #expect(s.machine.arch == .x86_64)
        #expect(s.machine.memory.regions.count == 8)
        #expect(s.machine.memory.totalRAM == ByteCount(0x9_fc00 + 0xbfed_f000 + (1 << 30)))
        #expect(s.machine.memory.describe(PhysAddr(0xfffc_0000)).hasPrefix("reserved"))

        let armPath = packageRoot + "/Fixtures/machines/arm64-4g.yaml"
        let arm = try Result { () throws(InputError) in try FixtureDecoder.loadMachine(path: armPath) }.get()
        #expect(arm.arch == .arm64)
        #expect(arm.source == armPath)
        #expect(arm.memory.regions == [Region(range: Parse.range("0x40000000-0x13fffffff")!, type: .usable)])
        #expect(arm.efiSystemTable == PhysAddr(0x1_3ffd_0018))

        // Without a name, the scenario is named after the file.
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("arch: x86_64\nmemory: [{ range: 0x0-0xfffff, type: usable }]\n", to: dir + "/tiny-box.yaml")
        let tiny = try Result { () throws(InputError) in try FixtureDecoder.load(path: dir + "/tiny-box.yaml") }.get()
        #expect(tiny.name == "tiny-box")
        #expect(tiny.machine.name == nil)
    }

    // MARK: Errors

    @Test func unknownKey() throws {
        let e = try #require(decodeError(minimal + "foo: 1\n"))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 9, field: "foo",
                    message:
                        "unknown key \"foo\" (expected one of: name, machine, kexec, policy, next_kernel_touches, expect, expect_by_policy, budget, follow, purgatory, follow_timeout)"
                ))

        let nested = try #require(decodeError(minimal.replacingOccurrences(of: "  arch:", with: "  arhc:")))
        #expect(nested.line == 3)
        #expect(nested.field == "machine.arhc")
        #expect(nested.message.hasPrefix("unknown key \"arhc\" (expected one of: name, arch, platform,"))
    }

    @Test func duplicateKey() throws {
        let e = try #require(decodeError(minimal + "name: again\n"))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 9, field: "name", message: "duplicate key \"name\" (first given at line 1)"))
    }

    @Test func wrongType() throws {
        let hazards = try #require(
            decodeError(
                minimal.replacingOccurrences(of: "  arch: x86_64\n", with: "  arch: x86_64\n  hazards: 0x1000-0x1fff\n")
            ))
        #expect(
            hazards
                == InputError(
                    file: "s.yaml", line: 4, field: "machine.hazards",
                    message: "expected a list of ranges, found \"0x1000-0x1fff\""))

        let kexec = try #require(
            decodeError(minimal.replacingOccurrences(of: "  kernel: { size: 12MiB }", with: "  - kernel")))
        #expect(
            kexec
                == InputError(
                    file: "s.yaml", line: 8, field: "kexec",
                    message: "expected a mapping, found a list (a list of loads is a Kexec HandOver chain, "
                        + "which needs machine.kho)"))

        let empty = try #require(decodeError(minimal.replacingOccurrences(of: "x86_64", with: "")))
        #expect(empty.line == 3)
        #expect(empty.field == "machine.arch")
        #expect(empty.message == "expected one of: x86_64, arm64, found no value")
    }

    @Test func missingArch() throws {
        let e = try #require(decodeError(minimal.replacingOccurrences(of: "  arch: x86_64\n", with: "")))
        // The line of the machine mapping (its first key).
        #expect(
            e == InputError(file: "s.yaml", line: 3, field: "machine.arch", message: "missing required field \"arch\""))
    }

    @Test func invertedRange() throws {
        let e = try #require(
            decodeError(minimal.replacingOccurrences(of: "0x100000-0x7fffffff", with: "0x2000-0x1000")))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 6, field: "machine.memory[1].range",
                    message: "inverted range: last 0x1000 is below first 0x2000"))
    }

    @Test func wrappingRange() throws {
        let e = try #require(
            decodeError(
                minimal.replacingOccurrences(
                    of: "{ range: 0x100000-0x7fffffff, type: usable }",
                    with: "{ start: 0xffffffffffff0000, size: 1MiB, type: usable }")))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 6, field: "machine.memory[1].size",
                    message: "range wraps past 0xffffffffffffffff"))

    }

    @Test func overlappingRegionsBlameTheLaterLine() throws {
        let later = try #require(
            decodeError(
                minimal.replacingOccurrences(
                    of: "    - { range: 0x100000-0x7fffffff, type: usable }\n",
                    with:
                        "    - { range: 0x100000-0x7fffffff, type: usable }\n    - { range: 0x50000-0x5ffff, type: reserved }\n"
                )))
        #expect(later.file == "s.yaml")
        #expect(later.line == 7)
        #expect(later.field == "machine.memory[2].range")
        #expect(
            later.message.contains("overlaps region [0x0000000000000000-0x000000000009ffff] (usable) given at line 5"))

        // The later region sorts first: still the later line is named.
        let sortedFirst = try #require(
            decodeError(minimal.replacingOccurrences(of: "0x0-0x9ffff", with: "0x200000-0x2fffff")))
        #expect(sortedFirst.line == 6)
        #expect(sortedFirst.field == "machine.memory[1].range")
        #expect(sortedFirst.message.hasSuffix("given at line 5"))
    }

    @Test func badSize() throws {
        let e = try #require(decodeError(minimal.replacingOccurrences(of: "12MiB", with: "12XB")))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 8, field: "kexec.kernel.size",
                    message: "\"12XB\" is not a size (e.g. 12MiB, 256M, 0x1000)"))

        let big = try #require(decodeError(minimal.replacingOccurrences(of: "12MiB", with: "16EiB")))
        #expect(big.field == "kexec.kernel.size")
        #expect(big.message == "\"16EiB\" is more than 0xffffffffffffffff bytes")
    }

    @Test func numberOverflow() throws {
        let e = try #require(decodeError(minimal + "budget: 18446744073709551616\n"))
        #expect(e.line == 9)
        #expect(e.field == "budget")
        #expect(e.message.contains("does not fit in 64 bits"))
    }

    @Test func segmentsOnKexecFileLoad() throws {
        let e = try #require(decodeError(minimal + "  segments: [{ mem: 0x1000000, memsz: 1M }]\n"))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 9, field: "kexec.segments",
                    message: "segments are only for kexec_load (kexec_file_load places the segments itself)"))

        let missing = try #require(decodeError(minimal + "  syscall: kexec_load\n"))
        #expect(missing.line == 8)
        #expect(missing.field == "kexec.segments")
        #expect(missing.message.hasPrefix("missing required field \"segments\""))
    }

    @Test func unknownVerdict() throws {
        let e = try #require(decodeError(minimal + "expect: { verdict: explode }\n"))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 9, field: "expect.verdict",
                    message:
                        "unknown value \"explode\" (expected one of: landed, rejected, page-fault, halt, hang, stray-write, corruption, memory-mismatch)"
                ))
    }

    @Test func missingImportedLogIsNamed() throws {
        let yaml = """
            name: imported
            machine:
              arch: x86_64
              memory: { import: { format: e820, file: ../logs/x.txt } }

            """
        let e = try #require(decodeError(yaml))
        #expect(e.line == 4)
        #expect(e.field == "machine.memory.import.file")
        #expect(e.message.contains("cannot read boot log \"../logs/x.txt\": no such file"))
    }

    @Test func missingMachineFile() throws {
        let e = try #require(decodeError("name: t\nmachine: nowhere/box.yaml\n", base: "/nonexistent-dir"))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 2, field: "machine",
                    message: "cannot read machine file \"/nonexistent-dir/nowhere/box.yaml\": no such file"))
    }

    @Test func errorInsideMachineFileNamesThatFile() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("arch: x86_64\nmemory:\n  - { range: 0x0-0xfffff, type: useable }\n", to: dir + "/m.yaml")
        try write("name: t\nmachine: m.yaml\n", to: dir + "/s.yaml")
        let e = try #require(loadError(dir + "/s.yaml"))
        #expect(e.file == dir + "/m.yaml")
        #expect(e.line == 3)
        #expect(e.field == "memory[0].type")
        #expect(e.message.hasPrefix("unknown value \"useable\""))
    }

    @Test func yamlSyntaxError() throws {
        let e = try #require(decodeError("name: t\nmachine: [unclosed\n"))
        #expect(e.file == "s.yaml")
        #expect(e.line == 2)  // libyaml says 3 (past the end); the decoder clamps to the last line
        #expect(e.field == "yaml")
        #expect(e.message.hasPrefix("YAML syntax: "))
    }

    @Test func fileOver16MiB() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/huge.yaml"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("name: huge\n".utf8)))
        let h = try #require(FileHandle(forWritingAtPath: path))
        try h.truncate(atOffset: 17 << 20)  // sparse: nothing is written
        try h.close()
        let e = try #require(loadError(path))
        #expect(
            e
                == InputError(
                    file: path, line: nil, field: "file", message: "file is larger than 16 MiB (17825792 bytes)"))

        // The same limit holds for text handed over directly.
        let text = String(repeating: "#", count: (16 << 20) + 1)
        let direct = try #require(decodeError(text))
        #expect(direct.message == "file is larger than 16 MiB (16777217 bytes)")
    }

    @Test func aliasBomb() throws {
        var yaml = "name: bomb\n"
        yaml += "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for (prev, name) in zip("abcdefgh", "bcdefghi") {
            yaml += "\(name): &\(name) [" + Array(repeating: "*\(prev)", count: 9).joined(separator: ",") + "]\n"
        }
        // a..f expand to ~600k nodes; g (line 8) passes 1,000,000.
        let e = try #require(decodeError(yaml))
        #expect(
            e
                == InputError(
                    file: "s.yaml", line: 8, field: "g",
                    message: "document expands to more than 1000000 nodes (through YAML aliases?)"))
    }

    @Test func deepAliasChainIsAnErrorNotACrash() throws {
        // Each line nests 1000 block sequences around the previous anchor: 60,000 levels in all,
        // few nodes, far deeper than the stack the text alone calls for.
        var yaml = "a0: &a0 x\n"
        for i in 1...60 {
            yaml += "a\(i): &a\(i)\n  " + String(repeating: "- ", count: 1000) + "*a\(i - 1)\n"
        }
        let e = try #require(decodeError(yaml))
        #expect(e.file == "s.yaml")
        #expect(e.field.hasPrefix("a"))
        #expect(e.message.hasPrefix("document nests deeper than"))
    }

    @Test func deepFlowNestingIsRefused() throws {
        let yaml = "name: " + String(repeating: "[", count: 20000) + String(repeating: "]", count: 20000) + "\n"
        let e = try #require(decodeError(yaml))
        #expect(e == InputError(file: "s.yaml", line: 1, field: "file", message: "line is longer than 4096 bytes"))

        let multiline = "name:\n" + String(repeating: "[\n", count: 20000) + String(repeating: "]\n", count: 20000)
        let m = try #require(decodeError(multiline))
        #expect(
            m == InputError(file: "s.yaml", line: nil, field: "file", message: "more than 10000 '[' or '{' characters"))
    }

    @Test func nestingWithinLimitsStillDecodes() throws {
        // 4000 nested flow sequences: allowed by the limits, composed on the large stack, then
        // rejected by the schema (a name is text) rather than crashing.
        let yaml = "name: " + String(repeating: "[\n", count: 4000) + String(repeating: "]\n", count: 4000)
        let e = try #require(decodeError(yaml))
        #expect(e == InputError(file: "s.yaml", line: 1, field: "name", message: "expected text, found a list"))
    }

    @Test func topLevelMustBeAMapping() throws {
        #expect(
            decodeError("")
                == InputError(file: "s.yaml", line: 1, field: "document", message: "file is empty (expected a mapping)")
        )
        let e = try #require(decodeError("- a\n- b\n"))
        #expect(e.field == "document")
        #expect(e.message == "expected a mapping at the top level, found a list")
    }
}
