import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

/// One recorded arm64 QEMU boot (Fixtures/kernel-truth/arm64/SERIES/SHAPE.json): the fields the
/// kexec-tools comparison reads. The first kernel's /sys/firmware/fdt is recorded as its blocks
/// (`blob_base64`, `blob_bytes`) and the blob's full `size` (QEMU pads it with zeros).
struct KexecToolsArm64TruthCase: Decodable {
    struct FdtRecord: Decodable {
        var size: Int?
        var blobBase64: String?
    }
    var series: String
    var shape: String
    var kernelVersion: String
    var payload: KexecToolsTruthCase.Payload
    var crashkernel: KexecToolsTruthCase.Crashkernel?
    var iomemBoot: [String]
    var fdt: FdtRecord?
    var loads: [String: KexecToolsTruthCase.Load]
}

/// Recorded arm64 `kexec -c -d -l` / `-p` runs against `loader: kexec-tools` plans; empty when
/// nothing is recorded yet.
enum KexecToolsArm64Truth {
    static let root = KernelTruth.root.appendingPathComponent("arm64")

    static func cases() throws -> [(file: String, truth: KexecToolsArm64TruthCase)] {
        guard FileManager.default.fileExists(atPath: root.path) else { return [] }
        let found: [(file: String, truth: KexecToolsArm64TruthCase)] = try KernelTruth.load(under: root)
        return found.map { ("arm64/" + $0.file, $0.truth) }
    }

    /// The first kernel: /proc/iomem at boot (its top-level System RAM is the memory map), the
    /// crashkernel ranges, the banner's version and /sys/firmware/fdt.
    static func machine(_ t: KexecToolsArm64TruthCase) throws -> Machine {
        guard let iomem = IomemResource.parse(t.iomemBoot) else { throw TruthError("\(t.shape): iomem_boot") }
        let ram = iomem.filter { $0.depth == 0 && $0.name == "System RAM" }.map {
            Region(range: $0.range, type: .usable)
        }
        let crash = try KexecToolsTruth.crashRanges(t.crashkernel, shape: t.shape)
        var m = Machine(name: t.shape, arch: .arm64, memory: try MemoryMap(ram), crashkernelRanges: crash)
        guard let v = KernelVersion(banner: t.kernelVersion) else { throw TruthError("banner \(t.kernelVersion)") }
        m.kernel = v
        m.iomem = iomem
        if let b64 = t.fdt?.blobBase64, let blob = Data(base64Encoded: b64) {
            var bytes = [UInt8](blob)
            if let size = t.fdt?.size, size > bytes.count { bytes += [UInt8](repeating: 0, count: size - bytes.count) }
            m.firstKernelFdt = bytes
        }
        return m
    }

    /// The Image as a synthetic kernel of the file's size with the header's image_size, which
    /// kexec-tools printed (`image_arm64_load: image_size: …`); text_offset must be 0 (every Image
    /// since v5.8).
    static func scenario(_ t: KexecToolsArm64TruthCase, type: ImageType) throws -> Scenario {
        var imageSize: UInt64?
        for line in t.loads.values.flatMap({ $0.kexecOutput ?? [] }) {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if line.hasPrefix("image_arm64_load: image_size:"), let v = parts.last { imageSize = UInt64(v, radix: 16) }
            if line.hasPrefix("image_arm64_load: text_offset:"), let v = parts.last, UInt64(v, radix: 16) != 0 {
                throw TruthError("\(t.shape): text_offset \(v)")
            }
        }
        guard let imageSize else { throw TruthError("\(t.shape): no `image_size` line") }
        var req = KexecRequest(
            syscall: .kexecLoad, type: type,
            kernel: PayloadSpec(size: ByteCount(t.payload.kernel.size), initSize: ByteCount(imageSize)),
            initrd: PayloadSpec(size: ByteCount(t.payload.initrd.size)),
            cmdline: type == .crash ? t.payload.crashAppend : t.payload.append)
        req.loader = .kexecTools
        return Scenario(
            name: "arm64/\(t.series)/\(t.shape) kexec-tools \(type.rawValue)", machine: try machine(t), kexec: req)
    }

    static func compare() throws -> KexecToolsTruth.Outcome {
        var o = KexecToolsTruth.Outcome()
        for (file, t) in try cases() {
            for (step, type) in [("load-normal", ImageType.normal), ("load-crash", .crash)] {
                guard let load = t.loads[step] else { continue }
                let recorded = load.kexecToolsSegments ?? []
                guard !recorded.isEmpty else { continue }
                guard case .planned(let plan) = try Planner.plan(try scenario(t, type: type)) else {
                    o.count(file, step, series: t.series, recorded: recorded, entry: load.kexecToolsEntry, plan: nil)
                    o.disagreements.append("\(file) \(step): not planned")
                    continue
                }
                o.count(file, step, series: t.series, recorded: recorded, entry: load.kexecToolsEntry, plan: plan)
            }
        }
        return o
    }
}

/// `loader: kexec-tools` on arm64 against Debian 12's kexec-tools 2.0.25 on Debian's arm64 kernels
/// under QEMU virt, for every case recorded in Fixtures/kernel-truth/arm64 (none: nothing to do).
@Suite struct KexecToolsArm64TruthTests {
    @Test func everyRecordedArm64KexecLoadAgrees() throws {
        let o = try KexecToolsArm64Truth.compare()
        for (s, r) in o.perSeries.sorted(by: { $0.key < $1.key }) {
            print(
                "kexec-tools arm64 truth \(s): \(r.exact)/\(r.loads) loads exact, "
                    + "\(r.segmentsExact)/\(r.segments) segments")
        }
        for d in o.disagreements { print("kexec-tools arm64 truth: " + d) }
        #expect(o.disagreements.isEmpty)
        #expect(o.loadsExact == o.loads && o.segmentsExact == o.segments && o.entries == o.loads)
    }
}
