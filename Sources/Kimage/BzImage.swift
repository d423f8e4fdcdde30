import KexecModel

/// The setup header of an x86 bzImage (arch/x86/include/uapi/asm/bootparam.h `struct setup_header`,
/// Documentation/arch/x86/boot.rst), as kexec_file_load's bzImage64 loader reads it
/// (arch/x86/kernel/kexec-bzimage64.c: bzImage64_probe, bzImage64_load).
///
/// `parse` runs the probe's checks in the probe's order, then the loader's "bzImage truncated"
/// check, then kexec-sim's own consistency checks; `checkLoad` adds the checks that depend on the
/// load (command line, RAM). Every failure is a `BzImageError` carrying the errno the kernel returns.
public struct BzImage: Sendable, Equatable {
    /// offsetof(struct boot_params, hdr): where the setup header starts in the file and in boot_params.
    public static let setupHeaderOffset = 0x1f1
    /// bzImage64_probe: "kernel should be at least two sectors long".
    public static let minimumLength = 2 * 512
    /// Protocol 2.12 (0x020C), the first with xloadflags: the least bzImage64_probe accepts.
    public static let minimumVersion: UInt16 = 0x020c
    /// MAX_ELFCOREHDR_STR_LEN: room bzImage64_load keeps on the command line for `elfcorehdr=0x…`.
    public static let elfcorehdrRoom = 30
    /// MIN_KERNEL_LOAD_ADDR of kexec-bzimage64.c.
    public static let minKernelLoadAddress: UInt64 = 0x10_0000

    /// loadflags bit 0: the protected-mode code is loaded at 0x100000 (a bzImage, not a zImage).
    public static let loadedHigh: UInt8 = 1 << 0
    /// xloadflags bits (bootparam.h).
    public static let xlfKernel64: UInt16 = 1 << 0
    public static let xlfCanBeLoadedAbove4G: UInt16 = 1 << 1
    public static let xlfEfiHandover32: UInt16 = 1 << 2
    public static let xlfEfiHandover64: UInt16 = 1 << 3
    public static let xlfEfiKexec: UInt16 = 1 << 4
    public static let xlf5Level: UInt16 = 1 << 5
    public static let xlf5LevelEnabled: UInt16 = 1 << 6

    /// setup_sects as stored (0 means 4).
    public var setupSectsField: UInt8
    /// setup_sects as used: 4 when the field is 0.
    public var setupSects: Int
    public var bootFlag: UInt16
    /// Boot protocol version, e.g. 0x020f for 2.15.
    public var version: UInt16
    public var loadflags: UInt8
    public var xloadflags: UInt16
    public var relocatableKernel: Bool
    public var kernelAlignment: UInt32
    public var prefAddress: UInt64
    public var initSize: UInt32
    public var cmdlineSize: UInt32
    /// The kernel_version string (at 0x200 + kernel_version), when the field points at text.
    public var kernelVersion: String?
    /// End of the setup header in the file: 0x202 + the byte at 0x201 (the jump's displacement);
    /// bzImage64_load copies [0x1f1, headerEnd) into boot_params.
    public var headerEnd: Int
    /// (setup_sects + 1) * 512: where the protected-mode part starts (kern16_size in the loader).
    public var protectedModeOffset: Int
    /// Length of the whole file.
    public var fileLength: Int

    /// Bytes of the protected-mode part: the kernel segment's buffer (bufsz).
    public var protectedModeLength: Int { fileLength - protectedModeOffset }
    /// "2.15".
    public var versionString: String { "\(version >> 8).\(version & 0xff)" }
    /// The kernel segment's memsz: PAGE_ALIGN(init_size) (cannot overflow: init_size is 32 bits).
    public var kernelMemsz: UInt64 { (UInt64(initSize) + 0xfff) & ~0xfff }
    /// The kernel segment's buf_min: pref_address, but not below MIN_KERNEL_LOAD_ADDR.
    public var kernelBufMin: UInt64 { max(prefAddress, Self.minKernelLoadAddress) }
    /// The kernel segment's alignment as kexec_add_buffer uses it (at least a page).
    public var kernelBufAlign: UInt64 { max(UInt64(kernelAlignment), 0x1000) }

