import KexecModel
import Kimage

/// What Debian 12's kexec-tools 2.0.25 does for `kexec -l` / `kexec -p` of an arm64 Image
/// (kexec_load, `loader: kexec-tools`), read from kexec/arch/arm64/kexec-arm64.c
/// (get_memory_ranges, arm64_locate_kernel_segment, arm64_load_other_segments, setup_2nd_dtb),
/// kexec-image-arm64.c (image_arm64_load), crashdump-arm64.c (load_crashdump_segments) and
/// kexec/dt-ops.c, kexec-tools 2.0.25:
/// - memory ranges: /proc/iomem's "System RAM" lines, each minus the resources listed after it
///   that lie inside it (mem_regions_exclude drops only fully contained ones), except "Kernel
///   code", "Kernel data" and the crash-load "Crash kernel" range (the last one), which stay free;
/// - the kernel: a hole of text_offset + image_size bytes on a 2 MiB boundary, bottom-up from 0
///   (crash: the crash range's start rounded up to 2 MiB, failing when the image does not fit
///   there); the segment is the Image file at hole + text_offset, image_size bytes in memory;
/// - crash only, before the kernel: the ELF core header, Elf64_Ehdr + Elf64_Phdr × (possible CPUs
///   + vmcoreinfo + System RAM ranges left after cutting out every Crash kernel range + the kernel
///   image), rounded up to 1 KiB, top-down inside the crash range;
/// - then, bottom-up from the kernel's end (crash: up to the crash range's end): the initrd
///   (which must end within 32 GiB of the kernel's 1 GiB-aligned base), the DTB (at most 2 MiB),
///   and the purgatory (`KexecToolsPurgatory.arm64`);
/// - the DTB is the first kernel's (/sys/firmware/fdt) with /chosen bootargs set, for a crash load
///   linux,elfcorehdr and linux,usable-memory-range (the crash ranges, last first) in the root's
///   #address-cells / #size-cells (1 and 1 by default), linux,initrd-start / -end set (or
///   removed), packed after each setprop; a kaslr-seed it holds must be 0 and gets getrandom's
///   value (same size).
/// The entry is purgatory_start; it jumps to the Image with x0 = the DTB.
enum KexecToolsArm64 {
    static let kernelAlign: UInt64 = 2 << 20
    static let gib: UInt64 = 1 << 30
    static let dtbMax: UInt64 = 2 << 20

    struct Kernel {
        var fileBytes: UInt64
        var textOffset: UInt64
        var imageSize: UInt64
        var file: [UInt8]?
        var evidence: [(String, String)]
    }

    struct Layout {
        var segments: [KexecToolsMemory.Placed]
        var entry: PhysAddr
        var imageBase: PhysAddr
        var dtbBase: PhysAddr
        var dtb: [UInt8]
        var rules: [AppliedRule]
    }

    /// get_memory_ranges (kexec-arm64.c): System RAM minus what iomem nests in it, in file order.
    static func memoryRanges(_ iomem: [IomemResource]) -> [KexecToolsMemory.MemoryRange] {
        let crashLoad = iomem.last { $0.name == "Crash kernel" }?.range
        var ranges: [KexecToolsMemory.MemoryRange] = []
        for r in iomem {
            if r.name == "System RAM" {
                ranges.append(.init(first: r.range.first.raw, last: r.range.last.raw, isRAM: true))
                continue
            }
            if r.name == "Kernel code" || r.name == "Kernel data" { continue }
            if r.name == "Crash kernel" && r.range == crashLoad { continue }
            guard let last = ranges.last, last.last >= r.range.first.raw, r.range.last.raw >= last.first else {
                continue
            }
            exclude(&ranges, first: r.range.first.raw, last: r.range.last.raw)
        }
        return ranges
    }

    /// mem_regions_exclude (kexec/mem_regions.c, 2.0.25): only a range that holds the whole hole
    /// changes; a split appends the upper part at the end.
    static func exclude(_ ranges: inout [KexecToolsMemory.MemoryRange], first: UInt64, last: UInt64) {
        var i = 0
        while i < ranges.count {
            let r = ranges[i]
            if r.first <= first && r.last >= last {
                if r.first == first {
                    if r.last == last {
                        ranges.remove(at: i)
                        continue
                    }
                    ranges[i].first = last + 1
                } else if r.last == last {
                    ranges[i].last = first - 1
                } else {
                    ranges.append(.init(first: last + 1, last: r.last, isRAM: true))
                    ranges[i].last = first - 1
                    break
                }
            }
            i += 1
        }
    }

