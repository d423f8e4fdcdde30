import Foundation
import Testing

@testable import KexecModel

/// One Fixtures/kernel-truth case, as far as the crashkernel reservation goes.
private struct TruthCase: Decodable {
    struct Entry: Decodable {
        var start: String
        var end: String
        var type: String?
    }
    struct E820: Decodable {
        var bios: [Entry]
        var user: [Entry]?
    }
    struct Ramdisk: Decodable {
        var start: String
        var end: String
    }
    struct Reservation: Decodable { var line: String }
    struct Crash: Decodable {
        var reservations: [Reservation]
        var iomem: [Entry]
    }
    struct Qemu: Decodable { var append: String }
    var series: String
    var shape: String
    var crashkernel_param: String?
    var extra_append: String?
    var qemu: Qemu
    var e820: E820
    var ramdisk: Ramdisk?
    var crashkernel: Crash
    var iomem_boot: [String]
}

private let truthRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures/kernel-truth").path

/// The cases of a set, as paths below Fixtures/kernel-truth: SERIES/SHAPE.json (the recorded set) or
/// held-out/SERIES/SHAPE.json.
private func truthCases(in set: String) -> [String] {
    var out: [String] = []
    let fm = FileManager.default
    let root = set.isEmpty ? truthRoot : truthRoot + "/" + set
    for series in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted() where series != "held-out" {
        let dir = root + "/" + series
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { continue }
        for f in ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted() where f.hasSuffix(".json") {
            out.append((set.isEmpty ? "" : set + "/") + series + "/" + f)
        }
    }
    return out
}

private let truthFiles = truthCases(in: "")
/// Recorded on other machine shapes after the rules were fixed (scripts/kernel-truth.d/heldout.tsv).
private let heldOutFiles = truthCases(in: "held-out")

/// Every crashkernel= value of the case: the shape's own and any in its extra command line
/// (`crashkernel=96M,low` next to `384M,high`), as the kernel reads them all.
private func crashkernelValues(_ t: TruthCase) -> String? {
    guard let param = t.crashkernel_param else { return nil }
    let more = (t.extra_append ?? "").split(separator: " ").filter { $0.hasPrefix("crashkernel=") }
        .map { $0.dropFirst("crashkernel=".count) }
    return ([Substring(param)] + more).joined(separator: " ")
}

private func num(_ s: String) -> UInt64 { UInt64(s.dropFirst(2), radix: 16)! }

private func range(_ e: TruthCase.Entry) -> AddressRange {
    AddressRange(first: PhysAddr(num(e.start)), last: PhysAddr(num(e.end)))!
}

/// The e820 map the kernel ends up with (after `memmap=`: the `user:` map), as a MemoryMap.
private func memory(_ t: TruthCase) throws -> MemoryMap {
    let types: [String: RegionType] = [
        "usable": .usable, "reserved": .reserved, "ACPI data": .acpi, "ACPI NVS": .nvs,
    ]
    let entries = t.e820.user.flatMap { $0.isEmpty ? nil : $0 } ?? t.e820.bios
    return try MemoryMap(entries.map { Region(range: range($0), type: types[$0.type ?? ""] ?? .reserved) })
}

/// The first kernel's memblock reservations at reserve_crashkernel time, from what the case
/// recorded: its initrd, its image (iomem Kernel code … Kernel bss) and setup_log_buf's buffers
/// for the log_buf_len= the harness passes.
private func early(_ t: TruthCase) -> FirstKernelReservations {
    var e = FirstKernelReservations()
    if let rd = t.ramdisk {
        e.ranges.append(AddressRange(first: PhysAddr(num(rd.start)), last: PhysAddr(num(rd.end)))!)
    }
    func span(_ name: String) -> AddressRange? {
        guard let line = t.iomem_boot.first(where: { $0.hasSuffix(": " + name) }) else { return nil }
        let bounds = line.trimmingCharacters(in: .whitespaces).split(separator: " ")[0].split(separator: "-")
        return AddressRange(
            first: PhysAddr(UInt64(bounds[0], radix: 16)!), last: PhysAddr(UInt64(bounds[1], radix: 16)!))
    }
    if let code = span("Kernel code"), let bss = span("Kernel bss") {
        e.ranges.append(AddressRange(first: code.first, last: bss.last)!)
    }
    if let len = FirstKernelReservations.logBufLen(commandLine: t.qemu.append) {
        e.allocations = FirstKernelReservations.logBuffer(length: len)
    }
    return e
}

