import Foundation
import KexecModel
import Testing

/// `kexec-sim import` on what real Debian arm64 kernels left (Fixtures/kernel-truth/arm64: the boot
/// lines and /sys/firmware/fdt of each case), as a user runs it: the machine fixture it writes holds
/// the memory the kernel had in memblock (its MEMBLOCK configuration block).
@Suite struct Arm64TruthImportTests {
    struct Case: Decodable {
        struct Range: Decodable {
            var start: String
            var end: String
        }
        struct Dump: Decodable { var memory: [Range] }
        struct Memblock: Decodable { var configuration: Dump }
        struct Fdt: Decodable {
            var size: Int
            var blobBase64: String
        }
        var lines: [String]
        var memblock: Memblock
        var fdt: Fdt
    }

    static let root = repoRoot + "/Fixtures/kernel-truth/arm64"
    static let files: [String] = {
        let fm = FileManager.default
        return ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted().flatMap { series in
            ((try? fm.contentsOfDirectory(atPath: root + "/" + series)) ?? []).sorted()
                .filter { $0.hasSuffix(".json") }.map { series + "/" + $0 }
        }
    }()

    let cli = CLITests()

    /// The memory of the machine fixture `kexec-sim import FILE` writes, read back by the fixture
    /// decoder through a scenario that names it.
    func importedMemory(_ file: String, in dir: URL) throws -> [AddressRange] {
        let r = try cli.run(["import", file, "--arch", "arm64"])
        #expect(r.status == 0, "\(r.err)")
        let machine = dir.appendingPathComponent(UUID().uuidString + ".yaml")
        try r.out.write(to: machine, atomically: true, encoding: .utf8)
        let scenario = dir.appendingPathComponent(UUID().uuidString + "-scenario.yaml").path
        try """
        name: imported
        machine: \(machine.lastPathComponent)
        kexec:
          kernel: { size: 2MiB }

        """.write(toFile: scenario, atomically: true, encoding: .utf8)
        return try FixtureDecoder.load(path: scenario).machine.memory.usable.ranges
    }

    @Test(arguments: files) func importGivesTheKernelsMemory(_ file: String) throws {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let c = try d.decode(Case.self, from: Data(contentsOf: URL(fileURLWithPath: Self.root + "/" + file)))
        let want = c.memblock.configuration.memory.map {
            AddressRange(
                first: PhysAddr(UInt64($0.start.dropFirst(2), radix: 16)!),
                last: PhysAddr(UInt64($0.end.dropFirst(2), radix: 16)!))!
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-a64-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("dmesg.txt")
        try (c.lines.joined(separator: "\n") + "\n").write(to: log, atomically: true, encoding: .utf8)
        #expect(try importedMemory(log.path, in: dir) == want, "\(file) boot lines")
        var blob = [UInt8](try #require(Data(base64Encoded: c.fdt.blobBase64)))
        blob += [UInt8](repeating: 0, count: max(0, c.fdt.size - blob.count))
        let fdt = dir.appendingPathComponent("fdt.dtb")
        try Data(blob).write(to: fdt)
        #expect(try importedMemory(fdt.path, in: dir) == want, "\(file) /sys/firmware/fdt")
    }
}
