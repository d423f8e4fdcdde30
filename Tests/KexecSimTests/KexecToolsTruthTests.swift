import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

/// What Debian 12's kexec-tools 2.0.25 printed with `kexec -c -d -l` / `-p` in each recorded QEMU
/// boot (Fixtures/kernel-truth, README there): only the fields the comparison reads.
struct KexecToolsTruthCase: Decodable {
    struct File: Decodable { var size: UInt64 }
    struct Payload: Decodable {
        var kernel: File
        var initrd: File
        var append: String
        var crashAppend: String
    }
    struct E820: Decodable {
        struct Entry: Decodable {
            var start: String
            var end: String
            var type: String
        }
        var bios: [Entry]
    }
    struct Range: Decodable {
        var start: String
        var end: String
    }
    struct Crashkernel: Decodable { var iomem: [Range]? }
    struct Placement: Decodable {
        var what: String
        var bufsz: String?
    }
    struct Segment: Decodable {
        var index: Int
        var bufsz: String
        var mem: String
        var memsz: String
    }
    struct Load: Decodable {
        var rc: Int?
        var kexecToolsSegments: [Segment]?
        var kexecToolsEntry: String?
        var kexecOutput: [String]?
        var kernelPlacements: [Placement]?
    }
    struct Qemu: Decodable { var firmware: String }
    var series: String
    var shape: String
    var kernelVersion: String
    var payload: Payload
    var e820: E820
    var crashkernel: Crashkernel?
    var iomemBoot: [String]
    var qemu: Qemu
    var loads: [String: Load]

}

/// Turns a recorded x86_64 boot into `loader: kexec-tools` scenarios and compares every segment.
enum KexecToolsTruth {
    static let series = ["5.10", "6.1", "6.12"]
    /// OVMF 2022.11 under QEMU 7.2 (the q35-ovmf shapes) exposes 6 EFI runtime map entries: the
    /// harness does not record /sys/firmware/efi/runtime-map, so this is read off kexec-tools'
    /// efi_memmap segment (bufsz 0xf0 = 6 × sizeof(efi_mem_descriptor)).
    static let ovmfRuntimeMapEntries = 6

    static func hex(_ s: String) -> UInt64? { s.hasPrefix("0x") ? UInt64(s.dropFirst(2), radix: 16) : nil }

    /// The crashkernel ranges /proc/iomem listed (none without crashkernel=).
    static func crashRanges(_ c: KexecToolsTruthCase.Crashkernel?, shape: String) throws -> [AddressRange] {
        try (c?.iomem ?? []).map { c -> AddressRange in
            guard let a = hex(c.start), let b = hex(c.end), let r = AddressRange(first: PhysAddr(a), last: PhysAddr(b))
            else { throw TruthError("\(shape): crashkernel \(c.start)-\(c.end)") }
            return r
        }
    }

    static func cases() throws -> [(file: String, truth: KexecToolsTruthCase)] {
        try KernelTruth.load(under: KernelTruth.root, series: series)
    }

    /// The first kernel: the firmware's e820 table (what /sys/firmware/memmap lists), /proc/iomem
    /// at boot, its crashkernel ranges, the version of its banner, boot_params.acpi_rsdp_addr (the
    /// value kexec-tools appended to the crash command line, which is where the recording has it)
    /// and, under OVMF, the EFI runtime map.
    static func machine(_ t: KexecToolsTruthCase) throws -> Machine {
        let types: [String: RegionType] = [
            "usable": .usable, "reserved": .reserved, "ACPI data": .acpi, "ACPI NVS": .nvs,
        ]
        let regions = try t.e820.bios.map { e -> Region in
            guard let a = hex(e.start), let b = hex(e.end), let r = AddressRange(first: PhysAddr(a), last: PhysAddr(b)),
                let type = types[e.type]
            else { throw TruthError("\(t.shape): e820 entry \(e.start)-\(e.end) \(e.type)") }
            return Region(range: r, type: type)
        }
        let crash = try crashRanges(t.crashkernel, shape: t.shape)
        var m = Machine(name: t.shape, arch: .x86_64, memory: try MemoryMap(regions), crashkernelRanges: crash)
        guard let v = KernelVersion(banner: t.kernelVersion) else { throw TruthError("banner \(t.kernelVersion)") }
        m.kernel = v
        guard let iomem = IomemResource.parse(t.iomemBoot) else { throw TruthError("\(t.shape): iomem_boot") }
        m.iomem = iomem
        for line in t.loads.values.flatMap({ $0.kexecOutput ?? [] }) {
            if let r = line.range(of: " acpi_rsdp=0x") {
                let digits = line[r.upperBound...].prefix { $0.isHexDigit }
                m.acpiRsdp = UInt64(digits, radix: 16).map(PhysAddr.init)
            }
        }
        if t.qemu.firmware == "ovmf" { m.efiRuntimeMapEntries = ovmfRuntimeMapEntries }
        return m
    }

