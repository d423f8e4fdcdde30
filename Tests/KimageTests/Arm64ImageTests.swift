import KexecModel
import Kimage
import Testing

/// An arm64 Image header (booting.rst) followed by zeros up to `length` bytes.
struct SyntheticArm64Image {
    var code0: UInt32 = 0xfa40_5a4d  // "MZ" + ccmp: an EFI stub kernel's first word
    var code1: UInt32 = 0x1433_ffff
    var textOffset: UInt64 = 0
    var imageSize: UInt64 = 0x20_0000
    var flags: UInt64 = 0xa  // LE, 4K pages, physical base anywhere
    var magic: UInt32 = 0x644d_5241
    var res5: UInt32 = 0x40
    var length = 0x1_0000

    var bytes: [UInt8] {
        var b = Arm64Image.header(
            textOffset: textOffset, imageSize: imageSize, flags: flags, code0: code0, code1: code1,
            peHeaderOffset: res5)
        for i in 0..<4 { b[56 + i] = UInt8(truncatingIfNeeded: magic >> (8 * UInt32(i))) }
        b += [UInt8](repeating: 0, count: max(0, length - b.count))
        return Array(b.prefix(length))
    }
}

func arm64Error(_ bytes: [UInt8]) -> Arm64ImageError? {
    do {
        _ = try Arm64Image.parse(bytes)
        return nil
    } catch {
        return error
    }
}

@Suite struct Arm64ImageTests {
    @Test func parsesTheHeader() throws {
        let h = try Arm64Image.parse(SyntheticArm64Image().bytes)
        #expect(h.code0 == 0xfa40_5a4d)
        #expect(h.code1 == 0x1433_ffff)
        #expect(h.textOffset == 0)
        #expect(h.imageSize == 0x20_0000)
        #expect(h.flags == 0xa)
        #expect(!h.bigEndian)
        #expect(h.pageSize == .k4)
        #expect(h.pageSize.bytes == 4096)
        #expect(h.physBaseAnywhere)
        #expect(h.isEFIStub)
        #expect(h.peHeaderOffset == 0x40)
        #expect(h.fileLength == 0x1_0000)
        #expect(h.reservedSize == 0x20_0000)
        #expect(h.segmentMemsz == 0x20_0000)
        #expect(
            h.evidence.map(\.1) == [
                "0x0", "0x200000 (2MiB)", "0xa (LE, page size 4K, phys base anywhere)", "yes, PE header at 0x40",
            ])
        try h.checkLoad()
    }

    @Test func flagFields() throws {
        var img = SyntheticArm64Image()
        img.flags = 0b0101  // BE, 16K, near DRAM start
        img.code0 = 0x1400_0000
        let h = try Arm64Image.parse(img.bytes)
        #expect(h.bigEndian)
        #expect(h.pageSize == .k16)
        #expect(!h.physBaseAnywhere)
        #expect(!h.isEFIStub)
        img.flags = 0b0110
        #expect(try Arm64Image.parse(img.bytes).pageSize == .k64)
        img.flags = 0
        #expect(try Arm64Image.parse(img.bytes).pageSize == .unspecified)
    }

    @Test func legacyTextOffsetAndUnalignedImageSize() throws {
        var img = SyntheticArm64Image()
        img.textOffset = 0x8_0000
        img.imageSize = 0x1_0001
        let h = try Arm64Image.parse(img.bytes)
        #expect(h.reservedSize == 0x9_0001)
        #expect(h.segmentMemsz == 0x1_1000)
    }

    @Test(arguments: [0, 8, 56, 63])
    func tooShort(length: Int) {
        let e = arm64Error(Array(SyntheticArm64Image().bytes.prefix(length)))
        #expect(e == .tooShort(length: length))
        #expect(e?.errno == .EINVAL)
        #expect(e?.check == "image_probe")
    }

    @Test func headerAloneIsEnough() throws {
        var img = SyntheticArm64Image()
        img.length = 64
        #expect(try Arm64Image.parse(img.bytes).fileLength == 64)
    }

    @Test func badMagic() {
        var img = SyntheticArm64Image()
        img.magic = 0x4d52_4164  // byte-swapped
        let e = arm64Error(img.bytes)
        #expect(e == .badMagic(found: 0x4d52_4164))
        #expect(e?.description == "not an arm64 Image: magic at 0x38 is 0x4d524164, not 0x644d5241 (\"ARM\\x64\")")
        #expect(e?.errno == .EINVAL)
    }

    @Test func zeroImageSizeIsAPre317Header() {
        var img = SyntheticArm64Image()
        img.imageSize = 0
        img.textOffset = 0x8_0000
        let e = arm64Error(img.bytes)
        #expect(e == .noImageSize)
        #expect(e?.check == "image_load")
        #expect(e?.errno == .EINVAL)
    }

    @Test func sizeOverflow() {
        var img = SyntheticArm64Image()
        img.textOffset = 0x8_0000
        img.imageSize = 0xffff_ffff_fff8_0000
        #expect(arm64Error(img.bytes) == .sizeOverflow(textOffset: 0x8_0000, imageSize: 0xffff_ffff_fff8_0000))
        // Fits in 64 bits but not once rounded up to a page.
        img.imageSize = 0xffff_ffff_fff7_f001
        #expect(arm64Error(img.bytes) == .sizeOverflow(textOffset: 0x8_0000, imageSize: 0xffff_ffff_fff7_f001))
    }

    @Test func textOffsetNotPageAligned() {
        var img = SyntheticArm64Image()
        img.textOffset = 0x8_0800
        let e = arm64Error(img.bytes)
        #expect(e == .textOffsetNotPageAligned(0x8_0800))
        #expect(e?.errno == .EADDRNOTAVAIL)
        #expect(e?.check == "sanity_check_segment_list")
    }

    @Test func fileLargerThanImageSize() {
        var img = SyntheticArm64Image()
        img.imageSize = 0x1000
        img.length = 0x1001
        let e = arm64Error(img.bytes)
        #expect(e == .fileLargerThanImageSize(length: 0x1001, imageSize: 0x1000))
        #expect(e?.errno == .EINVAL)
        img.length = 0x1000
        #expect(arm64Error(img.bytes) == nil)
    }

    @Test func cpuChecks() throws {
        var img = SyntheticArm64Image()
        img.flags = 0b1011  // BE, 4K
        let be = try Arm64Image.parse(img.bytes)
        #expect(throws: Arm64ImageError.endiannessMismatch(imageBigEndian: true)) { try be.checkLoad() }
        try be.checkLoad(mixedEndian: true)
        try be.checkLoad(runningBigEndian: true)
        img.flags = 0b0110  // LE, 64K
        let k64 = try Arm64Image.parse(img.bytes)
        #expect(throws: Arm64ImageError.pageSizeUnsupported(.k64)) {
            try k64.checkLoad(supportedPageSizes: [4096, 16384])
        }
        let r = Arm64ImageError.pageSizeUnsupported(.k64).rejection
        #expect(r.errno == .EINVAL)
        #expect(r.check == "image_load")
        #expect(r.detail == "the Image needs 64K pages, a granule this CPU does not support")
        img.flags = 0
        try Arm64Image.parse(img.bytes).checkLoad(supportedPageSizes: [])
    }
}
