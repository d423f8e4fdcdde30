import Emulator
import Foundation
import GuestCode
import KexecModel

extension Bench {
    /// The engine's bare copy speed: a `rep movsq` of one page at a time (the copy relocate_kernel
    /// does per IND_SOURCE entry, without the list walk: GuestCode's x86_64 `copy_probe`) over
    /// `bytes` bytes (a multiple of 4 KiB), in long mode with paging on
    /// through an identity map of 2 MiB leaves, as the relocation runs. The destination is
    /// compared with the source afterwards; nil when the engine cannot run it or the copy is wrong.
    /// Guest MB/s (10^6 bytes per second of emulation).
    public static func bareCopyMBps(bytes: Int = 64 << 20) -> Double? {
        let code: UInt64 = 0x10_0000
        let src: UInt64 = 0x1000_0000
        // Not a multiple of 256 pages away from the source: QEMU's softmmu TLB is indexed by page
        // number, so a source and destination 0x10000000 apart evict each other on every access
        // (flatview_translate / victim_tlb_hit dominate, ~8× slower); a real relocation's source
        // and destination pages are never aligned that way.
        let dst: UInt64 = 0x2002_5000
        let size = UInt64(bytes)
        let mem = GuestMemory()
        do {
            // PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000: [0, 1 GiB) in 2 MiB leaves; the code page.
            try mem.add(start: PhysAddr(0x1000), size: .kib(12), label: "tables")
            try mem.add(start: PhysAddr(code), size: .kib(4), label: "copy probe")
            try mem.add(start: PhysAddr(src), size: ByteCount(size), label: "source")
            try mem.add(start: PhysAddr(dst), size: ByteCount(size), label: "destination")
        } catch {
            return nil
        }
        guard size % kexecPageSize.raw == 0, src + size <= 1 << 30, dst + size <= 1 << 30 else { return nil }
        _ = mem.write64(PhysAddr(0x1000), 0x2000 | 0x3)
        _ = mem.write64(PhysAddr(0x2000), 0x3000 | 0x3)
        for i in 0..<512 { _ = mem.write64(PhysAddr(0x3000 + UInt64(i) * 8), UInt64(i) << 21 | 0x83) }
        guard mem.write(PhysAddr(code), X86_64GuestCode.probe.bytes),
            let s = mem.pointer(PhysAddr(src), length: bytes), let d = mem.pointer(PhysAddr(dst), length: bytes)
        else { return nil }
        let pattern = Payload.synthetic(name: "kernel", size: bytes)
        pattern.withUnsafeBytes { s.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
        // The destination holds old contents, as in a run's layout: its host pages exist before the
        // copy, so the time is the engine's, not the host kernel's first-touch faults.
        memset(d, Int32(Payload.oldContentsByte), bytes)
        guard let e = try? X86Engine(memory: mem) else { return nil }
        e.enterLongMode(cr3: PhysAddr(0x1000), fiveLevel: false)
        e.write(.rsi, src)
        e.write(.rdi, dst)
        e.write(.rdx, size / kexecPageSize.raw)
        let t0 = Date()
        let stop = e.run(
            from: VirtAddr(code + X86_64GuestCode.Probe.copyProbe),
            until: VirtAddr(code + X86_64GuestCode.Probe.copyProbeDone), budget: 0, timeoutMicros: 600_000_000)
        let t = Date().timeIntervalSince(t0)
        guard case .reached = stop, memcmp(s, d, bytes) == 0, t > 0 else { return nil }
        return Double(bytes) / t / 1e6
    }
}
