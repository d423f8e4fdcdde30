import Foundation
import KexecModel
import Kimage

/// The x86_64 kexec-tools load turned into the planner's segments with their contents: the kernel
/// (a bzImage file or a synthetic one), the initrd, real_mode_data as kexec-tools fills it, the
/// crash segments (zeros, as kexec-tools passes the backup region; the ELF core header's bytes are
/// not modelled: zeros), setup_data entries (zeros), and the purgatory (filled later by `seal`).
extension KexecToolsX86 {
    struct Planned {
        var segments: [Segment]
        var layout: Layout
        var imageInfo: [(String, String)]
    }

    /// bzImage64_probe's conditions (kexec-bzImage64.c, 2.0.25): boot protocol 2.12 or later,
    /// LOADED_HIGH, and XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G.
    static func kernel(_ req: KexecRequest, scenario: Scenario) throws(PlanError) -> Result<Kernel, Rejection> {
        if let path = req.kernel?.file {
            let file = try RealImages.readFile(path, field: "kexec.kernel.file", scenario: scenario)
            let h: BzImage
            do {
                h = try BzImage.parse(file, fiveLevelPaging: scenario.machine.paging == .fiveLevel)
            } catch {
                return .failure(
                    Rejection(.EFAILED, check: "kexec-tools my_load", "Cannot determine the file type of \(path)"))
            }
            guard h.version >= 0x020c, h.loadflags & 1 == 1, h.xloadflags & 3 == 3 else {
                return .failure(
                    Rejection(
                        .EFAILED, check: "kexec-tools bzImage64_probe",
                        "\(path): not a relocatable bzImage64 (protocol \(h.versionString), xloadflags "
                            + "0x\(String(h.xloadflags, radix: 16)))"))
            }
            let setup = UInt64(h.setupSects + 1) * 512
            return .success(
                Kernel(
                    setupBytes: setup, payloadBytes: UInt64(file.count) - setup, initSize: UInt64(h.initSize),
                    alignment: UInt64(h.kernelAlignment), cmdlineSize: UInt64(h.cmdlineSize),
                    efiKexec: h.xloadflags & 0x10 != 0,
                    file: RealImages.X86Kernel(path: path, file: file, header: h)))
        }
        guard let size = req.kernel?.size, size.raw > 0, size.raw <= Planner.maxSyntheticBytes else {
            throw .input(
                InputError(
                    file: scenario.file, line: nil, field: "kexec.kernel",
                    message: "kexec-tools needs a kernel: { file } or { size } of 1 byte to 8GiB"))
        }
        let initSize = req.kernel?.initSize ?? X86FileLoadRules.syntheticInitSize(payload: size) ?? size
        // A synthetic kernel is a Debian-like bzImage: setup_sects 39 unless `setup_size` says,
        // 2 MiB alignment, cmdline_size 2047, XLF_EFI_KEXEC set.
        return .success(
            Kernel(
                setupBytes: req.kernel?.setupSize?.raw ?? syntheticSetupBytes, payloadBytes: size.raw,
                initSize: initSize.raw,
                alignment: X86FileLoadRules.syntheticKernelAlignment.raw, cmdlineSize: 2047, efiKexec: true, file: nil))
    }

    /// Places and fills every segment; `.failure` when kexec-tools would give up.
    static func plan(_ scenario: Scenario) throws(PlanError) -> Result<Planned, Rejection> {
        guard let req = scenario.kexec else { throw .unsupported("no kexec section") }
        let k: Kernel
        switch try kernel(req, scenario: scenario) {
        case .failure(let r): return .failure(r)
        case .success(let v): k = v
        }
        let initrdInput = try KexecToolsInitrd(req, scenario: scenario)
        let layout: Layout
        do {
            layout = try self.layout(machine: scenario.machine, request: req, kernel: k, initrdSize: initrdInput.size)
        } catch {
            return .failure(error)
        }
        let initrd = layout.segments.first { $0.role == .initrd }
        var segments: [Segment] = []
        for p in layout.segments {
            var bytes: [UInt8] = []
            switch p.role {
            case .kernel:
                bytes =
                    k.file.map { Array($0.file[Int(k.setupBytes)...]) }
                    ?? Payload.synthetic(name: "kernel", size: Int(p.bufsz))
            case .initrd:
                bytes = initrdInput.bytes ?? Payload.synthetic(name: "initrd", size: Int(p.bufsz))
            case .bootParams:
                bytes = realModeData(
                    layout: layout, kernel: k, machine: scenario.machine, initrd: initrd, size: p.bufsz)
            case .purgatory:
                bytes = []
            default:
                bytes = [UInt8](repeating: 0, count: Int(p.bufsz))
            }
            segments.append(
                Segment(
                    role: p.role, mem: PhysAddr(p.mem), memsz: ByteCount(p.memsz), bytes: bytes,
                    bufsz: ByteCount(p.bufsz)))
        }
        var info: [(String, String)] = [
            ("loader", "kexec-tools 2.0.25 (Debian 12) bzImage64, kexec_load"),
            ("kexec_tools_command_line", layout.commandLine),
        ]
        if let f = k.file { info += f.evidence }
        return .success(Planned(segments: segments, layout: layout, imageInfo: info))
    }

