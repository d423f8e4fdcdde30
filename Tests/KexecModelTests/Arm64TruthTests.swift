import Foundation
import Testing

@testable import KexecModel

/// One Fixtures/kernel-truth/arm64 case (scripts/kernel-truth --arch arm64; fields in the README
/// there), as far as the memory map and the crashkernel reservation go.
struct Arm64TruthCase: Decodable {
    struct Range: Decodable {
        var start: String
        var end: String
    }
    struct Reservation: Decodable { var line: String }
    struct Crash: Decodable {
        var reservations: [Reservation]
        var iomem: [Range]
    }
    struct Dump: Decodable {
        var memory: [Range]
        var reserved: [Range]
    }
    struct Memblock: Decodable { var configuration: Dump? }
    struct Zone: Decodable {
        var zone: String
        var start: String?
        var end: String?
    }
    struct Zones: Decodable { var zoneRanges: [Zone] }
    struct Fdt: Decodable {
        var size: Int
        var blobBase64: String
        var zeroPaddedToSize: Bool
    }
    var series: String
    var shape: String
    var arch: String
    var crashkernelParam: String?
    var extraAppend: String?
    struct Segment: Decodable, Equatable {
        var index: Int
        var mem: String
        var memsz: String
    }
    struct Load: Decodable {
        var rc: Int?
        var kexecToolsSegments: [Segment]?
        var kernelSegments: [Segment]?
        var lines: [String]
    }
    struct Qemu: Decodable {
        var cpu: String
        var argv: String
    }
    var qemu: Qemu
    var crashkernel: Crash
    var loads: [String: Load]
    var memblock: Memblock
    var zones: Zones
    var fdt: Fdt
    var lines: [String]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/kernel-truth/arm64").path

    /// Every recorded case as "SERIES/SHAPE.json", by series then shape.
    static let files: [String] = {
        var out: [String] = []
        let fm = FileManager.default
        for series in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted() {
            for f in ((try? fm.contentsOfDirectory(atPath: root + "/" + series)) ?? []).sorted()
            where f.hasSuffix(".json") {
                out.append(series + "/" + f)
            }
        }
        return out
    }()

    static func load(_ file: String) throws -> Arm64TruthCase {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(Arm64TruthCase.self, from: Data(contentsOf: URL(fileURLWithPath: root + "/" + file)))
    }

    static func num(_ s: String) -> UInt64 { UInt64(s.dropFirst(2), radix: 16)! }
    static func range(_ r: Range) -> AddressRange {
        AddressRange(first: PhysAddr(num(r.start)), last: PhysAddr(num(r.end)))!
    }

    /// The kernel's memblock.memory (its MEMBLOCK configuration block).
    var kernelMemory: [AddressRange] { (memblock.configuration?.memory ?? []).map(Self.range) }

    /// The boot lines as a dmesg text: what `kexec-sim import` and `kexec-sim crashkernel` read.
    var logText: String { lines.joined(separator: "\n") + "\n" }

    /// /sys/firmware/fdt: the recorded bytes, then the zeros QEMU padded the blob with.
    var fdtBytes: [UInt8] {
        var b = [UInt8](Data(base64Encoded: fdt.blobBase64) ?? Data())
        if fdt.zeroPaddedToSize, b.count < fdt.size { b += [UInt8](repeating: 0, count: fdt.size - b.count) }
        return b
    }

    /// crashkernel= as the command line gave it: the shape's value and any in the extra parameters.
    var crashkernelText: String? {
        let extra = (extraAppend ?? "").split(separator: " ").filter { $0.hasPrefix("crashkernel=") }
        guard let p = crashkernelParam else { return nil }
        return (["crashkernel=" + p] + extra.map(String.init)).joined(separator: " ")
    }

    /// 6.12 on a CPU with FEAT_LPA2 (52-bit VA): the shape that keeps `-cpu max` as it is.
    var withLpa2: Bool { series == "6.12" && !qemu.cpu.contains("lpa2=off") }

    /// The end of ZONE_DMA the kernel printed (exclusive).
    var dmaZoneEnd: PhysAddr? {
        guard let z = zones.zoneRanges.first(where: { $0.zone == "DMA" }), let e = z.end else { return nil }
        return PhysAddr(Self.num(e) + 1)
    }
}

@Suite struct Arm64TruthTests {
    /// 11 shapes per series (scripts/kernel-truth.d/shapes-arm64.tsv), and 6.12 once more with
    /// FEAT_LPA2 (the other series skip that shape).
    @Test func everySeriesIsRecorded() throws {
        let files = Arm64TruthCase.files
        #expect(files.count == 34)
        #expect(Set(files.map { $0.split(separator: "/")[0] }) == ["5.10", "6.1", "6.12"])
        #expect(files.filter { $0.hasPrefix("5.10/") }.count == 11)
        #expect(files.filter { $0.hasPrefix("6.1/") }.count == 11)
        #expect(files.filter { $0.hasPrefix("6.12/") }.count == 12)
    }

