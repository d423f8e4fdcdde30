import Foundation
import KexecModel
import Kimage
import Testing

/// A bzImage built byte by byte: the setup header at the offsets of bootparam.h, `setupSects`
/// sectors of real-mode part after the boot sector, then `payload` bytes of protected-mode part.
struct SyntheticBzImage {
    var setupSects: UInt8 = 0x1b
    var payload = 0x2_0000
    var bootFlag: UInt16 = 0xaa55
    var magic: UInt32 = 0x5372_6448
    var version: UInt16 = 0x020f
    var loadflags: UInt8 = 0x01
    var xloadflags: UInt16 = 0x7f
    var relocatable: UInt8 = 1
    var kernelAlignment: UInt32 = 0x20_0000
    var prefAddress: UInt64 = 0x100_0000
    var initSize: UInt32 = 0x40_0000
    var cmdlineSize: UInt32 = 2047
    var kernelVersion = "6.1.0-test (kexec-sim) #1"

    var bytes: [UInt8] {
        let sects = setupSects == 0 ? 4 : Int(setupSects)
        var b = [UInt8](repeating: 0, count: (sects + 1) * 512 + payload)
        func put(_ off: Int, _ v: UInt64, _ n: Int) {
            for i in 0..<n { b[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        put(0x1f1, UInt64(setupSects), 1)
        put(0x1fe, UInt64(bootFlag), 2)
        put(0x200, 0x66eb, 2)  // jmp short +0x66: the header ends at 0x202 + 0x66 = 0x268
        put(0x202, UInt64(magic), 4)
        put(0x206, UInt64(version), 2)
        put(0x20e, 0x300, 2)  // kernel_version: the string at 0x500
        put(0x211, UInt64(loadflags), 1)
        put(0x230, UInt64(kernelAlignment), 4)
        put(0x234, UInt64(relocatable), 1)
        put(0x236, UInt64(xloadflags), 2)
        put(0x238, UInt64(cmdlineSize), 4)
        put(0x258, prefAddress, 8)
        put(0x260, UInt64(initSize), 4)
        for (i, c) in kernelVersion.utf8.enumerated() { b[0x500 + i] = c }
        for i in 0..<payload { b[(sects + 1) * 512 + i] = UInt8(truncatingIfNeeded: i &* 7 &+ 1) }
        return b
    }
}

func parseError(_ bytes: [UInt8], fiveLevel: Bool = false) -> BzImageError? {
    do {
        _ = try BzImage.parse(bytes, fiveLevelPaging: fiveLevel)
        return nil
    } catch {
        return error
    }
}

@Suite struct BzImageTests {
    @Test func parsesTheSetupHeader() throws {
        let img = SyntheticBzImage()
        let h = try BzImage.parse(img.bytes)
        #expect(h.setupSectsField == 0x1b)
        #expect(h.setupSects == 27)
        #expect(h.protectedModeOffset == 28 * 512)
        #expect(h.protectedModeLength == 0x2_0000)
        #expect(h.fileLength == 28 * 512 + 0x2_0000)
        #expect(h.bootFlag == 0xaa55)
        #expect(h.version == 0x020f)
        #expect(h.versionString == "2.15")
        #expect(h.loadflags == 1)
        #expect(h.xloadflags == 0x7f)
        #expect(
            h.xloadflagNames == [
                "KERNEL_64", "CAN_BE_LOADED_ABOVE_4G", "EFI_HANDOVER_32", "EFI_HANDOVER_64", "EFI_KEXEC", "5LEVEL",
                "5LEVEL_ENABLED",
            ])
        #expect(h.relocatableKernel)
        #expect(h.kernelAlignment == 0x20_0000)
        #expect(h.prefAddress == 0x100_0000)
        #expect(h.initSize == 0x40_0000)
        #expect(h.cmdlineSize == 2047)
        #expect(h.kernelVersion == "6.1.0-test (kexec-sim) #1")
        #expect(h.headerEnd == 0x268)
        #expect(h.kernelMemsz == 0x40_0000)
        #expect(h.kernelBufMin == 0x100_0000)
        #expect(h.kernelBufAlign == 0x20_0000)
        #expect(h.setupHeaderBytes(of: img.bytes).count == 0x268 - 0x1f1)
        #expect(
            h.evidence.map(\.0) == [
                "bzimage_protocol", "bzimage_setup_sects", "bzimage_xloadflags", "bzimage_relocatable_kernel",
                "bzimage_kernel_alignment", "bzimage_pref_address", "bzimage_init_size", "bzimage_cmdline_size",
                "bzimage_payload", "bzimage_kernel_version",
            ])
        #expect(h.evidence[6].1 == "0x400000 (4MiB)")
    }

    @Test func setupSectsZeroMeansFour() throws {
        var img = SyntheticBzImage()
        img.setupSects = 0
        let h = try BzImage.parse(img.bytes)
        #expect(h.setupSects == 4)
        #expect(h.protectedModeOffset == 5 * 512)
        #expect(h.protectedModeLength == img.payload)
    }

    @Test func pageAlignsInitSizeAndRaisesALowPrefAddress() throws {
        var img = SyntheticBzImage()
        img.initSize = 0x3f9_7001
        img.prefAddress = 0x1000
        img.kernelAlignment = 0
        let h = try BzImage.parse(img.bytes)
        #expect(h.kernelMemsz == 0x3f9_8000)
        #expect(h.kernelBufMin == 0x10_0000)
        #expect(h.kernelBufAlign == 0x1000)
    }

    @Test(arguments: [0, 1, 0x1ff, 0x202, 1023])
    func tooShortForTwoSectors(length: Int) {
        let e = parseError(Array(SyntheticBzImage().bytes.prefix(length)))
        #expect(e == .tooShort(length: length))
        #expect(e?.errno == .ENOEXEC)
        #expect(e?.check == "bzImage64_probe")
    }

    @Test(arguments: [1024, 4096, 28 * 512 - 1])
    func truncatedInsideTheSetupPart(length: Int) {
        let e = parseError(Array(SyntheticBzImage().bytes.prefix(length)))
        #expect(e == .setupTruncated(setupBytes: 28 * 512, length: length))
        #expect(e?.errno == .ENOEXEC)
        #expect(e?.description == "bzImage truncated: \(length) bytes, its setup part alone is 14336 bytes")
    }

    @Test func exactlyTheSetupPartIsAnEmptyKernel() throws {
        let h = try BzImage.parse(Array(SyntheticBzImage().bytes.prefix(28 * 512)))
        #expect(h.protectedModeLength == 0)
    }

    @Test func badMagic() {
        var img = SyntheticBzImage()
        img.magic = 0x5372_6449
        let e = parseError(img.bytes)
        #expect(e == .noHdrS(found: 0x5372_6449))
        #expect(e?.description == "not a bzImage: no \"HdrS\" magic at 0x202 (found 0x53726449)")
        #expect(e?.errno == .ENOEXEC)
        // HdrS is looked at before the boot flag, as bzImage64_probe does.
        img.bootFlag = 0
        #expect(parseError(img.bytes) == .noHdrS(found: 0x5372_6449))
    }

    @Test func badBootFlag() {
        var img = SyntheticBzImage()
        img.bootFlag = 0x55aa
        #expect(parseError(img.bytes) == .noBootFlag(found: 0x55aa))
    }

    @Test func protocolOlderThan212() throws {
        var img = SyntheticBzImage()
        img.version = 0x020b
        let e = parseError(img.bytes)
        #expect(e == .protocolTooOld(version: 0x020b))
        #expect(e?.description == "boot protocol 2.11 is older than 2.12, the least kexec_file_load accepts")
        img.version = 0x020c
        #expect(try BzImage.parse(img.bytes).versionString == "2.12")
    }

    @Test func zImageIsNotABzImage() {
        var img = SyntheticBzImage()
        img.loadflags = 0x80
        #expect(parseError(img.bytes) == .notBzImage(loadflags: 0x80))
    }

    @Test func thirtyTwoBitOnly() {
        var img = SyntheticBzImage()
        img.xloadflags = 0
        let e = parseError(img.bytes)
        #expect(e == .not64Bit(xloadflags: 0))
        #expect(e?.errno == .ENOEXEC)
        #expect(e?.check == "bzImage64_probe")
        #expect(e?.description == "not a bzImage64: xloadflags 0x0 has XLF_KERNEL_64 clear (32-bit entry only)")
        img.xloadflags = BzImage.xlfKernel64
        #expect(parseError(img.bytes) == .notLoadableAbove4G(xloadflags: 1))
    }

    @Test func fiveLevelPagingNeedsXLF5Level() throws {
        var img = SyntheticBzImage()
        img.xloadflags = 0x03
        #expect(parseError(img.bytes, fiveLevel: true) == .no5LevelPaging(xloadflags: 3))
        #expect(parseError(img.bytes, fiveLevel: false) == nil)
        img.xloadflags = 0x23
        #expect(parseError(img.bytes, fiveLevel: true) == nil)
    }

    @Test func notRelocatable() {
        var img = SyntheticBzImage()
        img.relocatable = 0
        let e = parseError(img.bytes)
        #expect(e == .notRelocatable)
        #expect(e?.errno == .ENOEXEC)
        #expect(e?.check == "kexec-sim: relocatable_kernel")
    }

    @Test func kernelAlignmentNotAPowerOfTwo() {
        var img = SyntheticBzImage()
        img.kernelAlignment = 0x30_0000
        let e = parseError(img.bytes)
        #expect(e == .kernelAlignmentNotPowerOfTwo(0x30_0000))
        #expect(e?.errno == .EINVAL)
    }

    @Test func initSizeSmallerThanThePayload() {
        var img = SyntheticBzImage()
        img.initSize = 0x1_0000
        let e = parseError(img.bytes)
        #expect(e == .initSizeSmallerThanPayload(initSize: 0x1_0000, payload: 0x2_0000))
        #expect(e?.errno == .EINVAL)
        #expect(e?.check == "sanity_check_segment_list")
    }

    @Test func initSizeOverflowsPastTwoToThe64() {
        var img = SyntheticBzImage()
        img.prefAddress = 0xffff_ffff_ffe0_0001
        img.initSize = 0x20_0000
        let e = parseError(img.bytes)
        #expect(e == .initSizeOverflow(bufMin: 0xffff_ffff_ffe0_0001, memsz: 0x20_0000))
        #expect(e?.errno == .EADDRNOTAVAIL)
        #expect(e?.description == "pref_address 0xffffffffffe00001 + PAGE_ALIGN(init_size) 0x200000 runs past 2^64")
        // A byte lower, the kernel's last byte is the last byte below 2^64.
        img.prefAddress = 0xffff_ffff_ffe0_0000
        #expect(parseError(img.bytes) == nil)
    }

    @Test func loadChecks() throws {
        let h = try BzImage.parse(SyntheticBzImage().bytes)
        try h.checkLoad(cmdlineLength: 2047 - 30, totalRAM: 1 << 30)
        #expect(throws: BzImageError.cmdlineTooLong(length: 2048, max: 2047)) {
            try h.checkLoad(cmdlineLength: 2048, totalRAM: 1 << 30)
        }
        #expect(throws: BzImageError.cmdlineNoRoomForElfcorehdr(length: 2018, max: 2047)) {
            try h.checkLoad(cmdlineLength: 2018, totalRAM: 1 << 30)
        }
        #expect(throws: BzImageError.initSizeLargerThanRAM(memsz: 0x40_0000, ram: 0x3f_f000)) {
            try h.checkLoad(cmdlineLength: 1, totalRAM: 0x3f_f000)
        }
        let r = BzImageError.cmdlineTooLong(length: 2048, max: 2047).rejection
        #expect(r.errno == .EINVAL)
        #expect(r.check == "bzImage64_load")
        #expect(r.detail == "command line of 2048 bytes is longer than the image's cmdline_size 2047")
    }

    @Test func kernelVersionMustBePrintableAndTerminated() throws {
        var img = SyntheticBzImage()
        img.kernelVersion = "bad\u{7}version"
        #expect(try BzImage.parse(img.bytes).kernelVersion == nil)
        var small = SyntheticBzImage()
        small.payload = 0x100
        var b = small.bytes
        b[0x20e] = 0xff
        b[0x20f] = 0xff  // 0x200 + 0xffff: past the end of the file
        #expect(try BzImage.parse(b).kernelVersion == nil)
    }

    @Test(.enabled(if: RealKernelFile.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel"))
    func parsesDebiansKernel() throws {
        let bytes = try RealKernelFile.bytes()
        let h = try BzImage.parse(bytes, fiveLevelPaging: true)
        #expect(h.version >= 0x020c)
        #expect(h.loadflags & BzImage.loadedHigh != 0)
        #expect(h.xloadflags & 0x23 == 0x23)  // KERNEL_64, CAN_BE_LOADED_ABOVE_4G, 5LEVEL
        #expect(h.relocatableKernel)
        #expect(h.kernelAlignment == 0x20_0000)  // CONFIG_PHYSICAL_ALIGN
        #expect(h.prefAddress == 0x100_0000)  // LOAD_PHYSICAL_ADDR
        #expect(h.cmdlineSize == 2047)  // COMMAND_LINE_SIZE - 1
        #expect(UInt64(h.initSize) > UInt64(h.protectedModeLength))
        #expect(h.protectedModeOffset == (h.setupSects + 1) * 512)
        if let v = RealKernelFile.version {
            #expect(h.kernelVersion?.hasPrefix(v + " ") == true)
        }
    }
}

/// `.kernels/vmlinuz` of the repository (scripts/fetch-debian-kernel puts it there).
enum RealKernelFile {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".kernels")
    static let path = directory.appendingPathComponent("vmlinuz").path
    static var present: Bool { FileManager.default.fileExists(atPath: path) }
    static func bytes() throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
    static var version: String? {
        (try? String(contentsOfFile: directory.appendingPathComponent("VERSION").path, encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
