import Foundation
import Testing

@testable import KexecModel

/// Tests/KexecModelTests/Malformed: one small file per bad input, each with the exact error
/// FixtureDecoder.load gives (file, 1-based line, dotted field, message). Cases too big to commit
/// (a 200 MB file, 100,000 map entries, 10,001 flow openers, deep nesting) are generated at test time;
/// KEXEC_SIM_FULL_MALFORMED=1 decodes all 100,000 entries in block style too (10 s in a debug build).
/// The `run-*` files decode; what the kernel says about them is in KexecSimTests/MalformedRunTests.
private let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Malformed").path

/// A corpus file and the exact error decoding it gives. `$DIR` in a message stands for the corpus directory.
struct MalformedCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// The file the error names when it is not the case itself (relative to the corpus).
    var errorFile: String?
    var line: Int?
    var field: String
    var message: String

    init(_ name: String, errorFile: String? = nil, line: Int?, field: String, message: String) {
        self.name = name
        self.errorFile = errorFile
        self.line = line
        self.field = field
        self.message = message
    }

    var testDescription: String { name }

    var expected: InputError {
        InputError(
            file: corpus + "/" + (errorFile ?? name), line: line, field: field,
            message: message.replacingOccurrences(of: "$DIR", with: corpus))
    }
}