    /// Parses and checks a bzImage.
    /// - Parameter fiveLevelPaging: the first kernel runs with 5-level paging, so the probe also
    ///   requires XLF_5LEVEL.
    public static func parse(_ bytes: [UInt8], fiveLevelPaging: Bool = false) throws(BzImageError) -> BzImage {
        let n = bytes.count
        guard n >= minimumLength else { throw .tooShort(length: n) }
        // Every field below lies inside the first 0x26c bytes, and n >= 1024.
        let r = LittleEndianReader(bytes)
        let magic = r.u32(0x202)!
        guard magic == 0x5372_6448 else { throw .noHdrS(found: magic) }
        let bootFlag = r.u16(0x1fe)!
        guard bootFlag == 0xaa55 else { throw .noBootFlag(found: bootFlag) }
        let version = r.u16(0x206)!
        guard version >= minimumVersion else { throw .protocolTooOld(version: version) }
        let loadflags = r.u8(0x211)!
        guard loadflags & loadedHigh != 0 else { throw .notBzImage(loadflags: loadflags) }
        let xlf = r.u16(0x236)!
        guard xlf & xlfKernel64 != 0 else { throw .not64Bit(xloadflags: xlf) }
        guard xlf & xlfCanBeLoadedAbove4G != 0 else { throw .notLoadableAbove4G(xloadflags: xlf) }
        if fiveLevelPaging && xlf & xlf5Level == 0 { throw .no5LevelPaging(xloadflags: xlf) }

        // bzImage64_load: the real-mode part must be all there.
        let sectsField = r.u8(0x1f1)!
        let sects = sectsField == 0 ? 4 : Int(sectsField)
        let kern16 = (sects + 1) * 512  // at most 256 * 512: no overflow
        guard n >= kern16 else { throw .setupTruncated(setupBytes: kern16, length: n) }

        let alignment = r.u32(0x230)!
        let relocatable = r.u8(0x234)! != 0
        let cmdlineSize = r.u32(0x238)!
        let pref = r.u64(0x258)!
        let initSize = r.u32(0x260)!
        let headerEnd = 0x202 + Int(r.u8(0x201)!)

        // kexec-sim's checks (see BzImageError for why each is there).
        guard relocatable else { throw .notRelocatable }
        guard alignment & (alignment &- 1) == 0 else { throw .kernelAlignmentNotPowerOfTwo(alignment) }
        let image = BzImage(
            setupSectsField: sectsField, setupSects: sects, bootFlag: bootFlag, version: version, loadflags: loadflags,
            xloadflags: xlf, relocatableKernel: relocatable, kernelAlignment: alignment, prefAddress: pref,
            initSize: initSize, cmdlineSize: cmdlineSize, kernelVersion: versionText(bytes, r.u16(0x20e)!),
            headerEnd: headerEnd, protectedModeOffset: kern16, fileLength: n)
        guard UInt64(image.protectedModeLength) <= image.kernelMemsz else {
            throw .initSizeSmallerThanPayload(initSize: initSize, payload: image.protectedModeLength)
        }
        // The last byte of the lowest possible placement: buf_min + memsz - 1.
        let (_, wraps) = image.kernelBufMin.addingReportingOverflow(max(image.kernelMemsz, 1) - 1)
        guard !wraps else { throw .initSizeOverflow(bufMin: image.kernelBufMin, memsz: image.kernelMemsz) }
        return image
    }

