import KexecModel

/// The 64-byte header of an arm64 kernel Image (arch/arm64/include/asm/image.h
/// `struct arm64_image_header`, Documentation/arch/arm64/booting.rst), as kexec_file_load's Image
/// loader reads it (arch/arm64/kernel/kexec_image.c: image_probe, image_load).
///
/// Layout, all little endian: code0 u32 @0, code1 u32 @4, text_offset u64 @8, image_size u64 @16,
/// flags u64 @24, res2..res4 u64 @32..@48, magic u32 @56 ("ARM\x64"), res5 u32 @60 (PE header offset).
public struct Arm64Image: Sendable, Equatable {
    public static let headerSize = 64
    /// "ARM\x64" read as a little-endian u32.
    public static let magic: UInt32 = 0x644d_5241
    /// MIN_KIMG_ALIGN: the Image sits text_offset bytes above a 2 MiB aligned base.
    public static let minKimgAlign: UInt64 = 2 << 20

    /// flags bits 1-2 (ARM64_IMAGE_FLAG_PAGE_SIZE).
    public enum PageSize: UInt8, Sendable, Equatable {
        case unspecified = 0
        case k4 = 1
        case k16 = 2
        case k64 = 3
        public var bytes: UInt64? {
            switch self {
            case .unspecified: return nil
            case .k4: return 4 << 10
            case .k16: return 16 << 10
            case .k64: return 64 << 10
            }
        }
        public var name: String {
            switch self {
            case .unspecified: return "unspecified"
            case .k4: return "4K"
            case .k16: return "16K"
            case .k64: return "64K"
            }
        }
    }

    public var code0: UInt32
    public var code1: UInt32
    public var textOffset: UInt64
    public var imageSize: UInt64
    public var flags: UInt64
    /// res5: offset of the PE header when the Image is also an EFI application.
    public var peHeaderOffset: UInt32
    public var fileLength: Int

    /// flags bit 0: the kernel is big endian.
    public var bigEndian: Bool { flags & 1 != 0 }
    /// flags bits 1-2.
    public var pageSize: PageSize { PageSize(rawValue: UInt8((flags >> 1) & 3))! }
    /// flags bit 3 (ARM64_IMAGE_FLAG_PHYS_BASE): 1 = the 2 MiB aligned base may be anywhere in
    /// 48-bit physical memory; 0 = it should be as close as possible to the base of DRAM.
    public var physBaseAnywhere: Bool { flags & 8 != 0 }
    /// code0 starts with "MZ": the Image is also a PE/COFF EFI application.
    public var isEFIStub: Bool { code0 & 0xffff == 0x5a4d }
    /// What image_load asks kexec_add_buffer for: image_size + text_offset, from a 2 MiB aligned
    /// base (cannot wrap: `parse` checks it).
    public var reservedSize: UInt64 { imageSize &+ textOffset }
    /// The kernel segment's memsz once image_load moved it up by text_offset:
    /// PAGE_ALIGN(image_size + text_offset) - text_offset (cannot wrap: `parse` checks it).
    public var segmentMemsz: UInt64 { ((reservedSize &+ 0xfff) & ~0xfff) &- textOffset }

    /// Parses and checks an Image: image_probe's checks, then image_load's header checks, then
    /// the checks sanity_check_segment_list makes on the kernel segment image_load builds.
    public static func parse(_ bytes: [UInt8]) throws(Arm64ImageError) -> Arm64Image {
        guard bytes.count >= headerSize else { throw .tooShort(length: bytes.count) }
        let r = LittleEndianReader(bytes)
        let m = r.u32(56)!
        guard m == magic else { throw .badMagic(found: m) }
        let image = Arm64Image(
            code0: r.u32(0)!, code1: r.u32(4)!, textOffset: r.u64(8)!, imageSize: r.u64(16)!, flags: r.u64(24)!,
            peHeaderOffset: r.u32(60)!, fileLength: bytes.count)
        guard image.imageSize != 0 else { throw .noImageSize }
        let (reserved, wraps) = image.imageSize.addingReportingOverflow(image.textOffset)
        let (_, wrapsAligned) = reserved.addingReportingOverflow(0xfff)
        guard !wraps && !wrapsAligned else {
            throw .sizeOverflow(textOffset: image.textOffset, imageSize: image.imageSize)
        }
        // image_load puts the segment at base + text_offset; destinations must be page aligned.
        guard image.textOffset & 0xfff == 0 else { throw .textOffsetNotPageAligned(image.textOffset) }
        // The segment is bufsz = the whole file, memsz = segmentMemsz.
        guard UInt64(bytes.count) <= image.segmentMemsz else {
            throw .fileLargerThanImageSize(length: bytes.count, imageSize: image.imageSize)
        }
        return image
    }