// swift-format-ignore
let malformedCases: [MalformedCase] = [
    MalformedCase("anchor-bomb.yaml", line: 7, field: "bomb", message: "document expands to more than 1000000 nodes (through YAML aliases?)"),
    MalformedCase("bad-hex.yaml", line: 7, field: "next_kernel_touches[1]", message: "\"0x12g4\" is not an address (e.g. 0x7fe00000)"),
    MalformedCase("binary-garbage.yaml", line: nil, field: "file", message: "is not UTF-8 text"),
    MalformedCase("bool-yes.yaml", line: 7, field: "policy.map_segments", message: "expected true or false, found \"yes\""),
    MalformedCase("budget-zero.yaml", line: 7, field: "budget", message: "the instruction budget must be more than 0"),
    MalformedCase("cmdline-is-list.yaml", line: 9, field: "kexec.cmdline", message: "expected text, found a list"),
    MalformedCase("crashkernel-larger-than-ram.yaml", line: 7, field: "machine.crashkernel", message: "crashkernel=4G is larger than the RAM that can hold it (4GiB of 2.0GiB = 0x7ffa0000 bytes of usable RAM); Linux 6.18 (reserve_crashkernel_generic) reserves nothing and prints nothing"),
    MalformedCase("crashkernel-offset-outside-ram.yaml", line: 7, field: "machine.crashkernel", message: "crashkernel=64M@0x100000000: 64MiB at 0x100000000 is not free RAM (reserved, not RAM, or not 16MiB aligned); Linux 6.18 (reserve_crashkernel_generic) reserves nothing and prints \"crashkernel reservation failed - memory is in use.\""),
    MalformedCase("crashkernel-syntax.yaml", line: 7, field: "machine.crashkernel", message: "crashkernel=256Q: unexpected \"Q\""),
    MalformedCase("duplicate-key-in-region.yaml", line: 5, field: "machine.memory[0].type", message: "duplicate key \"type\" (first given at line 5)"),
    MalformedCase("duplicate-key.yaml", line: 6, field: "name", message: "duplicate key \"name\" (first given at line 1)"),
    MalformedCase("empty-memory-map.yaml", line: 4, field: "machine.memory", message: "the memory map has no regions"),
    MalformedCase("empty.yaml", line: 1, field: "document", message: "file is empty (expected a mapping)"),
    MalformedCase("expect-by-policy-on-arm64.yaml", line: 7, field: "expect_by_policy", message: "expect_by_policy names x86_64 identity-map policies, but machine.arch is arm64"),
    MalformedCase("expect-by-unknown-policy.yaml", line: 8, field: "expect_by_policy", message: "unknown value \"ram-4k\" (expected one of: kernel, ram-2m, ram-1g, kdump-only, gbpages-exact, gbpages-except-uv)"),
    MalformedCase("file-load-without-kernel.yaml", line: 8, field: "kexec.kernel", message: "missing required field \"kernel\" (kexec_file_load loads a kernel)"),
    MalformedCase("flip-without-offset.yaml", line: 10, field: "kexec.inject[0].flip-source-byte.offset", message: "missing required field \"offset\""),
    MalformedCase("hazard-inverted.yaml", line: 7, field: "machine.hazards[0]", message: "inverted range: last 0x80000000 is below first 0x90000000"),
    MalformedCase("hex-without-digits.yaml", line: 7, field: "machine.efi_system_table", message: "\"0x\" is not an address (e.g. 0x7fe00000)"),
    MalformedCase("import-log-missing.yaml", line: 4, field: "machine.memory.import.file", message: "cannot read boot log \"$DIR/no-such-log.txt\": no such file"),
    MalformedCase("import-log-without-map.yaml", errorFile: "not-a-boot-log.txt", line: nil, field: "boot log", message: "no memory map found (expected BIOS-e820 lines, /proc/iomem, an EFI memory map or arm64 memblock lines) (imported by $DIR/import-log-without-map.yaml line 4)"),
    MalformedCase("import-unknown-format.yaml", line: 4, field: "machine.memory.import.format", message: "unknown value \"acpi\" (expected one of: auto, e820, iomem, efi, memblock, dtb)"),
    MalformedCase("inverted-range.yaml", line: 6, field: "machine.memory[1].range", message: "inverted range: last 0x100000 is below first 0x7fffffff"),
    MalformedCase("kernel-file-is-directory.yaml", line: 8, field: "kexec.kernel.file", message: "is a directory, not a file: \"$DIR/.\""),
    MalformedCase("kernel-file-missing.yaml", line: 8, field: "kexec.kernel.file", message: "no such file \"$DIR/no-such-bzImage\""),
    MalformedCase("kernel-size-and-file.yaml", line: 8, field: "kexec.kernel", message: "give either size or file, not both"),
    MalformedCase("kernel-size-zero.yaml", line: 8, field: "kexec.kernel.size", message: "size must not be 0"),
    MalformedCase(
        "kexec-is-list.yaml", line: 7, field: "kexec",
        message: "expected a mapping, found a list (a list of loads is a Kexec HandOver chain, which needs machine.kho)"),
    MalformedCase("kexec-load-without-segments.yaml", line: 8, field: "kexec.segments", message: "missing required field \"segments\" (kexec_load needs them, or loader: kexec-tools)"),
    MalformedCase("key-is-mapping.yaml", line: 6, field: "document", message: "keys must be plain names, found a mapping"),
    MalformedCase("long-line.yaml", line: 1, field: "file", message: "line is longer than 4096 bytes"),
    MalformedCase("machine-file-missing.yaml", line: 2, field: "machine", message: "cannot read machine file \"$DIR/no-such-machine.yaml\": no such file"),
    MalformedCase("machine-is-list.yaml", line: 2, field: "machine", message: "expected a machine mapping, found a list"),
    MalformedCase("memory-is-scalar.yaml", line: 4, field: "machine.memory", message: "expected a list of regions or { import: { format, file } }, found \"lots\""),
    MalformedCase("missing-arch.yaml", line: 3, field: "machine.arch", message: "missing required field \"arch\""),
    MalformedCase("name-empty.yaml", line: 1, field: "name", message: "must not be empty"),
    MalformedCase("name-is-mapping.yaml", line: 1, field: "name", message: "expected text, found a mapping"),
    MalformedCase("name-without-value.yaml", line: 1, field: "name", message: "expected text, found no value"),
    MalformedCase("negative-address.yaml", line: 7, field: "machine.efi_system_table", message: "\"-4096\" is not an address (e.g. 0x7fe00000)"),
    MalformedCase("negative-size.yaml", line: 8, field: "kexec.kernel.size", message: "\"-12MiB\" is not a size (e.g. 12MiB, 256M, 0x1000)"),
    MalformedCase("nul-byte.yaml", line: 3, field: "yaml", message: "YAML syntax: control characters are not allowed"),
    MalformedCase("number-past-2-64-decimal.yaml", line: 7, field: "budget", message: "\"18446744073709551616\" does not fit in 64 bits (at most 0xffffffffffffffff)"),
    MalformedCase("number-past-2-64-hex.yaml", line: 7, field: "machine.efi_system_table", message: "\"0x10000000000000000\" does not fit in 64 bits (at most 0xffffffffffffffff)"),
    MalformedCase("number-trailing-underscore.yaml", line: 7, field: "budget", message: "\"1000_\" is not a number (e.g. 4096, 0x1000)"),
    MalformedCase("only-comments.yaml", line: 1, field: "document", message: "file is empty (expected a mapping)"),
    MalformedCase("overlapping-regions.yaml", line: 7, field: "machine.memory[2].range", message: "region [0x000000007ff00000-0x00000000800fffff] (acpi) overlaps region [0x0000000000100000-0x000000007fffffff] (usable) given at line 6"),
    MalformedCase("policy-arm64-key-on-x86.yaml", line: 7, field: "policy.linear_map", message: "\"linear_map\" is an arm64 policy key, but machine.arch is x86_64 (expected one of: identity_map, map_segments)"),
    MalformedCase("policy-x86-key-on-arm64.yaml", line: 8, field: "policy.identity_map", message: "\"identity_map\" is an x86_64 policy key, but machine.arch is arm64 (expected one of: linear_map, relocation)"),
    MalformedCase("range-and-start.yaml", line: 5, field: "machine.memory[0]", message: "give either range or start and size, not both"),
    MalformedCase("range-not-a-range.yaml", line: 5, field: "machine.memory[0].range", message: "\"0x0..0x9ffff\" is not a range (e.g. 0x100000-0x7fffffff or 0x100000+2GiB)"),
    MalformedCase("range-number-too-big.yaml", line: 7, field: "machine.crashkernel_ranges[0]", message: "\"0x0-0x1ffffffffffffffff\" has a number that does not fit in 64 bits"),
    MalformedCase("range-plus-wraps.yaml", line: 6, field: "machine.memory[1].range", message: "range wraps past 0xffffffffffffffff"),
    MalformedCase("range-plus-zero.yaml", line: 5, field: "machine.memory[0].range", message: "range has size 0"),
    MalformedCase("region-is-scalar.yaml", line: 5, field: "machine.memory[0]", message: "expected a region { range, type } or { start, size, type }, found \"0x0-0x9ffff usable\""),
    MalformedCase("region-size-zero.yaml", line: 6, field: "machine.memory[1].size", message: "size must not be 0"),
    MalformedCase("region-without-range.yaml", line: 5, field: "machine.memory[0]", message: "missing required field \"range\" (or \"start\" and \"size\")"),
    MalformedCase("segment-without-mem.yaml", line: 10, field: "kexec.segments[0].mem", message: "missing required field \"mem\""),
    MalformedCase("segments-is-mapping.yaml", line: 9, field: "kexec.segments", message: "expected a list of segments, found a mapping"),
    MalformedCase("segments-with-file-load.yaml", line: 10, field: "kexec.segments", message: "segments are only for kexec_load (kexec_file_load places the segments itself)"),
    MalformedCase("size-past-2-64.yaml", line: 7, field: "machine.mem_limit", message: "\"16385PiB\" is more than 0xffffffffffffffff bytes"),
    MalformedCase("size-unit-typo.yaml", line: 8, field: "kexec.kernel.size", message: "\"12MiBs\" is not a size (e.g. 12MiB, 256M, 0x1000)"),
    MalformedCase("start-size-wraps.yaml", line: 6, field: "machine.memory[1].size", message: "range wraps past 0xffffffffffffffff"),
    MalformedCase("tab-indentation.yaml", line: 3, field: "yaml", message: "YAML syntax: found character that cannot start any token (while scanning for the next token at line 3)"),
    MalformedCase("top-level-list.yaml", line: 1, field: "document", message: "expected a mapping at the top level, found a list"),
    MalformedCase("top-level-scalar.yaml", line: 1, field: "document", message: "expected a mapping at the top level, found \"just some words\""),
    MalformedCase("touches-not-a-list.yaml", line: 7, field: "next_kernel_touches", message: "expected a list of addresses, found \"0x80000000\""),
    MalformedCase("two-documents.yaml", line: 2, field: "yaml", message: "YAML syntax: but found another document (expected a single document in the stream at line 1)"),
    MalformedCase("unclosed-flow-mapping.yaml", line: 5, field: "yaml", message: "YAML syntax: did not find expected ',' or '}' (while parsing a flow mapping at line 5)"),
    MalformedCase("undefined-alias.yaml", line: 1, field: "yaml", message: "YAML syntax: found undefined alias"),
    MalformedCase("unknown-arch.yaml", line: 3, field: "machine.arch", message: "unknown value \"riscv64\" (expected one of: x86_64, arm64)"),
    MalformedCase("unknown-errno.yaml", line: 7, field: "expect.errno", message: "unknown value \"ENOENT\" (expected one of: EINVAL, EADDRNOTAVAIL, ENOMEM, EBUSY)"),
    MalformedCase("unknown-injection.yaml", line: 9, field: "kexec.inject[0]", message: "unknown injection \"wrong-checksum\" (expected one of: wrong-digest, list-cycle, overwrite-control-page, scribble, invalid-opcode, nx-start, flip-source-byte, start-address, first-kernel-write, kho-before-scratch-check, handoff-pointer)"),
    MalformedCase("unknown-key-in-region.yaml", line: 5, field: "machine.memory[0].flags", message: "unknown key \"flags\" (expected one of: range, start, size, type)"),
    MalformedCase("unknown-key.yaml", line: 7, field: "colour", message: "unknown key \"colour\" (expected one of: name, machine, kexec, policy, next_kernel_touches, expect, expect_by_policy, budget, follow, purgatory, follow_timeout)"),
    MalformedCase("unknown-policy.yaml", line: 7, field: "policy.identity_map", message: "unknown value \"gbpages-all\" (expected one of: kernel, ram-2m, ram-1g, kdump-only, gbpages-exact, gbpages-except-uv)"),
    MalformedCase("unknown-region-type.yaml", line: 5, field: "machine.memory[0].type", message: "unknown value \"ram\" (expected one of: usable, reserved, acpi, nvs, persistent, soft-reserved, unusable)"),
    MalformedCase("unknown-syscall.yaml", line: 8, field: "kexec.syscall", message: "unknown value \"kexec_load2\" (expected one of: kexec_file_load, kexec_load)"),
    MalformedCase("unknown-verdict.yaml", line: 7, field: "expect.verdict", message: "unknown value \"crashed\" (expected one of: landed, rejected, page-fault, halt, hang, stray-write, corruption, memory-mismatch)"),
    MalformedCase("utf16.yaml", line: nil, field: "file", message: "is not UTF-8 text"),
]