    /// The ELF core header's bufsz (crash_create_elf64_headers over system_memory_rgns).
    static func elfcorehdrBufsz(iomem: [IomemResource], crash: [AddressRange], cpus: Int) -> UInt64 {
        var system = iomem.filter { $0.name == "System RAM" }.map {
            KexecToolsMemory.MemoryRange(first: $0.range.first.raw, last: $0.range.last.raw, isRAM: true)
        }
        for c in crash { exclude(&system, first: c.first.raw, last: c.last.raw) }
        let hasKernel = iomem.contains { $0.name == "Kernel data" } ? 1 : 0
        let phdrs = UInt64(max(cpus, 1)) + 1 + UInt64(system.count) + UInt64(hasKernel)
        return (64 + phdrs * 56 + 1023) & ~UInt64(1023)
    }

    /// The first kernel's DTB: the recorded one, else a tree of this machine's memory with a
    /// /chosen holding the first kernel's bootargs and `devices` (a synthetic machine has none
    /// recorded; a followed run gives it QEMU virt's platform nodes, DtbPlatform).
    static func firstKernelDtb(_ m: Machine, devices: [FdtNode] = []) -> [UInt8] {
        if let f = m.firstKernelFdt { return f }
        return Dtb.build(memory: m.memory, chosen: Dtb.Chosen(bootargs: "console=ttyAMA0"), devices: devices)
    }

    /// #address-cells / #size-cells of the root, 1 / 1 when absent (get_cells_size).
    static func cells(_ fdt: [UInt8]) -> (UInt32, UInt32) {
        guard let tree = try? Fdt.decode(fdt) else { return (1, 1) }
        return (tree.root.property("#address-cells")?.u32Value ?? 1, tree.root.property("#size-cells")?.u32Value ?? 1)
    }

    static func cellsValue(_ ranges: [AddressRange], address: UInt32, size: UInt32) -> [UInt8] {
        func cell(_ v: UInt64, _ n: UInt32) -> [UInt8] {
            let bytes = (0..<8).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
            return n == 1 ? Array(bytes[4...]) : [UInt8](repeating: 0, count: Int(n) * 4 - 8) + bytes
        }
        return ranges.flatMap { cell($0.first.raw, address) + cell($0.size.raw, size) }
    }

    static func fail(_ check: String, _ why: String) -> Rejection {
        Rejection(.EFAILED, check: "kexec-tools \(check)", why)
    }