    /// The recorded boot lines import (MemblockImporter) to the memory the kernel had in memblock,
    /// the DMA zone it printed and the crashkernel ranges /proc/iomem lists.
    @Test(arguments: Arm64TruthCase.files) func logImportGivesTheKernelsMemory(_ file: String) throws {
        let t = try Arm64TruthCase.load(file)
        #expect(t.arch == "arm64")
        let m = try BootLog.parse(t.logText, file: file)
        #expect(m.format == .memblock, "\(file)")
        #expect(m.suggestedArch == .arm64)
        #expect(!t.kernelMemory.isEmpty, "\(file): no MEMBLOCK configuration recorded")
        #expect(m.memory.usable.ranges == t.kernelMemory, "\(file)")
        #expect(m.memory.totalRAM.raw == t.kernelMemory.reduce(0) { $0 + $1.size.raw }, "\(file)")
        #expect(m.dmaZoneLimit == t.dmaZoneEnd, "\(file)")
        #expect(m.crashkernelRanges == t.crashkernel.iomem.map(Arm64TruthCase.range).sorted(), "\(file)")
        // Without the zone lines, max_zone_phys on the map gives the same limit (Arm64Machine).
        let machine = Machine(arch: .arm64, memory: m.memory)
        #expect(machine.arm64DmaLimit == t.dmaZoneEnd, "\(file)")
    }

    /// The first kernel's /sys/firmware/fdt imports (DtbImporter) to the same memory.
    @Test(arguments: Arm64TruthCase.files) func fdtImportGivesTheKernelsMemory(_ file: String) throws {
        let t = try Arm64TruthCase.load(file)
        let bytes = t.fdtBytes
        #expect(bytes.count == t.fdt.size)
        let m = try BootLog.parse(bytes: bytes, file: file)
        #expect(m.format == .dtb)
        #expect(m.memory.usable.ranges == t.kernelMemory, "\(file)")
        #expect(m.memory.regions.allSatisfy { $0.type == .usable }, "\(file): QEMU virt has no no-map memory")
    }

    /// The reservation each version makes (CrashkernelByVersion, CrashkernelArm64), from the imported
    /// boot lines (memblock.memory, memblock.reserved before the reservation, the DMA zone) and
    /// crashkernel=: the ranges /proc/iomem lists and the kernel's lines, exactly.
    @Test(arguments: Arm64TruthCase.files) func reservationMatchesTheRealKernel(_ file: String) throws {
        let t = try Arm64TruthCase.load(file)
        let version = try #require(KernelVersion(t.series))
        guard let text = t.crashkernelText else {
            #expect(t.crashkernel.iomem.isEmpty)
            #expect(t.crashkernel.reservations.isEmpty)
            return
        }
        let imported = try BootLog.parse(t.logText, file: file)
        var m = Machine(arch: .arm64, memory: imported.memory)
        m.kernel = version
        m.earlyReservations = imported.earlyReservations
        let o = try #require(try m.crashkernelOutcome(text))
        #expect(o.rules == CrashkernelRules.of(.arm64, version))
        #expect(o.ranges.sorted() == t.crashkernel.iomem.map(Arm64TruthCase.range), "\(file)")
        #expect(o.messages == t.crashkernel.reservations.map(\.line), "\(file)")
        // The DMA limit the log printed gives the same answer as the one computed from the map.
        m.dmaZoneLimit = imported.dmaZoneLimit
        #expect(try m.crashkernelOutcome(text) == o, "\(file)")
    }

    /// kexec-tools' `-d` segment list (user space's view, kexec_load's argument) is what the kernel's
    /// own dump (machine_kexec.c kexec_image_info / kexec_segment_flush) lists, wherever it printed
    /// one; every crashkernel case has a crash load that worked.
    @Test(arguments: Arm64TruthCase.files) func kexecToolsSegmentsAreTheKernels(_ file: String) throws {
        let t = try Arm64TruthCase.load(file)
        let normal = try #require(t.loads["load-normal"], "\(file)")
        #expect(normal.kexecToolsSegments?.count == 4, "\(file): kernel, initrd, DTB, purgatory")
        if t.withLpa2 {
            // 6.12.95 with 52-bit VA: machine_kexec_post_load's trans_pgd_create_copy oopses (kexec
            // dies of SIGSEGV) and kexec_mutex stays taken: the crash load then gets EBUSY.
            #expect(normal.rc == 139, "\(file)")
            #expect(normal.lines.contains { $0.contains("pc : trans_pgd_create_copy+") }, "\(file)")
            #expect(t.loads["load-crash"]?.rc == 255, "\(file)")
            return
        }
        #expect(normal.rc == 0, "\(file)")
        for (step, load) in t.loads where step.hasPrefix("load-") && !step.hasSuffix("unload") {
            guard let kernel = load.kernelSegments else { continue }
            #expect(load.kexecToolsSegments == kernel, "\(file) \(step)")
        }
        if !t.crashkernel.iomem.isEmpty {
            let crash = try #require(t.loads["load-crash"], "\(file)")
            #expect(crash.rc == 0, "\(file)")
            // Kernel, initrd, DTB, purgatory and the ELF core header, all inside crashk_res.
            // crashk_res is the higher range when there is a low part too.
            let main = try #require(t.crashkernel.iomem.map(Arm64TruthCase.range).max { $0.first < $1.first })
            for s in crash.kexecToolsSegments ?? [] {
                let r = AddressRange(
                    start: PhysAddr(Arm64TruthCase.num(s.mem)), size: ByteCount(Arm64TruthCase.num(s.memsz)))!
                #expect(main.contains(r.first) && main.contains(r.last), "\(file) \(s)")
            }
            #expect(crash.kexecToolsSegments?.count == 5, "\(file)")
        }
    }
}
