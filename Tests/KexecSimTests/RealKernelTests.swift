import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

/// `.kernels/vmlinuz` of the repository: a Debian x86_64 kernel that scripts/fetch-debian-kernel
/// downloads (CI runs it before the tests; without apt the real-kernel test is skipped).
enum DebianKernel {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".kernels")
    static let path = directory.appendingPathComponent("vmlinuz").path
    static var present: Bool { FileManager.default.fileExists(atPath: path) }
    /// `.kernels/Image-arm64`: Debian's arm64 kernel, a plain Image (best effort in the script).
    static let arm64Path = directory.appendingPathComponent("Image-arm64").path
    static var arm64Present: Bool { FileManager.default.fileExists(atPath: arm64Path) }
}

/// A temporary file holding `bytes`, removed by `remove()`.
struct TempFile {
    let path: String
    init(_ bytes: [UInt8], name: String) throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-\(UUID().uuidString)-\(name)")
            .path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A small bzImage built byte by byte (setup header at the bootparam.h offsets).
func syntheticBzImage(payload: Int = 0x1_0000, initSize: UInt32 = 0x20_0000, xloadflags: UInt16 = 0x7f) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 5 * 512 + payload)
    func put(_ off: Int, _ v: UInt64, _ n: Int) {
        for i in 0..<n { b[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }
    put(0x1f1, 4, 1)  // setup_sects
    put(0x1fe, 0xaa55, 2)
    put(0x200, 0x6aeb, 2)  // jmp short: header ends at 0x26c
    put(0x202, 0x5372_6448, 4)  // "HdrS"
    put(0x206, 0x020f, 2)
    put(0x211, 1, 1)  // LOADED_HIGH
    put(0x230, 0x20_0000, 4)
    put(0x234, 1, 1)
    put(0x236, UInt64(xloadflags), 2)
    put(0x238, 2047, 4)
    put(0x258, 0x100_0000, 8)
    put(0x260, UInt64(initSize), 4)
    for i in 0..<payload { b[5 * 512 + i] = UInt8(truncatingIfNeeded: (i &* 131) >> 3) }
    return b
}

func fileScenario(kernel: String, initrd: PayloadSpec?, cmdline: String = "console=ttyS0") -> Scenario {
    Scenario(
        name: "x86_64 bzImage file", machine: TestMachines.fourGiB(),
        kexec: KexecRequest(
            syscall: .kexecFileLoad, type: .normal, kernel: PayloadSpec(file: kernel), initrd: initrd,
            cmdline: cmdline),
        expect: Expectation(verdict: .landed))
}

func evidence(_ v: Verdict, _ key: String) -> String? { v.evidenceByName[key] }

@Suite struct RealKernelTests {
    @Test func syntheticBzImageLands() throws {
        let kernel = try TempFile(syntheticBzImage(), name: "bzImage")
        let initrd = try TempFile(Array("070701 tiny initramfs".utf8), name: "initrd")
        defer {
            kernel.remove()
            initrd.remove()
        }
        let sc = fileScenario(kernel: kernel.path, initrd: PayloadSpec(file: initrd.path))
        guard case .planned(let plan) = try Planner.plan(sc) else {
            Issue.record("the synthetic bzImage was rejected")
            return
        }
        let k = try #require(plan.segments.first { $0.role == .kernel })
        let i = try #require(plan.segments.first { $0.role == .initrd })
        let bp = try #require(plan.segments.first { $0.role == .bootParams })
        // bzImage64_load: buffer = protected-mode part, memsz = PAGE_ALIGN(init_size), 2 MiB aligned,
        // at or above pref_address; entry at +0x200.
        #expect(k.bytes == Array(syntheticBzImage()[(5 * 512)...]))
        #expect(k.memsz == .mib(2))
        #expect(k.mem.raw % 0x20_0000 == 0)
        #expect(k.mem.raw >= 0x100_0000)
        #expect(plan.kernelEntry == PhysAddr(k.mem.raw + 0x200))
        #expect(i.bytes == Array("070701 tiny initramfs".utf8))
        #expect(i.memsz == .kib(4))
        // boot_params: the image's setup header, then the loader's own fields.
        func le(_ off: Int, _ n: Int) -> UInt64 {
            (0..<n).reduce(0) { $0 | UInt64(bp.bytes[off + $1]) << (8 * UInt64($1)) }
        }
        #expect(le(0x206, 2) == 0x020f)
        #expect(le(0x236, 2) == 0x7f)
        #expect(le(0x238, 4) == 2047)  // cmdline_size from the image
        #expect(le(0x260, 4) == 0x20_0000)
        #expect(le(0x210, 1) == 0xd0)  // type_of_loader
        #expect(le(0x211, 1) == 0)  // loadflags
        #expect(le(0x218, 4) == i.mem.raw & 0xffff_ffff)
        #expect(le(0x21c, 4) == 21)
        #expect(le(0x0c0, 4) == i.mem.raw >> 32)
        #expect(le(0x228, 4) == (bp.mem.raw + 0x1000) & 0xffff_ffff)
        #expect(le(0x1e8, 1) == 7)  // e820 entries still there

        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed, "\(r.verdict.summary)")
        #expect(evidence(r.verdict, "bzimage_protocol") == "2.15")
        #expect(evidence(r.verdict, "bzimage_init_size") == "0x200000 (2MiB)")
        #expect(evidence(r.verdict, "bzimage_kernel_alignment") == "0x200000")
        #expect(
            evidence(r.verdict, "bzimage_xloadflags")
                == "0x7f (KERNEL_64|CAN_BE_LOADED_ABOVE_4G|EFI_HANDOVER_32|EFI_HANDOVER_64|EFI_KEXEC|5LEVEL|5LEVEL_ENABLED)"
        )
        #expect(evidence(r.verdict, "initrd_file") == "\(initrd.path) (21 bytes)")
    }

    @Test func notABzImageIsENOEXEC() throws {
        let junk = try TempFile([UInt8](repeating: 0x90, count: 4096), name: "junk")
        defer { junk.remove() }
        let r = try Runner.run(fileScenario(kernel: junk.path, initrd: nil))
        #expect(r.verdict.kind == .rejected)
        #expect(r.verdict.errno == "ENOEXEC")
        #expect(evidence(r.verdict, "check") == "bzImage64_probe")
        #expect(evidence(r.verdict, "detail") == "not a bzImage: no \"HdrS\" magic at 0x202 (found 0x90909090)")
    }

    @Test func thirtyTwoBitImageIsENOEXEC() throws {
        let k = try TempFile(syntheticBzImage(xloadflags: 0), name: "bzImage32")
        defer { k.remove() }
        let r = try Runner.run(fileScenario(kernel: k.path, initrd: nil))
        #expect(r.verdict.errno == "ENOEXEC")
        #expect(
            evidence(r.verdict, "detail")
                == "not a bzImage64: xloadflags 0x0 has XLF_KERNEL_64 clear (32-bit entry only)")
    }

    @Test func commandLineLongerThanCmdlineSizeIsEINVAL() throws {
        let k = try TempFile(syntheticBzImage(), name: "bzImage")
        defer { k.remove() }
        let r = try Runner.run(
            fileScenario(kernel: k.path, initrd: nil, cmdline: String(repeating: "x", count: 2047)))
        #expect(r.verdict.errno == "EINVAL")
        #expect(evidence(r.verdict, "check") == "bzImage64_load")
    }

    @Test func missingFileIsAnInputError() {
        #expect(throws: PlanError.self) {
            try Runner.run(fileScenario(kernel: "/nonexistent/kexec-sim/vmlinuz", initrd: nil))
        }
    }

    /// Debian's kernel, relocated and digest-checked in the emulator (4 GiB machine, tiny initrd:
    /// purgatory's sha256 covers the kernel's PAGE_ALIGN(init_size), about 64 MiB).
    @Test(.enabled(if: DebianKernel.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel (needs apt)"))
    func debianKernelLands() throws {
        let header = try BzImage.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: DebianKernel.path))))
        let initrd = try TempFile([UInt8](repeating: 0x5a, count: 4096), name: "initrd")
        defer { initrd.remove() }
        let clock = ContinuousClock()
        let start = clock.now
        let r = try Runner.run(fileScenario(kernel: DebianKernel.path, initrd: PayloadSpec(file: initrd.path)))
        let wall = clock.now - start
        #expect(r.verdict.kind == .landed, "\(r.verdict.summary)")
        #expect(evidence(r.verdict, "bzimage_protocol") == header.versionString)
        #expect(
            evidence(r.verdict, "bzimage_init_size")
                == "\(hex(UInt64(header.initSize))) (\(formatSize(UInt64(header.initSize))))")
        #expect(evidence(r.verdict, "bzimage_kernel_alignment") == "0x200000")
        #expect(
            evidence(r.verdict, "bzimage_xloadflags")?.hasPrefix("\(hex(UInt64(header.xloadflags))) (KERNEL_64|")
                == true)
        #expect(evidence(r.verdict, "bzimage_kernel_version") == header.kernelVersion)
        print(
            "debian kernel \(header.kernelVersion ?? "?"): \(r.verdict.kind.rawValue) in \(wall) (plan "
                + String(
                    format: "%.2f s, setup %.2f s, relocation %.2f s, purgatory %.2f s, verify %.2f s); ",
                    r.stats.planSeconds, r.stats.setupSeconds, r.stats.relocationSeconds, r.stats.purgatorySeconds,
                    r.stats.verifySeconds)
                + r.verdict.evidence.filter { $0.key.name.hasPrefix("bzimage_") || $0.key.name == "segments" }
                .map { "\($0.key.name)=\($0.value)" }.joined(separator: "; "))
    }
}
