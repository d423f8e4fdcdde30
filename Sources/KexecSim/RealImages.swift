import Foundation
import KexecModel
import Kimage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Real kernel and initrd files for kexec_file_load (`kexec.kernel: { file: … }`): an x86_64 bzImage
/// loaded the way arch/x86/kernel/kexec-bzimage64.c loads it, an initrd loaded byte for byte.
public enum RealImages {
    /// Largest file read: KEXEC_FILE_SIZE_MAX (4 GiB); the kernel refuses bigger ones with EFBIG,
    /// here it is an input error.
    public static let maxFileBytes: UInt64 = 4 << 30

    /// A probed bzImage: the whole file (boot_params needs its setup header) and the parsed header.
    public struct X86Kernel: Sendable {
        public var path: String
        public var file: [UInt8]
        public var header: BzImage
        /// The protected-mode part: the kernel segment's buffer.
        public var payload: ArraySlice<UInt8> { file[header.protectedModeOffset...] }
        /// Header fields for the landed verdict's evidence.
        public var evidence: [(String, String)] {
            [("kernel_file", "\(path) (\(file.count) bytes)")] + header.evidence
        }
    }

    /// Reads a payload file whole. Input errors, each naming `field` and the path: a missing file,
    /// a path that is not a regular file after following symlinks ("not a regular file (a
    /// directory)", "… (a character device)", …: /dev/zero would read forever), a file over
    /// KEXEC_FILE_SIZE_MAX, or one that cannot be read.
    public static func readFile(_ path: String, field: String, scenario: Scenario) throws(PlanError) -> [UInt8] {
        func fail(_ m: String) -> PlanError {
            .input(InputError(file: scenario.file, line: nil, field: field, message: "\"\(path)\": " + m))
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw fail(
                errno == ENOENT || errno == ENOTDIR
                    ? "no such file" : "cannot be read: \(String(cString: strerror(errno)))")
        }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFREG else { throw fail("not a regular file (\(fileKind(kind)))") }
        let size = UInt64(st.st_size)
        guard size <= maxFileBytes else {
            throw fail("\(formatSize(size)) is more than kexec_file_load reads (KEXEC_FILE_SIZE_MAX, 4GiB)")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw fail("cannot be read: \(error.localizedDescription)")
        }
        guard UInt64(data.count) <= maxFileBytes else { throw fail("more than 4GiB") }
        return [UInt8](data)
    }