    /// image_load's CPU checks: the kernel's endianness (unless the CPU runs mixed endian) and
    /// its page size among the granules the CPU supports.
    public func checkLoad(
        runningBigEndian: Bool = false, mixedEndian: Bool = false,
        supportedPageSizes: Set<UInt64> = [4 << 10, 16 << 10, 64 << 10]
    ) throws(Arm64ImageError) {
        if bigEndian != runningBigEndian && !mixedEndian { throw .endiannessMismatch(imageBigEndian: bigEndian) }
        if let p = pageSize.bytes, !supportedPageSizes.contains(p) { throw .pageSizeUnsupported(pageSize) }
    }

    /// The 64-byte header of an Image with these fields (little endian, as booting.rst lays it
    /// out): for tools that write Images and for tests. code0 defaults to an EFI stub's "MZ" word,
    /// code1 to a branch past the header.
    public static func header(
        textOffset: UInt64, imageSize: UInt64, flags: UInt64, code0: UInt32 = 0xfa40_5a4d,
        code1: UInt32 = 0x1400_0010, peHeaderOffset: UInt32 = 0x40
    ) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: headerSize)
        func put(_ off: Int, _ v: UInt64, _ n: Int) {
            for i in 0..<n { b[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        put(0, UInt64(code0), 4)
        put(4, UInt64(code1), 4)
        put(8, textOffset, 8)
        put(16, imageSize, 8)
        put(24, flags, 8)
        put(56, UInt64(magic), 4)
        put(60, UInt64(peHeaderOffset), 4)
        return b
    }

    /// The parsed fields as (name, value) pairs, for a verdict's evidence.
    public var evidence: [(String, String)] {
        [
            ("image_text_offset", hex(textOffset)),
            ("image_size", hex(imageSize) + " (\(formatSize(imageSize)))"),
            (
                "image_flags",
                hex(flags) + " (" + (bigEndian ? "BE" : "LE") + ", page size \(pageSize.name), "
                    + (physBaseAnywhere ? "phys base anywhere" : "phys base near DRAM start") + ")"
            ),
            ("image_efi_stub", isEFIStub ? "yes, PE header at \(hex(UInt64(peHeaderOffset)))" : "no"),
        ]
    }
}

/// Why an arm64 Image cannot be loaded. kexec_file_load's Image loader returns EINVAL for every
/// header problem; the segment checks are sanity_check_segment_list's.
public enum Arm64ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// image_probe: shorter than the 64-byte header (EINVAL).
    case tooShort(length: Int)
    /// image_probe: no "ARM\x64" at 0x38 (EINVAL).
    case badMagic(found: UInt32)
    /// image_load: image_size 0, a pre-3.17 header whose text_offset endianness is unknown (EINVAL).
    case noImageSize
    /// image_size + text_offset runs past 2^64 (EINVAL; the kernel adds without a check).
    case sizeOverflow(textOffset: UInt64, imageSize: UInt64)
    /// The segment starts at a 2 MiB base + text_offset: not page aligned (EADDRNOTAVAIL).
    case textOffsetNotPageAligned(UInt64)
    /// The file (bufsz) is longer than the segment's memsz, image_size rounded up to a page (EINVAL).
    case fileLargerThanImageSize(length: Int, imageSize: UInt64)
    /// image_load: kernel endianness differs from the running one without mixed-endian support (EINVAL).
    case endiannessMismatch(imageBigEndian: Bool)
    /// image_load: the image's page size is a granule the CPU lacks (EINVAL).
    case pageSizeUnsupported(Arm64Image.PageSize)

    public var errno: Errno {
        switch self {
        case .textOffsetNotPageAligned: return .EADDRNOTAVAIL
        default: return .EINVAL
        }
    }

    public var check: String {
        switch self {
        case .tooShort, .badMagic: return "image_probe"
        case .noImageSize, .sizeOverflow, .endiannessMismatch, .pageSizeUnsupported: return "image_load"
        case .textOffsetNotPageAligned, .fileLargerThanImageSize: return "sanity_check_segment_list"
        }
    }

    public var description: String {
        switch self {
        case .tooShort(let n):
            return "file is \(n) bytes, shorter than the \(Arm64Image.headerSize)-byte arm64 Image header"
        case .badMagic(let m):
            return "not an arm64 Image: magic at 0x38 is \(hex(UInt64(m))), not 0x644d5241 (\"ARM\\x64\")"
        case .noImageSize:
            return "image_size is 0 (a header older than v3.17): kexec_file_load needs an explicit image size"
        case .sizeOverflow(let t, let s):
            return "text_offset \(hex(t)) + image_size \(hex(s)) runs past 2^64"
        case .textOffsetNotPageAligned(let t):
            return "text_offset \(hex(t)) is not page aligned, so the kernel segment would not be"
        case .fileLargerThanImageSize(let n, let s):
            return "the file is \(n) bytes, more than image_size \(hex(s)) rounded to a page (bufsz > memsz)"
        case .endiannessMismatch(let be):
            return
                "the Image is \(be ? "big" : "little") endian, the running kernel is not, and the CPU has no mixed-endian support"
        case .pageSizeUnsupported(let p):
            return "the Image needs \(p.name) pages, a granule this CPU does not support"
        }
    }

    public var rejection: Rejection { Rejection(errno, check: check, description) }
}
