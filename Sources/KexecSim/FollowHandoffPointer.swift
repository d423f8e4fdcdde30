import Emulator
import Foundation
import KexecModel
import Kimage

/// `--follow` with a `handoff-pointer` injection: where the next kernel first reads the pointer it
/// was handed. Every TLB fill of the run is translated once more; the first whose physical page is
/// the handed pointer's page is the kernel's first access to what it believes is its boot_params /
/// DTB (arm64 6.1: early_fdt_map → fixmap_remap_fdt reads the FDT magic through the FIX_FDT
/// fixmap slot, arch/arm64/mm/mmu.c, 6.1.192; x86_64 6.1: the decompressor's startup_64 reads
/// BP_kernel_alignment(%rsi) through kexec's identity map, arch/x86/boot/compressed/head_64.S,
/// 6.1.192).
final class HandoffPointerWatch {
    let pointer: PhysAddr
    /// Each distinct virtual address the page was reached through (the pointer's offset kept), in
    /// order, with the first access's kind.
    private(set) var addresses: [(va: UInt64, access: MemoryAccess)] = []
    private(set) var fills = 0

    /// nil when the plan hands the real pointer.
    init?(plan: Plan) {
        guard plan.handsWrongPointer else { return nil }
        pointer = plan.handedArgument
    }

    func observe<A: EngineArchitecture>(_ va: UInt64, _ access: MemoryAccess, engine e: Engine<A>) {
        guard case .success(let t) = e.translate(VirtAddr(va), access: access),
            t.pa.raw >> 12 == pointer.raw >> 12
        else { return }
        fills += 1
        let at = va & ~0xfff | pointer.raw & 0xfff
        if !addresses.contains(where: { $0.va == at }) { addresses.append((at, access)) }
    }

    /// `handoff_pointer_read`: the virtual addresses the kernel reached the pointer through, in
    /// order (arm64 6.1: the ID map's copy that head.S create_idmap makes for kaslr_early_init, then
    /// the FIX_FDT fixmap slot), and how many TLB fills reached its page.
    var evidence: [Evidence] {
        guard !addresses.isEmpty else {
            return [Evidence(.handoffPointerRead, "never: no access reached the page of \(hex(pointer.raw))")]
        }
        let through = addresses.map { "\($0.access.rawValue) via VA \(hex($0.va))" }.joined(separator: ", then ")
        return [
            Evidence(
                .handoffPointerRead,
                "\(hex(pointer.raw)): \(through); \(fills) TLB fill\(fills == 1 ? "" : "s") of its page")
        ]
    }
}

/// The arm64 Image's own log when no console was registered (a kernel without its DTB has no
/// command line, so no earlycon): printk's records sit in `__log_buf`, a static array in the
/// Image's bss (kernel/printk/printk.c, 6.1.192), each data block an `unsigned long` id followed by
/// the record's text (kernel/printk/printk_ringbuffer.c, struct prb_data_block). The bss is the
/// part of the Image's footprint (header `image_size`) past the file's bytes: zeros at entry, so
/// the printable text there is what the kernel wrote. Read in address order, the runs are the
/// records in the order they were stored.
enum Arm64KernelLog {
    struct Log {
        var lines: [String]
        var evidence: Evidence {
            Evidence(
                .kernelLog,
                "no console was registered; the kernel's printk buffer (bss) holds: " + lines.joined(separator: " | "))
        }
    }

    /// Runs of at least this many printable bytes count as text.
    static let minimumRun = 12

    static func read(plan: Plan, memory: GuestMemory) -> Log? {
        guard plan.arm64 != nil, let k = plan.segments.first(where: { $0.role == .kernel }), k.bytes.count >= 24
        else { return nil }
        // Image header: image_size, little-endian u64 at offset 16 (Documentation/arm64/booting.rst).
        let imageSize = k.bytes[16..<24].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let fileSize = UInt64(k.bytes.count)
        guard imageSize > fileSize, imageSize - fileSize <= 64 << 20,
            let bss = memory.read(PhysAddr(k.mem.raw + fileSize), count: Int(imageSize - fileSize))
        else { return nil }
        var lines: [String] = []
        var run: [UInt8] = []
        func flush() {
            // printk_sprint strips the KERN_<level> prefix (KERN_SOH and the level digit, 2 bytes)
            // by moving the text 2 bytes back: the text's last 2 bytes stay behind it, before the
            // trailing newline that was stripped too (kernel/printk/printk.c, 6.1.192). A record's
            // text cannot be told from that stale copy otherwise; a text that really ends in the
            // same 2 bytes twice loses its last 2.
            var body = run.last == 0x0a ? Array(run.dropLast()) : run
            let n = body.count
            if n >= 4 && body[(n - 2)...] == body[(n - 4)..<(n - 2)] { body.removeLast(2) }
            run = body
            if run.count >= minimumRun, let s = String(bytes: run, encoding: .ascii) {
                lines += s.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            run.removeAll(keepingCapacity: true)
        }
        for b in bss {
            if (0x20...0x7e).contains(b) || b == 0x0a || b == 0x09 { run.append(b) } else { flush() }
        }
        flush()
        return lines.isEmpty ? nil : Log(lines: lines)
    }
}