@Suite struct CrashkernelTruthTests {
    @Test func everySeriesIsRecorded() {
        #expect(truthFiles.count == 54)
        #expect(Set(truthFiles.map { $0.split(separator: "/")[0] }) == ["5.10", "6.1", "6.12"])
    }

    /// Every recorded reservation, exactly: the ranges /proc/iomem lists as Crash kernel and the
    /// lines the kernel printed, from the e820 map, the initrd, the image, the log buffer,
    /// crashkernel= and the version.
    @Test(arguments: truthFiles) func reservationMatchesTheRealKernel(_ file: String) throws {
        try compare(file)
    }

    /// The same on the held-out shapes (other sizes, `,high` with `,low`, another `@offset`,
    /// range bounds, memmap= holes, OVMF 2 and 8 GiB).
    @Test func heldOutSetIsRecorded() {
        #expect(heldOutFiles.count == 33)
        #expect(Set(heldOutFiles.map { $0.split(separator: "/")[1] }) == ["5.10", "6.1", "6.12"])
    }

    @Test(arguments: heldOutFiles) func heldOutReservationMatchesTheRealKernel(_ file: String) throws {
        try compare(file)
    }

    func compare(_ file: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: truthRoot + "/" + file))
        let t = try JSONDecoder().decode(TruthCase.self, from: data)
        guard let param = crashkernelValues(t) else {
            #expect(t.crashkernel.iomem.isEmpty)
            return
        }
        let version = try #require(KernelVersion(t.series))
        let o = try Crashkernel.reserve(
            param, in: try memory(t), arch: .x86_64, version: version, early: early(t))
        #expect(o.ranges.sorted() == t.crashkernel.iomem.map(range), "\(file)")
        // The harness also keeps later lines that merely mention crashkernel (5.10 echoes unknown
        // parameters indented, "    crashkernel=256M"): those are not the reservation's words.
        let said = t.crashkernel.reservations.map(\.line).filter { !$0.hasPrefix(" ") }
        #expect(o.messages == said, "\(file)")
    }

    /// The q35-16g case of issue 13: the map alone puts 256M at 0x6f000000 only by luck of the
    /// 16 MiB rounding; 2 GiB q35 shows the shift: the initrd (0x7f4fa000-0x7ffcffff) and the
    /// 18 MiB of log buffer under it push the reservation from 0x6f000000 to 0x6e000000.
    @Test func initrdAndLogBufferPushTheReservationDown() throws {
        let ram = try MemoryMap([
            Region(range: AddressRange(first: PhysAddr(0x10_0000), last: PhysAddr(0x7ffd_efff))!, type: .usable)
        ])
        let v61 = KernelVersion(6, 1)
        let bare = try Crashkernel.reserve("256M", in: ram, arch: .x86_64, version: v61)
        #expect(bare.ranges == [AddressRange(first: PhysAddr(0x6f00_0000), last: PhysAddr(0x7eff_ffff))!])
        let e = FirstKernelReservations(
            ranges: [AddressRange(first: PhysAddr(0x7f4f_a000), last: PhysAddr(0x7ffc_ffff))!],
            allocations: FirstKernelReservations.logBuffer(length: .mib(4)))
        #expect(e.allocations == [.mib(4), .mib(3), .mib(11)])
        let shifted = try Crashkernel.reserve("256M", in: ram, arch: .x86_64, version: v61, early: e)
        #expect(shifted.ranges == [AddressRange(first: PhysAddr(0x6e00_0000), last: PhysAddr(0x7dff_ffff))!])
        #expect(shifted.messages == ["Reserving 256MB of memory at 1760MB for crashkernel (System RAM: 2046MB)"])
        let generic = try Crashkernel.reserve("256M", in: ram, arch: .x86_64, version: KernelVersion(6, 12), early: e)
        #expect(generic.messages == ["crashkernel reserved: 0x000000006e000000 - 0x000000007e000000 (256 MB)"])
    }

    /// Each version's words, failures included (6.1.192 arch/x86/kernel/setup.c; 5.10's low-part
    /// line from before 5.15; kernel/crash_reserve.c for 6.7+).
    @Test func messagesByVersion() throws {
        // pc-8g: RAM below 4 GiB to 0xbffdffff, 4-8 GiB above.
        let m8 = try MemoryMap([
            Region(range: AddressRange(first: PhysAddr(0x10_0000), last: PhysAddr(0xbffd_ffff))!, type: .usable),
            Region(range: AddressRange(first: PhysAddr(0x1_0000_0000), last: PhysAddr(0x2_3fff_ffff))!, type: .usable),
        ])
        func say(_ p: String, _ v: KernelVersion, _ m: MemoryMap) throws -> CrashkernelOutcome {
            try Crashkernel.reserve(p, in: m, arch: .x86_64, version: v)
        }
        let v510 = KernelVersion(5, 10)
        let v61 = KernelVersion(6, 1)
        let v612 = KernelVersion(6, 12)
        #expect(
            try say("256M,high", v510, m8).messages == [
                "kexec: Reserving the low 1M of memory for crashkernel",
                "Reserving 256MB of low memory at 2800MB for crashkernel (low RAM limit: 4096MB)",
                "Reserving 256MB of memory at 8960MB for crashkernel (System RAM: 8190MB)",
            ])
        #expect(
            try say("256M,high", v61, m8).messages == [
                "Reserving 256MB of low memory at 2800MB for crashkernel (low RAM limit: 4096MB)",
                "Reserving 256MB of memory at 8960MB for crashkernel (System RAM: 8190MB)",
            ])
        let high612 = try say("256M,high", v612, m8)
        #expect(
            high612.messages == [
                "crashkernel low memory reserved: 0xaf000000 - 0xbf000000 (256 MB)",
                "crashkernel reserved: 0x0000000230000000 - 0x0000000240000000 (256 MB)",
            ])
        #expect(high612.ranges.map(\.first) == [PhysAddr(0x2_3000_0000), PhysAddr(0xaf00_0000)])
        // Fixed base on memory that is not free, and no room at all.
        #expect(try say("256M@0xbf000000", v61, m8).messages == ["crashkernel reservation failed - memory is in use."])
        #expect(try say("256M@0xbf000000", v612, m8).messages == ["crashkernel reservation failed - memory is in use."])
        #expect(try say("16M@0x1100000", v61, m8).ranges.map(\.first) == [PhysAddr(0x110_0000)])
        #expect(try say("16M@0x1100000", v612, m8).messages == ["crashkernel reservation failed - memory is in use."])
        #expect(try say("9000M", v61, m8).messages == ["crashkernel reservation failed - No suitable area found."])
        #expect(try say("9000M", v612, m8).messages == [])
        #expect(try say("1G-2G:64M,2G-:9000M", v612, m8).messages == ["crashkernel: invalid size"])
        let small = try MemoryMap([
            Region(range: AddressRange(first: PhysAddr(0x10_0000), last: PhysAddr(0x0fff_ffff))!, type: .usable),
            Region(range: AddressRange(first: PhysAddr(0x1_0000_0000), last: PhysAddr(0x1_3fff_ffff))!, type: .usable),
        ])
        #expect(
            try say("512M", v61, small).messages == [
                "Cannot reserve 256MB crashkernel low memory, please try smaller size."
            ])
        #expect(try say("512M", v612, small).messages == ["cannot allocate crashkernel low memory (size:0x10000000)."])
        #expect(try say("1100M,high", v612, small).messages == ["cannot allocate crashkernel (size:0x44c00000)"])
    }

    /// --kernel recomputes ranges that came from crashkernel=, and keeps given ones.
    @Test func reservingForAnotherVersion() throws {
        var m = Machine(
            arch: .x86_64,
            memory: try MemoryMap([
                Region(range: AddressRange(first: PhysAddr(0x10_0000), last: PhysAddr(0x7ffd_ffff))!, type: .usable)
            ]))
        m.crashkernel = "256M"
        m.earlyReservations = FirstKernelReservations(
            ranges: [AddressRange(first: PhysAddr(0x7f13_f000), last: PhysAddr(0x7ffd_ffff))!],
            allocations: FirstKernelReservations.logBuffer(length: .mib(4)))
        m.crashkernelOrigin = .parameter
        #expect(
            try m.reservingCrashkernel(for: KernelVersion(6, 12)).crashkernelRanges.map(\.first) == [
                PhysAddr(0x6d00_0000)
            ])
        m.crashkernelOrigin = .given
        m.crashkernelRanges = [AddressRange(first: PhysAddr(0x2000_0000), last: PhysAddr(0x2fff_ffff))!]
        #expect(try m.reservingCrashkernel(for: KernelVersion(6, 12)).crashkernelRanges == m.crashkernelRanges)
    }
}