    /// Places everything; `pageSize` is getpagesize(), the kernel's granule.
    static func layout(
        machine: Machine, request req: KexecRequest, kernel: Kernel, initrdSize: UInt64?, pageSize: UInt64 = 4096,
        devices: [FdtNode] = []
    ) throws(Rejection) -> Layout {
        let iomem = machine.iomemView
        var mem = KexecToolsMemory(ranges: memoryRanges(iomem), pageSize: pageSize)
        let crashRanges = iomem.filter { $0.name == "Crash kernel" }.map(\.range)
        var rules = [
            AppliedRule(
                "kexec_tools_memory_ranges",
                "/proc/iomem System RAM minus nested resources (not Kernel code/data, "
                    + "not the crash-load range)",
                source: "kexec/arch/arm64/kexec-arm64.c get_memory_ranges, kexec-tools 2.0.25")
        ]
        let crash = req.type == .crash
        var elfcorehdr: AddressRange?
        let kernelHole: UInt64
        let (span, wraps) = kernel.textOffset.addingReportingOverflow(kernel.imageSize)
        guard !wraps, span < 1 << 48 else {
            throw fail("image_arm64_load", "text_offset + image_size 0x\(String(span, radix: 16)) is not an image size")
        }
        if crash {
            guard let window = crashRanges.last else {
                throw fail("load_crashdump_segments", "no Crash kernel range in /proc/iomem")
            }
            let bufsz = elfcorehdrBufsz(iomem: iomem, crash: crashRanges, cpus: machine.cpus)
            let at = try mem.addBuffer(
                .elfcorehdr, bufsz: bufsz, memsz: bufsz, align: 0, min: window.first.raw, max: window.last.raw,
                bottomUp: false)
            elfcorehdr = AddressRange(start: PhysAddr(at), size: ByteCount(bufsz))
            let hole = (max(window.first.raw, mem.memMin) + kernelAlign - 1) & ~(kernelAlign - 1)
            guard hole &+ span <= mem.memMax, hole &+ span <= window.last.raw else {
                throw fail("arm64_locate_kernel_segment", "Crash kernel out of range")
            }
            kernelHole = hole
            rules.append(
                AppliedRule(
                    "kexec_tools_crash",
                    "ELF core header 0x\(String(bufsz, radix: 16)) bytes top-down in \(window); "
                        + "kernel at the window's start rounded up to 2 MiB",
                    source: "kexec/arch/arm64/crashdump-arm64.c, kexec-arm64.c, kexec-tools 2.0.25"))
        } else {
            kernelHole = try mem.locateHole(size: span, align: kernelAlign, min: 0, max: .max, bottomUp: true)
        }
        let imageBase = kernelHole + kernel.textOffset
        try mem.addSegment(.kernel, bufsz: kernel.fileBytes, base: imageBase, memsz: kernel.imageSize)
        // arm64_load_other_segments.
        var dtb: LibfdtBlob
        do {
            dtb = try LibfdtBlob(firstKernelDtb(machine, devices: devices))
            if !req.cmdline.isEmpty {
                guard req.cmdline.utf8.count <= 2047 else {
                    throw fail("arm64_load_other_segments", "Kernel command line too long for kernel!")
                }
                try dtb.setProperty(node: "chosen", "bootargs", Array(req.cmdline.utf8) + [0])
                dtb.pack()
            }
            if let seed = try dtb.value(node: "chosen", "kaslr-seed"), seed.count == 8 {
                guard seed.allSatisfy({ $0 == 0 }) else {
                    throw fail("setup_2nd_dtb", "kaslr-seed is not wiped to 0.")
                }
                try dtb.setProperty(node: "chosen", "kaslr-seed", [0, 0, 0, 0, 0, 0, 0x4b, 0x54])
                dtb.pack()
            }
            if crash, let e = elfcorehdr {
                let (ac, sc) = cells(dtb.packedBytes)
                for r in [e] + crashRanges
                where (ac == 1 && r.first.raw >= 1 << 32) || (sc == 1 && r.size.raw >= 1 << 32) {
                    throw fail("setup_2nd_dtb", "\(r) doesn't fit cells-size")
                }
                try dtb.setProperty(node: "chosen", "linux,elfcorehdr", cellsValue([e], address: ac, size: sc))
                try dtb.setProperty(
                    node: "chosen", "linux,usable-memory-range",
                    cellsValue(crashRanges.reversed(), address: ac, size: sc))
                dtb.pack()
            }
        } catch let f as LibfdtBlob.Failure {
            throw fail("setup_2nd_dtb", "kexec: Invalid 2nd device tree (\(f))")
        } catch let r as Rejection {
            throw r
        } catch {
            throw fail("setup_2nd_dtb", "\(error)")
        }
        let holeMin = imageBase + kernel.imageSize
        let holeMax = crash ? (crashRanges.last?.last.raw ?? .max) : .max
        if let initrdSize {
            let at = try mem.addBuffer(
                .initrd, bufsz: initrdSize, memsz: initrdSize, align: 0, min: holeMin, max: holeMax, bottomUp: true)
            let end = at + initrdSize
            guard (end + gib - 1) & ~(gib - 1) - (imageBase & ~(gib - 1)) <= 32 * gib else {
                throw fail("arm64_load_other_segments", "kexec: Error: image + initrd too big.")
            }
            do {
                try dtb.setProperty(node: "chosen", "linux,initrd-start", bigEndian64(at))
                dtb.pack()
                try dtb.setProperty(node: "chosen", "linux,initrd-end", bigEndian64(end))
                dtb.pack()
            } catch {
                throw fail("dtb_set_initrd", "\(error)")
            }
        } else {
            // dtb_clear_initrd: the properties go, dtb.size stays what it was.
            _ = try? dtb.deleteProperty(node: "chosen", "linux,initrd-start")
            _ = try? dtb.deleteProperty(node: "chosen", "linux,initrd-end")
        }
        let dtbSize = UInt64(dtb.totalSize)
        guard dtbSize <= dtbMax else { throw fail("arm64_load_other_segments", "kexec: Error: dtb too big.") }
        let dtbBase = try mem.addBuffer(
            .dtb, bufsz: dtbSize, memsz: dtbSize, align: 0, min: holeMin, max: holeMax, bottomUp: true)
        let purgatory = KexecToolsPurgatory.arm64
        let fp = purgatory.footprint
        let pBase = try mem.addBuffer(
            .purgatory, bufsz: fp.bufsz, memsz: fp.memsz, align: fp.align, min: holeMin, max: holeMax, bottomUp: true)
        rules.append(
            AppliedRule(
                "kexec_tools_image",
                "kernel at 0x\(String(imageBase, radix: 16)) (2 MiB + text_offset 0x\(String(kernel.textOffset, radix: 16))); "
                    + "initrd, dtb (0x\(String(dtbSize, radix: 16)) bytes), purgatory bottom-up above it",
                source: "kexec/arch/arm64/kexec-arm64.c arm64_load_other_segments, kexec-tools 2.0.25"))
        for s in mem.segments where !mem.validRange(first: s.mem, last: s.mem + s.memsz - 1) {
            throw fail("my_load", "Invalid memory segment 0x\(String(s.mem, radix: 16)) (\(s.role.name))")
        }
        try mem.sortSegments()
        var bytes = dtb.packedBytes
        // A blob whose properties were only deleted keeps its old size (and packed content).
        if bytes.count < Int(dtbSize) { bytes += [UInt8](repeating: 0, count: Int(dtbSize) - bytes.count) }
        return Layout(
            segments: mem.sorted, entry: PhysAddr(pBase + purgatory.entry), imageBase: PhysAddr(imageBase),
            dtbBase: PhysAddr(dtbBase), dtb: Array(bytes.prefix(Int(dtbSize))), rules: rules)
    }

