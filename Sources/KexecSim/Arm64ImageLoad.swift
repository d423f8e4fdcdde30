import KexecModel
import Kimage

/// An arm64 Image loaded the way kexec_file_load does it on arm64 (arch/arm64/kernel/kexec_image.c
/// image_load, then machine_kexec_file.c load_other_segments, read in torvalds/linux 00c1d298, 6.x):
/// one code path for a real Image file and for a synthetic kernel (`kernel: { size: … }`, an
/// Image with text_offset 0 and image_size = size, as every Image since v5.8 has).
///
/// - kernel: image_size + text_offset bytes from a 2 MiB aligned base, bottom-up, anywhere in RAM
///   (buf_min 0); the segment then moves up by text_offset and the entry is its start.
/// - everything else is placed above the kernel (buf_min = kernel base + its page-aligned size):
///   for a crash load first the ELF core header (prepare_elf_headers), 64 KiB aligned ("largest
///   supported page size"), top-down; the initrd bottom-up inside round_down(base, 1 GiB) + 32 GiB;
///   the DTB top-down on a 2 MiB boundary (so it never crosses one).
/// - when the initrd or the DTB finds no hole, the kernel is taken back and placed again past its
///   first spot, until the kernel itself finds no hole (then the load fails with that error).
/// - PAGE_SIZE is the granule: every memsz is rounded up to it and every alignment is at least it
///   (kexec_add_buffer).
extension Arm64Planner {
    struct ImageLoad {
        var kernel: Segment
        var elfcorehdr: Segment?
        var initrd: Segment?
        var dtb: Segment
        var entry: PhysAddr
        var evidence: [(String, String)]
    }

    /// The kernel of an Image load: a file's bytes, or a synthetic Image of a size.
    enum KernelSource {
        case file(path: String, bytes: [UInt8])
        case synthetic(ByteCount)
    }

    /// An initrd for an Image load: the file's bytes, or a synthetic size.
    enum InitrdSource {
        case file(path: String, bytes: [UInt8])
        case size(ByteCount)
        var length: ByteCount {
            switch self {
            case .file(_, let b): return ByteCount(UInt64(b.count))
            case .size(let s): return s
            }
        }
    }

    static let initrdWindow: UInt64 = 32 << 30
    static let gib: UInt64 = 1 << 30

    /// The ELF core header's size as crash_prepare_elf64_headers (kernel/crash_core.c, 6.x) makes
    /// it for arm64's prepare_elf_headers: Elf64_Ehdr + Elf64_Phdr × (one PT_NOTE per possible CPU,
    /// the vmcoreinfo note, one PT_LOAD per memblock.memory range left after excluding crashk_res
    /// and crashk_low_res, the kernel text map), rounded up to ELF_CORE_HEADER_ALIGN (4096).
    static func elfcorehdrSize(memory: MemoryMap, crash: [AddressRange], cpus: Int) -> ByteCount {
        var ranges = memory.usable
        for r in crash { ranges.remove(r) }
        let phdrs = UInt64(max(cpus, 1)) + 1 + UInt64(ranges.ranges.count) + 1
        let raw = 64 + 56 * phdrs
        return ByteCount((raw + 4095) & ~UInt64(4095))
    }

