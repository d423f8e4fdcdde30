import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

/// arm64 kexec_file_load of real Image files: image_load's placement, load_other_segments' order
/// and windows, the header in the evidence, and a Debian Image through the emulator.
@Suite(.serialized) struct Arm64ImageRunTests {
    /// An Image: the header, then `length - 64` bytes of a pattern.
    static func image(textOffset: UInt64 = 0x8_0000, imageSize: UInt64 = 0x30_0000, length: Int = 0x2_0000)
        -> [UInt8]
    {
        var b = Arm64Image.header(textOffset: textOffset, imageSize: imageSize, flags: 0xa)
        b += (64..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        return b
    }

    static func machine(_ ranges: [(UInt64, UInt64)]) -> Machine {
        let map = try! MemoryMap(ranges.map { TestMachines.region($0.0, $0.1, .usable) })
        return Machine(name: "arm64 test", arch: .arm64, platform: .generic, memory: map)
    }

    static func scenario(
        kernel: String, initrd: PayloadSpec?, machine: Machine = machine([(0x4000_0000, 0x1_3fff_ffff)]),
        relocation: RelocationMode = .mmuOff
    ) -> Scenario {
        Scenario(
            name: "arm64 Image file", machine: machine,
            kexec: KexecRequest(
                syscall: .kexecFileLoad, type: .normal, kernel: PayloadSpec(file: kernel), initrd: initrd,
                cmdline: "console=ttyAMA0"),
            policy: .arm64(Arm64Policy(relocation: relocation)), expect: Expectation(verdict: .landed))
    }

    func ev(_ r: RunResult) -> [String: String] { r.verdict.evidenceByName }

    /// "name@0x…+size" entries of the landed evidence, by name.
    func segments(_ r: RunResult) -> [String: String] {
        var out: [String: String] = [:]
        for item in (ev(r)["segments"] ?? "").split(separator: " ") {
            let parts = item.split(separator: "@")
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }

    @Test func textOffsetImageLandsWithItsPlacement() throws {
        let kernel = try TempFile(Self.image(), name: "Image")
        let initrd = try TempFile([UInt8](repeating: 0x5a, count: 0x1_2345), name: "initrd")
        defer {
            kernel.remove()
            initrd.remove()
        }
        let r = try Runner.run(Self.scenario(kernel: kernel.path, initrd: PayloadSpec(file: initrd.path)))
        #expect(r.verdict.kind == .landed)
        // Base 0x40000000 (2 MiB aligned, bottom-up from DRAM start) + text_offset 0x80000; memsz
        // PAGE_ALIGN(0x300000 + 0x80000) - 0x80000 = 0x300000. The initrd goes right above the
        // reservation (0x40380000), the DTB top-down on the last 2 MiB boundary (0x13fe00000), and
        // purgatory top-down below the end of RAM.
        #expect(ev(r)["entry"] == "0x40080000")
        let s = segments(r)
        #expect(s["kernel"] == "0x40080000+3MiB")
        #expect(s["initrd"] == "0x40380000+76KiB")
        #expect(s["dtb"]?.hasPrefix("0x13fe00000+") == true)
        #expect(ev(r)["x0_dtb"] == "0x13fe00000")
        #expect(ev(r)["image_text_offset"] == "0x80000")
        #expect(ev(r)["image_size"] == "0x300000 (3MiB)")
        #expect(ev(r)["image_flags"] == "0xa (LE, page size 4K, phys base anywhere)")
        #expect(ev(r)["image_efi_stub"] == "yes, PE header at 0x40")
        #expect(ev(r)["kernel_file"] == "\(kernel.path) (131072 bytes)")
        #expect(ev(r)["initrd_file"] == "\(initrd.path) (74565 bytes)")
    }

    @Test func shippedTinyImageLands() throws {
        let r = try Runner.run(try fixture("arm64-image-file.yaml"))
        #expect(r.verdict.kind == .landed)
        #expect(ev(r)["entry"] == "0x40080000")
        let s = segments(r)
        #expect(s["kernel"] == "0x40080000+2MiB")
        #expect(s["initrd"] == "0x40280000+3MiB")
        #expect(ev(r)["kernel_file"]?.hasSuffix("arm64-tiny.Image (65664 bytes)") == true)
        #expect(ev(r)["image_efi_stub"] == "no")
        // The file's own bytes at the entry: code0 "b stext" (0x14000010), then the pattern.
        let plan = try Arm64Planner.plannedSegments(try fixture("arm64-image-file.yaml"))
        let k = try #require(plan.first { $0.role == .kernel })
        #expect(Array(k.bytes.prefix(4)) == [0x10, 0x00, 0x00, 0x14])
        #expect(k.bytes.count == 65664 && k.bytes[0x80] == 11 && k.bytes[0x81] == 48)
    }

    /// A crash load of an Image: everything inside the crashkernel region, the ELF core header 64 KiB
    /// aligned and top-down above the kernel, named in the DTB's /chosen linux,elfcorehdr.
    @Test func crashImageLoadCarriesTheElfCoreHeader() throws {
        let kernel = try TempFile(Self.image(), name: "Image")
        defer { kernel.remove() }
        var m = Self.machine([(0x4000_0000, 0x1_3fff_ffff)])
        m.crashkernelRanges = [AddressRange(first: PhysAddr(0xe000_0000), last: PhysAddr(0xefff_ffff))!]
        var sc = Self.scenario(kernel: kernel.path, initrd: PayloadSpec(size: .mib(4)), machine: m)
        sc.kexec?.type = .crash
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed)
        let segs = try Arm64Planner.plannedSegments(sc)
        let k = try #require(segs.first { $0.role == .kernel })
        let h = try #require(segs.first { $0.role == .elfcorehdr })
        let dtb = try #require(segs.first { $0.role == .dtb })
        // Kernel at the region's start + text_offset; the header in the region's last 64 KiB block,
        // 64 + 56 × (1 CPU note + vmcoreinfo + 2 RAM ranges outside the region + kernel text) = 344
        // bytes, rounded up to ELF_CORE_HEADER_ALIGN: 4096.
        #expect(k.mem == PhysAddr(0xe008_0000))
        #expect(h.mem == PhysAddr(0xefff_0000) && h.bufsz == ByteCount(4096))
        let chosen = try #require(try Fdt.decode(dtb.bytes).root.child("chosen"))
        // Two 64-bit cells each: address, size.
        #expect(chosen.property("linux,elfcorehdr")?.value == FdtProperty.ranges("", [(0xefff_0000, 4096)]).value)
        #expect(
            chosen.property("linux,usable-memory-range")?.value
                == FdtProperty.ranges("", [(0xe000_0000, 0x1000_0000)]).value)
    }