/// Valid edge cases: a range may end at the last address of the space, and start + size may reach 2^64.
private let validCases = ["range-to-top-of-space.yaml", "start-size-to-top-of-space.yaml"]

/// Decode fine; the kernel rejects them (or, for run-15-segments, takes them): MalformedRunTests.
let malformedRunCases = [
    "run-15-segments.yaml", "run-16-segments.yaml", "run-17-segments.yaml", "run-bufsz-over-memsz.yaml",
    "run-crash-load-outside-crashkernel.yaml", "run-crash-without-crashkernel.yaml",
    "run-initrd-larger-than-free-ram.yaml", "run-kernel-larger-than-ram.yaml", "run-misaligned-end.yaml",
    "run-misaligned-mem.yaml", "run-overlapping-segments.yaml", "run-past-destination-limit.yaml",
    "run-segment-over-half-ram.yaml", "run-segment-wraps.yaml", "run-zero-memsz-segment.yaml",
]

/// Files other cases refer to.
private let auxiliaryFiles = ["not-a-boot-log.txt"]

private func load(_ path: String) -> Result<Scenario, InputError> {
    Result { () throws(InputError) -> Scenario in try FixtureDecoder.load(path: path) }
}

private func loadError(_ path: String) -> InputError? {
    if case .failure(let e) = load(path) { return e }
    return nil
}