    /// bzImage64_load's command-line checks and the room the kernel segment needs.
    /// - Parameters:
    ///   - cmdlineLength: cmdline_len as kexec_file_load gets it: the text plus its NUL (0 for none).
    ///   - totalRAM: System RAM of the machine; a kernel segment larger than that finds no hole.
    public func checkLoad(cmdlineLength: Int, totalRAM: UInt64) throws(BzImageError) {
        if cmdlineLength > Int(cmdlineSize) { throw .cmdlineTooLong(length: cmdlineLength, max: cmdlineSize) }
        let (withRoom, o) = cmdlineLength.addingReportingOverflow(Self.elfcorehdrRoom)
        if o || withRoom > Int(cmdlineSize) {
            throw .cmdlineNoRoomForElfcorehdr(length: cmdlineLength, max: cmdlineSize)
        }
        if kernelMemsz > totalRAM { throw .initSizeLargerThanRAM(memsz: kernelMemsz, ram: totalRAM) }
    }

    /// The setup header bytes bzImage64_load copies into boot_params: file[0x1f1 ..< headerEnd].
    public func setupHeaderBytes(of file: [UInt8]) -> ArraySlice<UInt8> {
        let end = min(headerEnd, file.count)
        return file[Self.setupHeaderOffset..<max(end, Self.setupHeaderOffset)]
    }

    /// The parsed fields as (name, value) pairs, for a verdict's evidence.
    public var evidence: [(String, String)] {
        var out: [(String, String)] = [
            ("bzimage_protocol", versionString),
            ("bzimage_setup_sects", "\(setupSects)"),
            ("bzimage_xloadflags", hex(UInt64(xloadflags)) + " (" + xloadflagNames.joined(separator: "|") + ")"),
            ("bzimage_relocatable_kernel", relocatableKernel ? "1" : "0"),
            ("bzimage_kernel_alignment", hex(UInt64(kernelAlignment))),
            ("bzimage_pref_address", hex(prefAddress)),
            ("bzimage_init_size", hex(UInt64(initSize)) + " (\(formatSize(UInt64(initSize))))"),
            ("bzimage_cmdline_size", "\(cmdlineSize)"),
            ("bzimage_payload", "offset \(hex(UInt64(protectedModeOffset))), \(protectedModeLength) bytes"),
        ]
        if let v = kernelVersion { out.append(("bzimage_kernel_version", v)) }
        return out
    }

    /// Names of the xloadflags bits that are set.
    public var xloadflagNames: [String] {
        let names: [(UInt16, String)] = [
            (Self.xlfKernel64, "KERNEL_64"), (Self.xlfCanBeLoadedAbove4G, "CAN_BE_LOADED_ABOVE_4G"),
            (Self.xlfEfiHandover32, "EFI_HANDOVER_32"), (Self.xlfEfiHandover64, "EFI_HANDOVER_64"),
            (Self.xlfEfiKexec, "EFI_KEXEC"), (Self.xlf5Level, "5LEVEL"), (Self.xlf5LevelEnabled, "5LEVEL_ENABLED"),
        ]
        var out = names.filter { xloadflags & $0.0 != 0 }.map(\.1)
        let known = names.reduce(UInt16(0)) { $0 | $1.0 }
        if xloadflags & ~known != 0 { out.append(hex(UInt64(xloadflags & ~known))) }
        return out
    }