    @Test func kernelMovesWhenTheInitrdWindowHasNoRoom() throws {
        // 40 MiB at 1 GiB, then 1 GiB at 64 GiB: the kernel fits the first range but the 16 MiB
        // initrd does not fit above it there, and 64 GiB is past the 32 GiB window from the
        // kernel's 1 GiB boundary. image_load takes the kernel back and retries above it: both land
        // at 64 GiB.
        let m = Self.machine([(0x4000_0000, 0x4280_0000 - 1), (0x10_0000_0000, 0x10_3fff_ffff)])
        let kernel = try TempFile(Self.image(textOffset: 0, imageSize: 0x200_0000), name: "Image")
        defer { kernel.remove() }
        let r = try Runner.run(
            Self.scenario(kernel: kernel.path, initrd: PayloadSpec(size: .mib(16)), machine: m, relocation: .mmuOn))
        #expect(r.verdict.kind == .landed)
        let s = segments(r)
        #expect(s["kernel"] == "0x1000000000+32MiB")
        #expect(s["initrd"] == "0x1002000000+16MiB")
        #expect(s["dtb"]?.hasPrefix("0x103fe00000+") == true)
    }

    @Test func headerProblemsAreRejections() throws {
        var bad = Self.image()
        bad[56] = 0  // magic
        let badFile = try TempFile(bad, name: "Image")
        let short = try TempFile(Array(Self.image().prefix(40)), name: "Image")
        var big = Self.image()
        big.replaceSubrange(24..<32, with: [0xb, 0, 0, 0, 0, 0, 0, 0])  // big endian
        let bigFile = try TempFile(big, name: "Image")
        defer { [badFile, short, bigFile].forEach { $0.remove() } }
        for (file, check, detail) in [
            (badFile, "image_probe", "not an arm64 Image: magic at 0x38 is 0x644d5200, not 0x644d5241 (\"ARM\\x64\")"),
            (short, "image_probe", "file is 40 bytes, shorter than the 64-byte arm64 Image header"),
            (
                bigFile, "image_load",
                "the Image is big endian, the running kernel is not, and the CPU has no mixed-endian support"
            ),
        ] {
            let r = try Runner.run(Self.scenario(kernel: file.path, initrd: nil))
            #expect(r.verdict.kind == .rejected)
            #expect(ev(r)["errno"] == "EINVAL")
            #expect(ev(r)["check"] == check)
            #expect(ev(r)["detail"] == detail)
        }
    }

    @Test func imageLargerThanRAMIsRejected() throws {
        // image_size 2 GiB on a 1 GiB machine: no hole for the kernel.
        let kernel = try TempFile(Self.image(textOffset: 0, imageSize: 0x8000_0000), name: "Image")
        defer { kernel.remove() }
        let r = try Runner.run(
            Self.scenario(kernel: kernel.path, initrd: nil, machine: Self.machine([(0x4000_0000, 0x7fff_ffff)])))
        #expect(r.verdict.kind == .rejected)
        #expect(ev(r)["errno"] == "EADDRNOTAVAIL")
        #expect(ev(r)["check"] == "kexec_locate_mem_hole")
    }

    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func debianImageLands() throws {
        let initrd = try TempFile([UInt8](repeating: 0xa5, count: 0x30_0000), name: "initrd")
        defer { initrd.remove() }
        let size = try FileManager.default.attributesOfItem(atPath: DebianKernel.arm64Path)[.size] as? Int
        let r = try Runner.run(
            Self.scenario(kernel: DebianKernel.arm64Path, initrd: PayloadSpec(file: initrd.path), relocation: .mmuOn))
        #expect(r.verdict.kind == .landed)
        #expect(ev(r)["entry"] == "0x40000000")
        #expect(ev(r)["kernel_file"] == "\(DebianKernel.arm64Path) (\(size ?? -1) bytes)")
        // Debian's arm64 kernels: an EFI stub, text_offset 0, LE, 4K pages, anywhere in memory.
        #expect(ev(r)["image_text_offset"] == "0x0")
        #expect(ev(r)["image_flags"] == "0xa (LE, page size 4K, phys base anywhere)")
        #expect(ev(r)["image_efi_stub"] == "yes, PE header at 0x40")
        #expect(ev(r)["image_placement"]?.hasPrefix("2MiB aligned base 0x40000000 + text_offset 0x0") == true)
    }
}