    /// Parses the Image (image_probe, image_load's header checks) and places kernel, ELF core
    /// header, initrd and DTB. Header problems and missing holes are `Rejection`s, as the syscall
    /// would fail.
    static func loadImage(
        kernel source: KernelSource, initrd: InitrdSource?, chosen: Dtb.Chosen, memory: MemoryMap,
        elfcorehdrSize: ByteCount?, pageSize: ByteCount, devices: [FdtNode] = [], placer: inout Placer
    ) throws(Rejection) -> ImageLoad {
        let page = pageSize.raw
        func rounded(_ n: ByteCount) -> ByteCount { n.alignedUp(pageSize) ?? n }
        let textOffset: UInt64
        let reserved: UInt64
        var ev: [(String, String)] = []
        switch source {
        case .file(let path, let file):
            let image: Arm64Image
            do {
                image = try Arm64Image.parse(file)
                try image.checkLoad()
            } catch {
                throw error.rejection
            }
            textOffset = image.textOffset
            reserved = image.reservedSize
            ev = [("kernel_file", "\(path) (\(file.count) bytes)")] + image.evidence
        case .synthetic(let size):
            textOffset = 0
            reserved = size.raw
        }
        guard reserved <= UInt64.max - page else {
            throw Rejection(.EINVAL, check: "image_load", "image_size + text_offset \(hex(reserved)) wraps")
        }
        let kMemsz = ByteCount((reserved + page - 1) & ~(page - 1))
        let kAlign = max(kernelAlign, pageSize)
        var bufMin = PhysAddr(0)
        while true {
            var p = placer
            let base = try p.place(
                BufferRequest(role: .kernel, memsz: kMemsz, align: kAlign, bufMin: bufMin, topDown: false))
            let (aboveRaw, wraps) = base.raw.addingReportingOverflow(kMemsz.raw)
            guard !wraps else {
                throw Rejection(.EADDRNOTAVAIL, check: "kexec_locate_mem_hole", "kernel: no hole above \(base)")
            }
            let above = PhysAddr(aboveRaw)
            do {
                var initrdSeg: Segment?
                var elfSeg: Segment?
                var chosenHere = chosen
                if let len = elfcorehdrSize {
                    let memsz = rounded(len)
                    let at = try p.place(
                        BufferRequest(
                            role: .elfcorehdr, memsz: memsz, align: max(.kib(64), pageSize), bufMin: above,
                            topDown: true))
                    elfSeg = Segment(role: .elfcorehdr, mem: at, memsz: memsz, bytes: [], bufsz: len)
                    chosenHere.elfcorehdr = AddressRange(start: at, size: len)
                }
                if let initrd {
                    let len = initrd.length
                    let windowEnd = (base.raw & ~(gib - 1)).addingReportingOverflow(initrdWindow)
                    let bufMax = windowEnd.overflow ? PhysAddr(.max) : PhysAddr(windowEnd.partialValue)
                    let memsz = rounded(len)
                    let at = try p.place(
                        BufferRequest(
                            role: .initrd, memsz: memsz, align: pageSize, bufMin: above, bufMax: bufMax, topDown: false
                        ))
                    var seg = Segment(role: .initrd, mem: at, memsz: memsz, bytes: [], bufsz: len)
                    if case .file(_, let bytes) = initrd { seg.bytes = bytes }
                    initrdSeg = seg
                    chosenHere.initrd = AddressRange(start: at, size: len)
                }
                let blob = Dtb.build(memory: memory, chosen: chosenHere, devices: devices)
                let dtbLen = ByteCount(UInt64(blob.count))
                let dtbAt = try p.place(
                    BufferRequest(
                        role: .dtb, memsz: rounded(dtbLen), align: max(kernelAlign, pageSize), bufMin: above,
                        topDown: true))
                let dtbSeg = Segment(role: .dtb, mem: dtbAt, memsz: rounded(dtbLen), bytes: blob, bufsz: dtbLen)
                placer = p
                let entry = PhysAddr(base.raw &+ textOffset)
                var kernel = Segment(
                    role: .kernel, mem: entry, memsz: ByteCount(kMemsz.raw &- textOffset), bytes: [],
                    bufsz: ByteCount(reserved &- textOffset))
                if case .file(_, let file) = source {
                    kernel.bytes = file
                    kernel.bufsz = ByteCount(UInt64(file.count))
                }
                ev.append(
                    (
                        "image_placement",
                        "2MiB aligned base \(base) + text_offset \(hex(textOffset)) = entry \(entry), "
                            + "\(formatSize(kMemsz.raw)) reserved (image_size + text_offset)"
                    ))
                if case .file(let ipath, let bytes) = initrd {
                    ev.append(("initrd_file", "\(ipath) (\(bytes.count) bytes)"))
                }
                return ImageLoad(
                    kernel: kernel, elfcorehdr: elfSeg, initrd: initrdSeg, dtb: dtbSeg, entry: entry, evidence: ev)
            } catch {
                // image_load: drop the kernel segment and look for the next hole above it.
                bufMin = above
            }
        }
    }
}
