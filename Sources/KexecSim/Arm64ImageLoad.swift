import KexecModel
import Kimage

/// A real arm64 Image file loaded the way kexec_file_load does it on arm64:
/// arch/arm64/kernel/kexec_image.c image_load, then machine_kexec_file.c load_other_segments.
///
/// - kernel: image_size + text_offset bytes from a 2 MiB aligned base, bottom-up, anywhere in RAM
///   (buf_min 0); the segment then moves up by text_offset and the entry is its start.
/// - everything else is placed above the kernel (buf_min = kernel base + its page-aligned size):
///   the initrd bottom-up inside the 32 GiB window that starts at the kernel's 1 GiB boundary, the
///   DTB top-down on a 2 MiB boundary (so it never crosses one).
/// - when the initrd or the DTB finds no hole, the kernel is taken back and placed again past its
///   first spot, until the kernel itself finds no hole (then the load fails with that error).
///
/// - a crash load first adds the ELF core header (prepare_elf_headers: one PT_LOAD per memblock range
///   outside the crashkernel region, plus the kernel text map and a PT_NOTE; its contents are
///   synthetic here, its size and placement are the kernel's): 64 KiB aligned, top-down, above the
///   kernel; the DTB's /chosen gets linux,elfcorehdr.
extension Arm64Planner {
    struct ImageLoad {
        var kernel: Segment
        var elfcorehdr: Segment?
        var initrd: Segment?
        var dtb: Segment
        var entry: PhysAddr
        var evidence: [(String, String)]
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

    /// Parses the Image (image_probe, image_load's header checks) and places kernel, initrd and
    /// DTB. Header problems and missing holes are `Rejection`s, as the syscall would fail.
    static func loadImage(
        path: String, file: [UInt8], initrd: InitrdSource?, chosen: Dtb.Chosen, memory: MemoryMap,
        crashRegions: [AddressRange]? = nil, placer: inout Placer
    ) throws(Rejection) -> ImageLoad {
        let image: Arm64Image
        do {
            image = try Arm64Image.parse(file)
            try image.checkLoad()
        } catch {
            throw error.rejection
        }
        let page = kexecPageSize.raw
        // parse() checked that image_size + text_offset + 0xfff does not wrap.
        let kMemsz = ByteCount((image.reservedSize &+ (page - 1)) & ~(page - 1))
        var bufMin = PhysAddr(0)
        while true {
            var p = placer
            let base = try p.place(
                BufferRequest(role: .kernel, memsz: kMemsz, align: kernelAlign, bufMin: bufMin, topDown: false))
            let (aboveRaw, wraps) = base.raw.addingReportingOverflow(kMemsz.raw)
            guard !wraps else {
                throw Rejection(.EADDRNOTAVAIL, check: "kexec_locate_mem_hole", "kernel: no hole above \(base)")
            }
            let above = PhysAddr(aboveRaw)
            do {
                var initrdSeg: Segment?
                var elfSeg: Segment?
                var chosenHere = chosen
                if let crash = crashRegions {
                    var outside = RangeSet(memory.usable.ranges)
                    for r in crash { outside.remove(r) }
                    // Elf64_Ehdr + Elf64_Phdr × (PT_NOTE, kernel text, one PT_LOAD per range).
                    let len = ByteCount(64 + 56 * UInt64(outside.ranges.count + 2))
                    let at = try p.place(
                        BufferRequest(role: .elfcorehdr, memsz: len, align: .kib(64), bufMin: above, topDown: true))
                    elfSeg = Segment(
                        role: .elfcorehdr, mem: at, memsz: len.alignedUp(kexecPageSize) ?? len, bytes: [], bufsz: len)
                    chosenHere.elfcorehdr = AddressRange(start: at, size: len)
                }
                if let initrd {
                    let len = initrd.length
                    let windowEnd = (base.raw & ~(gib - 1)).addingReportingOverflow(initrdWindow)
                    let bufMax = windowEnd.overflow ? PhysAddr(.max) : PhysAddr(windowEnd.partialValue)
                    let at = try p.place(
                        BufferRequest(
                            role: .initrd, memsz: len, align: kexecPageSize, bufMin: above, bufMax: bufMax,
                            topDown: false))
                    let memsz = len.alignedUp(kexecPageSize) ?? len
                    var seg = Segment(role: .initrd, mem: at, memsz: memsz, bytes: [], bufsz: len)
                    if case .file(_, let bytes) = initrd { seg.bytes = bytes }
                    initrdSeg = seg
                    chosenHere.initrd = AddressRange(start: at, size: len)
                }
                let blob = Dtb.build(memory: memory, chosen: chosenHere)
                let dtbLen = ByteCount(UInt64(blob.count))
                let dtbAt = try p.place(
                    BufferRequest(role: .dtb, memsz: dtbLen, align: kernelAlign, bufMin: above, topDown: true))
                let dtbSeg = Segment(
                    role: .dtb, mem: dtbAt, memsz: dtbLen.alignedUp(kexecPageSize) ?? dtbLen, bytes: blob,
                    bufsz: dtbLen)
                placer = p
                let entry = PhysAddr(base.raw &+ image.textOffset)
                let kernel = Segment(
                    role: .kernel, mem: entry, memsz: ByteCount(kMemsz.raw &- image.textOffset), bytes: file,
                    bufsz: ByteCount(UInt64(file.count)))
                var ev: [(String, String)] = [("kernel_file", "\(path) (\(file.count) bytes)")] + image.evidence
                ev.append(
                    (
                        "image_placement",
                        "2MiB aligned base \(base) + text_offset \(hex(image.textOffset)) = entry \(entry), "
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