    static func bigEndian64(_ v: UInt64) -> [UInt8] {
        (0..<8).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
    }
}

/// The arm64 kexec-tools load as the planner's segments with their contents: the Image (a file,
/// or a synthetic one of `size` bytes with image_size `init_size` or `size`, text_offset 0), the
/// initrd, the ELF core header (zeros: its contents are not modelled), the edited DTB, and the
/// purgatory (filled later by `seal`).
extension KexecToolsArm64 {
    struct Planned {
        var segments: [Segment]
        var layout: Layout
        var imageInfo: [(String, String)]
    }

    static func plan(_ sc: Scenario, pageSize: UInt64) throws(PlanError) -> Result<Planned, Rejection> {
        guard let req = sc.kexec else { throw .unsupported("no kexec section") }
        let kernel: Kernel
        if let path = req.kernel?.file {
            let file = try RealImages.readFile(path, field: "kexec.kernel.file", scenario: sc)
            let image: Arm64Image
            do {
                image = try Arm64Image.parse(file)
            } catch {
                // image_arm64_probe: no other arm64 type takes it either.
                return .failure(fail("my_load", "Cannot determine the file type of \(path)"))
            }
            // arm64_process_image_header: image_size 0 (3.16 and older) means text_offset 0x80000
            // and 16 MiB.
            let (off, size) = image.imageSize == 0 ? (0x80000, 16 << 20) : (image.textOffset, image.imageSize)
            kernel = Kernel(
                fileBytes: UInt64(file.count), textOffset: off, imageSize: size, file: file,
                evidence: [("kernel_file", "\(path) (\(file.count) bytes)")] + image.evidence)
        } else {
            guard let size = req.kernel?.size, size.raw > 0, size.raw <= Planner.maxSyntheticBytes else {
                throw .input(
                    InputError(
                        file: sc.file, line: nil, field: "kexec.kernel",
                        message: "kexec-tools needs a kernel: { file } or { size } of 1 byte to 8GiB"))
            }
            let imageSize = max(req.kernel?.initSize?.raw ?? size.raw, size.raw)
            kernel = Kernel(fileBytes: size.raw, textOffset: 0, imageSize: imageSize, file: nil, evidence: [])
        }
        let initrdInput = try KexecToolsInitrd(req, scenario: sc)
        let layout: Layout
        do {
            layout = try self.layout(
                machine: sc.machine, request: req, kernel: kernel, initrdSize: initrdInput.size, pageSize: pageSize,
                devices: sc.follow == nil ? [] : DtbPlatform.virt().nodes)
        } catch {
            return .failure(error)
        }
        let segments = layout.segments.map { p -> Segment in
            let bytes: [UInt8]
            switch p.role {
            case .kernel:
                bytes =
                    kernel.file.map { Array($0.prefix(Int(p.bufsz))) }
                    ?? Payload.synthetic(name: "kernel", size: Int(p.bufsz))
            case .initrd: bytes = initrdInput.bytes ?? Payload.synthetic(name: "initrd", size: Int(p.bufsz))
            case .dtb: bytes = layout.dtb
            case .purgatory: bytes = []
            default: bytes = [UInt8](repeating: 0, count: Int(p.bufsz))
            }
            return Segment(
                role: p.role, mem: PhysAddr(p.mem), memsz: ByteCount(p.memsz), bytes: bytes, bufsz: ByteCount(p.bufsz))
        }
        let info = [("loader", "kexec-tools 2.0.25 (Debian 12) Image, kexec_load")] + kernel.evidence
        return .success(Planned(segments: segments, layout: layout, imageInfo: info))
    }
}