    /// kernel_version (0x20e) points 0x200 bytes before a NUL-terminated string; nil when it does
    /// not point at printable text inside the file.
    static func versionText(_ bytes: [UInt8], _ field: UInt16) -> String? {
        guard field != 0 else { return nil }
        let start = 0x200 + Int(field)
        guard start < bytes.count else { return nil }
        var end = start
        while end < bytes.count && end - start < 256 && bytes[end] != 0 {
            guard bytes[end] >= 0x20 && bytes[end] < 0x7f else { return nil }
            end += 1
        }
        guard end > start, end < bytes.count, bytes[end] == 0 else { return nil }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}

/// Why a bzImage cannot be loaded, with the errno kexec_file_load returns for it.
public enum BzImageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// bzImage64_probe: shorter than two sectors (ENOEXEC).
    case tooShort(length: Int)
    /// bzImage64_probe: no "HdrS" at 0x202 (ENOEXEC).
    case noHdrS(found: UInt32)
    /// bzImage64_probe: boot_flag at 0x1fe is not 0xAA55 (ENOEXEC).
    case noBootFlag(found: UInt16)
    /// bzImage64_probe: protocol older than 2.12 (ENOEXEC).
    case protocolTooOld(version: UInt16)
    /// bzImage64_probe: LOADED_HIGH clear, a zImage (ENOEXEC).
    case notBzImage(loadflags: UInt8)
    /// bzImage64_probe: XLF_KERNEL_64 clear, no 64-bit entry (ENOEXEC).
    case not64Bit(xloadflags: UInt16)
    /// bzImage64_probe: XLF_CAN_BE_LOADED_ABOVE_4G clear (ENOEXEC).
    case notLoadableAbove4G(xloadflags: UInt16)
    /// bzImage64_probe: the first kernel runs 5-level paging and XLF_5LEVEL is clear (ENOEXEC).
    case no5LevelPaging(xloadflags: UInt16)
    /// bzImage64_load: the file is shorter than its real-mode part (ENOEXEC, "bzImage truncated").
    case setupTruncated(setupBytes: Int, length: Int)
    /// kexec-sim: relocatable_kernel is 0. The probe does not read it, but kexec_file_load puts the
    /// kernel wherever it finds a hole, which only a relocatable kernel survives (ENOEXEC).
    case notRelocatable
    /// kexec-sim: kernel_alignment is not a power of two; kexec_add_buffer would align with a
    /// broken mask (EINVAL, as this tool's placer refuses such an alignment).
    case kernelAlignmentNotPowerOfTwo(UInt32)
    /// init_size is smaller than the protected-mode part: the kernel segment's bufsz > memsz, which
    /// sanity_check_segment_list refuses (EINVAL).
    case initSizeSmallerThanPayload(initSize: UInt32, payload: Int)
    /// [buf_min (pref_address), + PAGE_ALIGN(init_size)) runs past 2^64: no hole can exist (EADDRNOTAVAIL).
    case initSizeOverflow(bufMin: UInt64, memsz: UInt64)
    /// PAGE_ALIGN(init_size) is larger than all System RAM: no hole can exist (EADDRNOTAVAIL).
    case initSizeLargerThanRAM(memsz: UInt64, ram: UInt64)
    /// bzImage64_load: cmdline_len > cmdline_size (EINVAL).
    case cmdlineTooLong(length: Int, max: UInt32)
    /// bzImage64_load: cmdline_len + MAX_ELFCOREHDR_STR_LEN > cmdline_size (EINVAL).
    case cmdlineNoRoomForElfcorehdr(length: Int, max: UInt32)

    public var errno: Errno {
        switch self {
        case .tooShort, .noHdrS, .noBootFlag, .protocolTooOld, .notBzImage, .not64Bit, .notLoadableAbove4G,
            .no5LevelPaging, .setupTruncated, .notRelocatable:
            return .ENOEXEC
        case .kernelAlignmentNotPowerOfTwo, .initSizeSmallerThanPayload, .cmdlineTooLong,
            .cmdlineNoRoomForElfcorehdr:
            return .EINVAL
        case .initSizeOverflow, .initSizeLargerThanRAM:
            return .EADDRNOTAVAIL
        }
    }

    /// The kernel function (or "kexec-sim") whose check fails.
    public var check: String {
        switch self {
        case .tooShort, .noHdrS, .noBootFlag, .protocolTooOld, .notBzImage, .not64Bit, .notLoadableAbove4G,
            .no5LevelPaging:
            return "bzImage64_probe"
        case .setupTruncated, .cmdlineTooLong, .cmdlineNoRoomForElfcorehdr: return "bzImage64_load"
        case .notRelocatable: return "kexec-sim: relocatable_kernel"
        case .kernelAlignmentNotPowerOfTwo: return "kexec_add_buffer"
        case .initSizeSmallerThanPayload: return "sanity_check_segment_list"
        case .initSizeOverflow, .initSizeLargerThanRAM: return "kexec_locate_mem_hole"
        }
    }