    /// What a non-regular file is, for the error message.
    static func fileKind(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        default: return "file type 0o" + String(type, radix: 8)
        }
    }

    /// Reads an initrd file, loaded as it is; an empty one is an input error.
    public static func readInitrd(_ path: String, scenario: Scenario) throws(PlanError) -> [UInt8] {
        let bytes = try readFile(path, field: "kexec.initrd.file", scenario: scenario)
        guard !bytes.isEmpty else {
            throw .input(
                InputError(file: scenario.file, line: nil, field: "kexec.initrd.file", message: "file is empty"))
        }
        return bytes
    }

    /// kexec_load's segments as userspace passes them, checked as the kernel checks them first, and
    /// reserved in the placer so that what is added later (purgatory) goes around them. Each keeps
    /// the fixture's label through `SegmentRole(userLabel:)`: `kernel`, `boot_params`, `dtb`, … take
    /// those roles, any other label (and `purgatory`) is a `.user` segment. The checks count in
    /// PAGE_SIZE units (`pageSize`: the granule on arm64).
    public static func userSegments(
        _ req: KexecRequest, machine: Machine, crash: [AddressRange], limits: ArchLimits, placer: inout Placer,
        pageSize: ByteCount = kexecPageSize
    ) throws(Rejection) -> [Segment] {
        let segments = req.segments.map {
            Segment(
                role: SegmentRole(userLabel: $0.name), mem: $0.mem, memsz: $0.memsz, bytes: [], bufsz: $0.bufsz,
                source: $0.source)
        }
        try SanityCheck.check(
            segments: segments, syscall: .kexecLoad, type: req.type, totalRAM: machine.memory.totalRAM,
            crashRegions: crash, limits: limits, pageSize: pageSize)
        for s in segments { if let r = s.range { placer.reserve(name: s.name, r) } }
        return segments
    }

    /// Reads and probes a bzImage as bzImage64_probe and the first checks of bzImage64_load do,
    /// before anything is placed. A format problem is a `Rejection` (ENOEXEC, EINVAL, …).
    public static func x86BzImage(path: String, scenario: Scenario) throws -> X86Kernel {
        let file = try readFile(path, field: "kexec.kernel.file", scenario: scenario)
        let machine = scenario.machine
        let cmdline = scenario.kexec?.cmdline ?? ""
        do {
            let header = try BzImage.parse(file, fiveLevelPaging: machine.paging == .fiveLevel)
            // kexec-tools passes the command line with its NUL.
            try header.checkLoad(cmdlineLength: cmdline.utf8.count + 1, totalRAM: machine.memory.totalRAM.raw)
            return X86Kernel(path: path, file: file, header: header)
        } catch {
            throw error.rejection
        }
    }

    /// The kernel segment as bzImage64_load adds it: buffer = the protected-mode part,
    /// memsz = PAGE_ALIGN(init_size), align = kernel_alignment, buf_min as the running kernel picks
    /// it (`X86FileLoadRules.kernelBufMin`: v6.9+ pref_address but at least MIN_KERNEL_LOAD_ADDR,
    /// before MIN_KERNEL_LOAD_ADDR). The 64-bit entry is the load address + 0x200.
    public static func x86BzImageSegment(_ k: X86Kernel, bufMin: PhysAddr, placer: inout Placer) throws(Rejection)
        -> Segment
    {
        let h = k.header
        let memsz = ByteCount(h.kernelMemsz)
        let at = try placer.place(
            BufferRequest(role: .kernel, memsz: memsz, align: ByteCount(h.kernelBufAlign), bufMin: bufMin))
        return Segment(role: .kernel, mem: at, memsz: memsz, bytes: Array(k.payload))
    }

    /// boot_params for a bzImage, as bzImage64_load fills it:
    /// - starts from `Payload.bootParams` (e820 table, command line after the first 4 KiB, its pointer);
    /// - copies the image's setup header, file[0x1f1 ..< 0x202 + file[0x201]], over `hdr` (so version,
    ///   cmdline_size, kernel_alignment, init_size, xloadflags … are the image's own);
    /// - then sets what the loader sets after the copy: cmd_line_ptr (low 32 bits; the high half is
    ///   ext_cmd_line_ptr, outside hdr), ramdisk_image / ramdisk_size and ext_ramdisk_image /
    ///   ext_ramdisk_size for the initrd, type_of_loader = 0xD0 (kexec), loadflags = 0, and
    ///   hardware_subarch from the first kernel (0, a PC).
    /// EFI info and its setup_data are added by `X86EfiState.apply` (EFI-booted machines).
    /// Not modelled: screen_info, EDD, the RNG seed setup_data, ext_mem_k / alt_mem_k.
    public static func x86BootParams(
        machine: Machine, cmdline: String, loadAddress: PhysAddr, kernel: X86Kernel, initrd: Segment?
    ) -> [UInt8] {
        var bp = Payload.bootParams(machine: machine, cmdline: cmdline, loadAddress: loadAddress)
        let hdr = kernel.header.setupHeaderBytes(of: kernel.file)
        let base = BzImage.setupHeaderOffset
        bp.replaceSubrange(base..<base + hdr.count, with: hdr)
        func put(_ off: Int, _ v: UInt64, _ n: Int) {
            for i in 0..<n { bp[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        let cmdAddr = loadAddress.raw &+ 0x1000
        put(0x228, cmdAddr & 0xffff_ffff, 4)  // hdr.cmd_line_ptr
        put(0x210, 0xd0, 1)  // hdr.type_of_loader: 0x0D << 4
        put(0x211, 0, 1)  // hdr.loadflags
        put(0x23c, 0, 4)  // hdr.hardware_subarch: X86_SUBARCH_PC
        if let initrd {
            let len = initrd.bufsz.raw
            put(0x218, initrd.mem.raw & 0xffff_ffff, 4)  // hdr.ramdisk_image
            put(0x21c, len & 0xffff_ffff, 4)  // hdr.ramdisk_size
            put(0x0c0, initrd.mem.raw >> 32, 4)  // ext_ramdisk_image
            put(0x0c4, len >> 32, 4)  // ext_ramdisk_size
        }
        return bp
    }
}