    /// real_mode_data as do_bzImage64_load and setup_linux_bootloader_parameters_high fill it: the
    /// image's setup header (a file's), loader_type KEXEC, the initrd, cmd_line_ptr at
    /// base + max(setup part, 4 KiB) with the command line there, the e820 table (the memory
    /// ranges, or the crash kernel's memmap), ext_mem_k and acpi_rsdp_addr.
    static func realModeData(
        layout: Layout, kernel: Kernel, machine: Machine, initrd: KexecToolsMemory.Placed?, size: UInt64
    ) -> [UInt8] {
        var bp = [UInt8](repeating: 0, count: Int(size))
        func put(_ off: Int, _ v: UInt64, _ n: Int) {
            guard off + n <= bp.count else { return }
            for i in 0..<n { bp[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        if let f = kernel.file {
            // setup_header_size = kernel[0x201] + 0x202 - 0x1f1, at most 0x7f.
            let n = min(Int(f.file[0x201]) + 0x202 - 0x1f1, 0x7f)
            if 0x1f1 + n <= f.file.count { bp.replaceSubrange(0x1f1..<0x1f1 + n, with: f.file[0x1f1..<0x1f1 + n]) }
        } else {
            put(0x1fe, 0xaa55, 2)
            put(0x202, 0x5372_6448, 4)  // "HdrS"
            put(0x206, 0x020f, 2)
        }
        put(0x210, 0xd0, 1)  // loader_type: LOADER_TYPE_KEXEC << 4
        if let initrd {
            put(0x218, initrd.mem & 0xffff_ffff, 4)
            put(0x21c, initrd.bufsz & 0xffff_ffff, 4)
            put(0x0c0, initrd.mem >> 32, 4)
            put(0x0c4, initrd.bufsz >> 32, 4)
        }
        let base = layout.realModeData.raw
        let cmdPtr = base + layout.commandLineOffset
        put(0x20, 0xa33f, 2)  // cl_magic
        put(0x22, layout.commandLineOffset & 0xffff, 2)  // cl_offset
        put(0x228, cmdPtr & 0xffff_ffff, 4)
        put(0x0c8, cmdPtr >> 32, 4)
        let line = Array(layout.commandLine.utf8.prefix(commandLineSize - 1)) + [0]
        let at = Int(layout.commandLineOffset)
        if at + line.count <= bp.count { bp.replaceSubrange(at..<at + line.count, with: line) }
        let n = min(layout.e820.count, e820Max)
        for i in 0..<n {
            let r = layout.e820[i]
            let off = 0x2d0 + i * Int(e820Entry)
            put(off, r.first, 8)
            put(off + 8, r.last - r.first + 1, 8)
            put(off + 16, UInt64(layout.e820Types[i]), 4)
            if r.isRAM, r.first <= 0x10_0000, r.last > 0x10_0000 {
                let memK = (r.last >> 10) - (0x10_0000 >> 10)
                put(0x002, min(memK, 0xfc00), 2)  // ext_mem_k
                put(0x1e0, min(memK, 0xffff_ffff), 4)  // alt_mem_k
            }
        }
        put(0x1e8, UInt64(n), 1)
        if let rsdp = machine.acpiRsdp { put(0x070, rsdp.raw, 8) }
        return bp
    }
}