    public var description: String {
        switch self {
        case .tooShort(let n):
            return "file is \(n) bytes, too short to be a bzImage (at least \(BzImage.minimumLength))"
        case .noHdrS(let m):
            return "not a bzImage: no \"HdrS\" magic at 0x202 (found \(hex(UInt64(m))))"
        case .noBootFlag(let f):
            return "no x86 boot sector: boot_flag at 0x1fe is \(hex(UInt64(f))), not 0xaa55"
        case .protocolTooOld(let v):
            return "boot protocol \(v >> 8).\(v & 0xff) is older than 2.12, the least kexec_file_load accepts"
        case .notBzImage(let f):
            return "a zImage, not a bzImage: loadflags \(hex(UInt64(f))) has LOADED_HIGH clear"
        case .not64Bit(let x):
            return "not a bzImage64: xloadflags \(hex(UInt64(x))) has XLF_KERNEL_64 clear (32-bit entry only)"
        case .notLoadableAbove4G(let x):
            return "xloadflags \(hex(UInt64(x))) has XLF_CAN_BE_LOADED_ABOVE_4G clear"
        case .no5LevelPaging(let x):
            return "the image cannot handle 5-level paging: xloadflags \(hex(UInt64(x))) has XLF_5LEVEL clear"
        case .setupTruncated(let need, let n):
            return "bzImage truncated: \(n) bytes, its setup part alone is \(need) bytes"
        case .notRelocatable:
            return "relocatable_kernel is 0: kexec_file_load places the kernel wherever it finds room, "
                + "so the image must be relocatable (bzImage64_probe does not check this; kexec-sim does)"
        case .kernelAlignmentNotPowerOfTwo(let a):
            return "kernel_alignment \(hex(UInt64(a))) is not a power of two"
        case .initSizeSmallerThanPayload(let i, let p):
            return "init_size \(hex(UInt64(i))) is smaller than the \(p)-byte protected-mode part (bufsz > memsz)"
        case .initSizeOverflow(let b, let m):
            return "pref_address \(hex(b)) + PAGE_ALIGN(init_size) \(hex(m)) runs past 2^64"
        case .initSizeLargerThanRAM(let m, let ram):
            return "PAGE_ALIGN(init_size) \(formatSize(m)) is more than all System RAM (\(formatSize(ram)))"
        case .cmdlineTooLong(let n, let max):
            return "command line of \(n) bytes is longer than the image's cmdline_size \(max)"
        case .cmdlineNoRoomForElfcorehdr(let n, let max):
            return "command line of \(n) bytes leaves no room for elfcorehdr=<addr> "
                + "(\(BzImage.elfcorehdrRoom) bytes) within cmdline_size \(max)"
        }
    }

    /// The refusal as the planner reports it.
    public var rejection: Rejection { Rejection(errno, check: check, description) }
}

/// Bounds-checked little-endian reads; nil past the end.
struct LittleEndianReader {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    func u8(_ off: Int) -> UInt8? { off >= 0 && off < bytes.count ? bytes[off] : nil }
    func uint(_ off: Int, _ width: Int) -> UInt64? {
        guard off >= 0, width <= 8, off <= bytes.count - width else { return nil }
        var v: UInt64 = 0
        for i in 0..<width { v |= UInt64(bytes[off + i]) << (8 * UInt64(i)) }
        return v
    }
    func u16(_ off: Int) -> UInt16? { uint(off, 2).map { UInt16($0) } }
    func u32(_ off: Int) -> UInt32? { uint(off, 4).map { UInt32($0) } }
    func u64(_ off: Int) -> UInt64? { uint(off, 8) }
}