    /// The payload as a synthetic bzImage: the setup part is the file's size minus the kernel
    /// segment's buffer the kernel itself printed for its own kexec_file_load (5.10.262: 0x3e00,
    /// setup_sects 30; 6.1 and 6.12: 0x5000); init_size as kexec-tools printed it.
    static func scenario(_ t: KexecToolsTruthCase, type: ImageType) throws -> Scenario {
        var initSize: UInt64?
        var setup: UInt64 = 0x5000
        for load in t.loads.values {
            for line in load.kexecOutput ?? [] where line.hasPrefix("kernel init_size 0x") {
                initSize = hex(String(line.dropFirst("kernel init_size ".count)))
            }
            if let k = load.kernelPlacements?.first(where: { $0.what == "64bit kernel" }), let b = k.bufsz.flatMap(hex)
            {
                setup = t.payload.kernel.size - b
            }
        }
        guard let initSize else { throw TruthError("\(t.shape): no `kernel init_size` line") }
        let kernel = PayloadSpec(
            size: ByteCount(t.payload.kernel.size - setup), initSize: ByteCount(initSize), setupSize: ByteCount(setup))
        var req = KexecRequest(
            syscall: .kexecLoad, type: type, kernel: kernel,
            initrd: PayloadSpec(size: ByteCount(t.payload.initrd.size)),
            cmdline: type == .crash ? t.payload.crashAppend : t.payload.append)
        req.loader = .kexecTools
        // The recordings ran before the guest's random pool was ready: no RNG seed segment.
        req.rngSeed = false
        return Scenario(
            name: "\(t.series)/\(t.shape) kexec-tools \(type.rawValue)", machine: try machine(t), kexec: req)
    }

    struct Outcome {
        var loads = 0
        var loadsExact = 0
        var segments = 0
        var segmentsExact = 0
        var entries = 0
        var refused = 0
        var refusedAgree = 0
        var perSeries: [String: (loads: Int, exact: Int, segments: Int, segmentsExact: Int)] = [:]
        var disagreements: [String] = []

        /// Counts one recorded load against its plan (nil: not planned): the segment count, every
        /// segment's mem, memsz and bufsz, and the entry, exactly.
        mutating func count(
            _ file: String, _ step: String, series: String, recorded: [KexecToolsTruthCase.Segment], entry: String?,
            plan: Plan?
        ) {
            loads += 1
            segments += recorded.count
            var row = perSeries[series] ?? (0, 0, 0, 0)
            row.loads += 1
            row.segments += recorded.count
            defer { perSeries[series] = row }
            guard let plan else { return }
            var exact = plan.segments.count == recorded.count
            if !exact {
                disagreements.append("\(file) \(step): \(plan.segments.count) segments, kexec-tools \(recorded.count)")
            }
            for (s, r) in zip(plan.segments, recorded) {
                if s.mem.raw == hex(r.mem) && s.memsz.raw == hex(r.memsz) && s.bufsz.raw == hex(r.bufsz) {
                    segmentsExact += 1
                    row.segmentsExact += 1
                } else {
                    exact = false
                    disagreements.append(
                        "\(file) \(step) segment \(r.index) \(s.name): ours mem \(s.mem) memsz \(s.memsz.raw) "
                            + "bufsz \(s.bufsz.raw), kexec-tools \(r.mem) \(r.memsz) \(r.bufsz)")
                }
            }
            if let e = entry.flatMap(hex), plan.purgatoryEntry?.raw == e {
                entries += 1
            } else {
                exact = false
                disagreements.append(
                    "\(file) \(step): entry \(String(describing: plan.purgatoryEntry)), kexec-tools \(entry ?? "none")")
            }
            if exact {
                loadsExact += 1
                row.exact += 1
            }
        }
    }

    static func compare() throws -> Outcome {
        var o = Outcome()
        for (file, t) in try cases() {
            for (step, type) in [("load-normal", ImageType.normal), ("load-crash", .crash)] {
                guard let load = t.loads[step] else { continue }
                let recorded = load.kexecToolsSegments ?? []
                let sc = try scenario(t, type: type)
                let outcome = try Planner.plan(sc)
                if recorded.isEmpty {
                    guard let rc = load.rc, rc != 0 else { continue }
                    o.refused += 1
                    if case .rejected(let r, _) = outcome, r.errno == .EFAILED {
                        o.refusedAgree += 1
                    } else {
                        o.disagreements.append("\(file) \(step): kexec-tools failed (rc \(rc)), the plan does not")
                    }
                    continue
                }
                guard case .planned(let plan) = outcome else {
                    o.count(file, step, series: t.series, recorded: recorded, entry: load.kexecToolsEntry, plan: nil)
                    if case .rejected(let r, _) = outcome { o.disagreements.append("\(file) \(step): rejected: \(r)") }
                    continue
                }
                o.count(file, step, series: t.series, recorded: recorded, entry: load.kexecToolsEntry, plan: plan)
            }
        }
        return o
    }
}

/// `loader: kexec-tools` placement against what Debian 12's kexec-tools 2.0.25 did in QEMU on
/// Debian's 5.10, 6.1 and 6.12 kernels: every segment's mem, memsz and bufsz, and the entry.
@Suite struct KexecToolsTruthTests {
    @Test func everyRecordedKexecLoadAgrees() throws {
        let o = try KexecToolsTruth.compare()
        for (s, r) in o.perSeries.sorted(by: { $0.key < $1.key }) {
            print(
                "kexec-tools truth \(s): \(r.exact)/\(r.loads) loads exact, \(r.segmentsExact)/\(r.segments) segments")
        }
        for d in o.disagreements { print("kexec-tools truth: " + d) }
        // 5.10: 32 loads (162 segments), 6.1: 31 (156), 6.12: 32 (162); the OVMF boots add 2 EFI
        // segments. 6.1's pc-1g-range crash load failed in kexec-tools ("Could not find a free
        // area": its 63.6 MiB kernel does not fit the 64 MiB crashkernel next to the rest).
        #expect(o.disagreements.isEmpty)
        #expect(o.loads == 95 && o.loadsExact == 95)
        #expect(o.segments == o.segmentsExact)
        #expect(o.segments == 480)
        #expect(o.entries == 95)
        #expect(o.refused == 1 && o.refusedAgree == 1)
    }
}