/// A fresh directory under the system temporary directory; the caller removes it.
private func makeTempDir() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-malformed-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

private let smallMachine = """
    name: t
    machine:
      arch: x86_64
      memory:
        - { range: 0x0-0x9ffff, type: usable }

    """

@Suite("Malformed corpus")
struct MalformedCorpusTests {
    @Test(arguments: malformedCases)
    func decodingFailsWithTheExactError(_ c: MalformedCase) {
        let got = loadError(corpus + "/" + c.name)
        #expect(got == c.expected)
    }

    @Test func rangesReachingTheTopOfTheSpaceAreValid() throws {
        for name in validCases {
            let s = try load(corpus + "/" + name).get()
            let top = try #require(s.machine.memory.regions.last)
            #expect(top.range.first == PhysAddr(0xffff_ffff_ffff_f000), "\(name)")
            #expect(top.range.last == PhysAddr(UInt64.max), "\(name)")
            #expect(top.range.end == nil, "\(name)")
            #expect(top.range.size == ByteCount(0x1000), "\(name)")
        }
    }

    @Test func runCasesDecode() throws {
        for name in malformedRunCases {
            let s = try load(corpus + "/" + name).get()
            #expect(s.kexec != nil, "\(name)")
        }
    }

    /// Every file in the corpus has an expectation, and every expectation a file.
    @Test func everyFileIsListed() throws {
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: corpus))
        let listed = Set(malformedCases.map(\.name) + validCases + malformedRunCases + auxiliaryFiles)
        #expect(files.subtracting(listed).sorted() == [])
        #expect(listed.subtracting(files).sorted() == [])
        #expect(malformedCases.count >= 40)
        #expect(Set(malformedCases.map(\.name)).count == malformedCases.count)
    }

    // MARK: Generated at test time

    @Test func fixturePathIsADirectory() {
        #expect(
            loadError(corpus)
                == InputError(file: corpus, line: nil, field: "file", message: "is a directory, not a fixture file"))
    }

    @Test func fixtureDoesNotExist() {
        let path = corpus + "/no-such-fixture.yaml"
        #expect(loadError(path) == InputError(file: path, line: nil, field: "file", message: "no such file"))
    }

    /// 200 MB, sparse: refused from its size before a byte is read.
    @Test func fileOf200MB() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/huge.yaml"
        #expect(FileManager.default.createFile(atPath: path, contents: Data("name: t\n".utf8)))
        let h = try #require(FileHandle(forWritingAtPath: path))
        try h.truncate(atOffset: 200_000_000)
        try h.close()
        #expect(
            loadError(path)
                == InputError(
                    file: path, line: nil, field: "file", message: "file is larger than 16 MiB (200000000 bytes)"))
    }

    /// 100,000 regions in flow style ({ … } each) pass the limit on '{' and '[' (which bounds how deep
    /// the YAML may nest): refused before parsing, at once.
    @Test func mapOf100000FlowEntries() {
        var yaml = "name: big\nmachine:\n  arch: x86_64\n  memory:\n"
        for i in 0..<100_000 {
            let type = i % 2 == 0 ? "usable" : "reserved"
            yaml += "    - { start: \(hex(UInt64(i) << 12)), size: 4K, type: \(type) }\n"
        }
        let e = Result { () throws(InputError) in
            try FixtureDecoder.decode(yaml: yaml, file: "big.yaml", baseDirectory: "")
        }
        #expect(
            e.error
                == InputError(
                    file: "big.yaml", line: nil, field: "file", message: "more than 10000 '[' or '{' characters"))
    }

    /// Regions in block style (no '{'): 20,000 (1.2 MB) here, decoded completely; the 100,000 of
    /// the malformed-input list (6 MB) with KEXEC_SIM_FULL_MALFORMED=1.
    @Test func mapOfManyBlockEntries() throws {
        let full = ProcessInfo.processInfo.environment["KEXEC_SIM_FULL_MALFORMED"] == "1"
        let n = full ? 100_000 : 20_000
        var lines = ["name: big", "machine:", "  arch: x86_64", "  memory:"]
        lines.reserveCapacity(2 * n + 4)
        for i in 0..<n {
            lines.append("    - range: \(hex(UInt64(i) << 12))+4K")
            lines.append("      type: \(i % 2 == 0 ? "usable" : "reserved")")
        }
        let yaml = lines.joined(separator: "\n") + "\n"
        let s = try FixtureDecoder.decode(yaml: yaml, file: "big.yaml", baseDirectory: "")
        #expect(s.machine.memory.regions.count == n)
        #expect(s.machine.memory.regions.last?.range.last == PhysAddr(UInt64(n) << 12 - 1))
        #expect(s.machine.memory.regions[n - 1].source?.line == 5 + 2 * (n - 1))
    }

    /// More than 10,000 '[' / '{' are refused before parsing (they bound how deep the YAML nests).
    @Test func tooManyFlowOpeners() {
        let yaml = smallMachine + "x: " + String(repeating: "[\n", count: 10_001)
        let e = Result { () throws(InputError) in
            try FixtureDecoder.decode(yaml: yaml, file: "deep.yaml", baseDirectory: "")
        }
        #expect(
            e.error
                == InputError(
                    file: "deep.yaml", line: nil, field: "file", message: "more than 10000 '[' or '{' characters"))
    }

    /// 9,000 levels of flow nesting (under the opener limit) parse on the decoder's own large stack and
    /// fail on the unknown key, without a stack overflow.
    @Test func deepNestingUnderTheLimit() {
        let depth = 9_000
        let yaml =
            smallMachine + "x: " + String(repeating: "[\n", count: depth) + String(repeating: "]\n", count: depth)
        let e = Result { () throws(InputError) in
            try FixtureDecoder.decode(yaml: yaml, file: "deep.yaml", baseDirectory: "")
        }
        #expect(e.error?.field == "x")
        #expect(e.error?.line == 6)
        #expect(e.error?.message.hasPrefix("unknown key \"x\"") == true)
    }
}

extension Result {
    fileprivate var error: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}
