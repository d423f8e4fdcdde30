/// The boot CPU's local APIC in xAPIC mode, as register memory at its default base 0xfee00000
/// (Intel SDM vol. 3A, 11.4.1 table 11-1 "Local APIC Register Address Map"; the Linux side is
/// arch/x86/kernel/apic/apic.c, v6.1.192: register_lapic_address / init_apic_mappings read the ID
/// and version registers, setup_local_APIC programs TPR, SVR, LDR/DFR and the LVT entries).
///
/// Modelled: every 32-bit register at a 16-byte aligned offset keeps what is written; the reset
/// values of the SDM (11.4.7.1: LVT entries masked 0x00010000, DFR 0xffffffff, SVR 0xff, the rest
/// 0); ID (0x20) reads 0 (APIC ID 0, the boot CPU); version (0x30) reads 0x00050014 (an integrated
/// APIC, version 0x14, six LVT entries: max LVT entry 5); PPR (0xa0) follows TPR; the read-only
/// in-service, trigger-mode and request registers (0x100–0x270) read 0: no interrupt is ever
/// pending; ICR (0x300) never shows a send pending (bit 12 clear); EOI (0xb0) writes are
/// accepted. Not modelled: interrupt delivery, the timer's countdown (the current count 0x390
/// reads the initial count: the timer never runs), x2APIC (its MSRs are the engine's).
public final class LocalApic: MMIODevice {
    /// Default physical base of the local APIC (APIC_DEFAULT_PHYS_BASE).
    public static let defaultBase: UInt64 = 0xfee0_0000
    private var regs: [UInt32] = Array(repeating: 0, count: 64)
    /// Offsets the guest read or wrote, in order of first access (evidence of what it needs).
    public private(set) var touched: [UInt64] = []

    public init() {
        for lvt in [0x2f0, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370] { regs[lvt >> 4] = 0x1_0000 }
        regs[0xe0 >> 4] = 0xffff_ffff
        regs[0xf0 >> 4] = 0xff
    }

    public func read(offset: UInt64, size: Int) -> UInt64 {
        note(offset)
        let r = offset & 0xff0
        guard offset & 0xf == 0, r < 0x400 else { return 0 }
        switch r {
        case 0x20: return 0
        case 0x30: return 0x0005_0014
        case 0xa0: return UInt64(regs[0x80 >> 4])
        case 0x100...0x270: return 0
        case 0x300: return UInt64(regs[0x30] & ~UInt32(1 << 12))
        case 0x390: return UInt64(regs[0x380 >> 4])
        default: return UInt64(regs[Int(r >> 4)])
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        note(offset)
        let r = offset & 0xff0
        guard offset & 0xf == 0, r < 0x400 else { return }
        switch r {
        case 0x20, 0x30, 0x90, 0xa0, 0xb0, 0x100...0x270, 0x390: return  // read-only or EOI
        default: regs[Int(r >> 4)] = UInt32(truncatingIfNeeded: value)
        }
    }

    private func note(_ offset: UInt64) {
        if touched.count < 64, !touched.contains(offset) { touched.append(offset) }
    }
}
