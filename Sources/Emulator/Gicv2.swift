import KexecModel

/// A GICv2 (Arm IHI 0048B "ARM Generic Interrupt Controller Architecture Specification v2.0") for
/// one CPU and 64 interrupts (16 SGIs, 16 PPIs, 32 SPIs), as far as Linux's driver uses it
/// (drivers/irqchip/irq-gic.c and irq-gic-common.c, include/linux/irqchip/arm-gic.h, v6.1.192):
///
/// Distributor (GICD, 4.3): CTLR (0x000, bit 0 forwards interrupts; gic_dist_init), TYPER (0x004:
/// ITLinesNumber 1 → 64 interrupts, CPUNumber 0; gic_init_bases reads it for gic_irqs), IIDR
/// (0x008), ISENABLER / ICENABLER (0x100 / 0x180; gic_poke_irq, gic_cpu_config), ISPENDR /
/// ICPENDR (0x200 / 0x280; gic_irq_set_irqchip_state), ISACTIVER / ICACTIVER (0x300 / 0x380),
/// IPRIORITYR (0x400, byte-addressable; gic_dist_config writes 0xa0 everywhere), ITARGETSR
/// (0x800; the SGI/PPI words read this CPU's mask 0x01 in each byte: gic_get_cpumask), ICFGR
/// (0xc00, stored), SGIR (0xf00: gic_ipi_send_mask writes the target list and the SGI number).
/// Every other offset is plain storage.
///
/// CPU interface (GICC, 4.4): CTLR (0x00, bit 0 signals interrupts; gic_cpu_if_up), PMR (0x04;
/// 0xf0 from gic_cpu_init), BPR (0x08), IAR (0x0c: the highest-priority pending interrupt, now
/// active; 1023 when none — gic_handle_irq loops until ≥ 1020), EOIR (0x10: deactivates; EOImode
/// 0 because the kernel has no EL2), RPR (0x14), HPPIR (0x18), APR (0xd0, stored), IIDR (0xfc:
/// 0x0202143b, which gic_check_gicv2 recognises), DIR (0x1000).
///
/// Interrupt lines: a level source (the timer) is asked through `level`; SGIs and ISPENDR writes
/// latch a pending bit that acknowledging clears.
///
/// Measured (`touched`, evidence `gic_registers`): Debian's 6.1.0-57 Image, booted to its /init,
/// reads GICD_TYPER, ITARGETSR, ICFGR, GICC_CTLR, IIDR, IAR and writes GICD_CTLR, ISENABLER,
/// ICENABLER, ICACTIVER, IPRIORITYR, ITARGETSR, ICFGR, GICC_CTLR, PMR, APR, EOIR. The rest of the
/// map above (ISPENDR, SGIR, HPPIR, RPR, DIR) is there for the paths it did not take: an IPI to
/// itself (irq_work), gic_irq_set_irqchip_state.
public final class Gicv2 {
    public static let interruptCount = 64
    /// GICD_TYPER: ITLinesNumber = 64 / 32 − 1.
    static let typer: UInt32 = UInt32(interruptCount / 32 - 1)
    /// GICD_IIDR / GICC_IIDR of an Arm GIC-400 (implementer 0x43b, architecture v2).
    static let distributorIIDR: UInt32 = 0x0200_143b
    static let cpuIIDR: UInt32 = 0x0202_143b
    /// GICC_IAR's "no pending interrupt".
    public static let spurious: UInt32 = 1023

    /// The level of an interrupt source wired to an ID (PPIs), nil for none.
    public var level: (Int) -> Bool = { _ in false }

    private(set) var distributorEnabled = false
    private(set) var cpuEnabled = false
    private var enabled: UInt64 = 0
    private var latched: UInt64 = 0
    private var active: UInt64 = 0
    private var priority = [UInt8](repeating: 0, count: interruptCount)
    /// Storage of the registers the model does not interpret (ICFGR, IGROUPR, BPR, APR, ...).
    private var distStore: [UInt64: UInt32] = [:]
    private var cpuStore: [UInt64: UInt32] = [:]
    public private(set) var priorityMask: UInt8 = 0
    /// Interrupts acknowledged, by ID (for the evidence).
    public private(set) var acknowledged: [Int: Int] = [:]
    /// Called when a guest write may have raised the CPU's IRQ line (an SGI, an enable).
    public var onChange: () -> Void = {}
    /// The registers the guest touched, as "GICD_ISENABLER w" (what a kernel needs of the model).
    public private(set) var touched: Set<String> = []

    static func distributorName(_ o: UInt64) -> String {
        let table: [(Range<UInt64>, String)] = [
            (0x000..<0x004, "CTLR"), (0x004..<0x008, "TYPER"), (0x008..<0x00c, "IIDR"), (0x080..<0x100, "IGROUPR"),
            (0x100..<0x180, "ISENABLER"), (0x180..<0x200, "ICENABLER"), (0x200..<0x280, "ISPENDR"),
            (0x280..<0x300, "ICPENDR"), (0x300..<0x380, "ISACTIVER"), (0x380..<0x400, "ICACTIVER"),
            (0x400..<0x800, "IPRIORITYR"), (0x800..<0xc00, "ITARGETSR"), (0xc00..<0xd00, "ICFGR"),
            (0xf00..<0xf04, "SGIR"), (0xf10..<0xf30, "SGIPEND"),
        ]
        return "GICD_" + (table.first { $0.0.contains(o) }?.1 ?? hex(o))
    }
    static func cpuName(_ o: UInt64) -> String {
        let names: [UInt64: String] = [
            0x00: "CTLR", 0x04: "PMR", 0x08: "BPR", 0x0c: "IAR", 0x10: "EOIR", 0x14: "RPR", 0x18: "HPPIR",
            0x1c: "ABPR", 0xfc: "IIDR", 0x1000: "DIR",
        ]
        if (0xd0..<0xe0).contains(o) { return "GICC_APR" }
        return "GICC_" + (names[o & ~3] ?? hex(o))
    }

    public init() {}

    func isPending(_ id: Int) -> Bool { latched >> id & 1 != 0 || level(id) }

    /// The highest-priority interrupt the CPU interface would signal, if any (lowest priority
    /// value first, then lowest ID; pending, enabled, not active, priority below PMR and below the
    /// running priority).
    public var highestPending: Int? {
        var best: Int?
        for id in 0..<Self.interruptCount where enabled >> id & 1 != 0 && active >> id & 1 == 0 && isPending(id) {
            let p = priority[id]
            guard p < priorityMask, p < runningPriority else { continue }
            if let b = best, priority[b] <= p { continue }
            best = id
        }
        return best
    }

    /// The priority of the highest-priority active interrupt; 0xff when none is active.
    var runningPriority: UInt8 {
        (0..<Self.interruptCount).filter { active >> $0 & 1 != 0 }.map { priority[$0] }.min() ?? 0xff
    }

    /// The CPU's IRQ input: both halves enabled and an interrupt to signal.
    public var signalsIRQ: Bool { distributorEnabled && cpuEnabled && highestPending != nil }

    /// GICC_IAR: acknowledges the interrupt it returns.
    func acknowledge() -> UInt32 {
        guard distributorEnabled, cpuEnabled, let id = highestPending else { return Self.spurious }
        active |= 1 << id
        latched &= ~(1 << id)
        acknowledged[id, default: 0] += 1
        return UInt32(id)  // SGIs: source CPU 0 in bits 12:10
    }

    // MARK: Distributor registers.

    func readDistributor(_ offset: UInt64, size: Int) -> UInt64 {
        touched.insert(Self.distributorName(offset) + " r")
        let word = offset & ~3
        let value: UInt32
        switch word {
        case 0x000: value = distributorEnabled ? 1 : 0
        case 0x004: value = Self.typer
        case 0x008: value = Self.distributorIIDR
        case 0x100..<0x180: value = bits(enabled, word - 0x100)
        case 0x180..<0x200: value = bits(enabled, word - 0x180)
        case 0x200..<0x300:
            let pend = (0..<Self.interruptCount).reduce(UInt64(0)) { $0 | (isPending($1) ? 1 << $1 : 0) }
            value = bits(pend, (word - 0x200) % 0x80)
        case 0x300..<0x400: value = bits(active, (word - 0x300) % 0x80)
        case 0x400..<0x800:
            let id = Int(word - 0x400)
            value = id + 3 < Self.interruptCount ? (0..<4).reduce(0) { $0 | UInt32(priority[id + $1]) << (8 * $1) } : 0
        case 0x800..<0x820: value = 0x0101_0101
        default: value = distStore[word] ?? 0
        }
        return extract(value, offset: offset, size: size)
    }

    func writeDistributor(_ offset: UInt64, size: Int, value v: UInt64) {
        touched.insert(Self.distributorName(offset) + " w")
        let word = offset & ~3
        switch word {
        case 0x000: distributorEnabled = v & 1 != 0
        case 0x100..<0x180: enabled |= shifted(v, word - 0x100)
        case 0x180..<0x200: enabled &= ~shifted(v, word - 0x180)
        case 0x200..<0x280: latched |= shifted(v, word - 0x200)
        case 0x280..<0x300: latched &= ~shifted(v, word - 0x280)
        case 0x300..<0x380: active |= shifted(v, word - 0x300)
        case 0x380..<0x400: active &= ~shifted(v, word - 0x380)
        case 0x400..<0x800:
            for i in 0..<size where Int(offset - 0x400) + i < Self.interruptCount {
                priority[Int(offset - 0x400) + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))
            }
        case 0xf00:
            // SGIR: TargetListFilter (25:24) 0 = the list in 23:16, 1 = all but self, 2 = self only.
            let filter = v >> 24 & 3
            let toSelf = filter == 2 || (filter == 0 && v >> 16 & 1 != 0)
            if toSelf { latched |= 1 << (v & 0xf) }
        default: distStore[word] = UInt32(truncatingIfNeeded: v)
        }
        onChange()
    }

    // MARK: CPU interface registers.

    func readCPU(_ offset: UInt64, size: Int) -> UInt64 {
        touched.insert(Self.cpuName(offset) + " r")
        let value: UInt32
        switch offset & ~3 {
        case 0x00: value = (cpuStore[0] ?? 0) & ~1 | (cpuEnabled ? 1 : 0)
        case 0x04: value = UInt32(priorityMask)
        case 0x0c: value = acknowledge()
        case 0x14: value = UInt32(runningPriority)
        case 0x18: value = highestPending.map { UInt32($0) } ?? Self.spurious
        case 0xfc: value = Self.cpuIIDR
        default: value = cpuStore[offset & ~3] ?? 0
        }
        return extract(value, offset: offset, size: size)
    }

    func writeCPU(_ offset: UInt64, size: Int, value v: UInt64) {
        touched.insert(Self.cpuName(offset) + " w")
        switch offset & ~3 {
        case 0x00:
            cpuEnabled = v & 1 != 0
            cpuStore[0] = UInt32(truncatingIfNeeded: v)
        case 0x04: priorityMask = UInt8(truncatingIfNeeded: v)
        case 0x10, 0x1000:
            let id = Int(v & 0x3ff)
            if id < Self.interruptCount { active &= ~(1 << id) }
        default: cpuStore[offset & ~3] = UInt32(truncatingIfNeeded: v)
        }
        onChange()
    }

    private func bits(_ set: UInt64, _ rel: UInt64) -> UInt32 {
        rel / 4 < UInt64(Self.interruptCount / 32) ? UInt32(truncatingIfNeeded: set >> (rel / 4 * 32)) : 0
    }
    private func shifted(_ v: UInt64, _ rel: UInt64) -> UInt64 {
        rel / 4 < UInt64(Self.interruptCount / 32) ? (v & 0xffff_ffff) << (rel / 4 * 32) : 0
    }
    private func extract(_ v: UInt32, offset: UInt64, size: Int) -> UInt64 {
        let shift = (offset & 3) * 8
        let mask: UInt64 = size >= 4 ? 0xffff_ffff : (1 << (UInt64(size) * 8)) - 1
        return UInt64(v) >> shift & mask
    }

    /// The distributor's register window as an MMIO device.
    public var distributor: MMIODevice { Window(self, cpu: false) }
    /// The CPU interface's register window as an MMIO device.
    public var cpuInterface: MMIODevice { Window(self, cpu: true) }

    final class Window: MMIODevice {
        unowned let gic: Gicv2
        let cpu: Bool
        init(_ g: Gicv2, cpu: Bool) {
            gic = g
            self.cpu = cpu
        }
        func read(offset: UInt64, size: Int) -> UInt64 {
            cpu ? gic.readCPU(offset, size: size) : gic.readDistributor(offset, size: size)
        }
        func write(offset: UInt64, size: Int, value: UInt64) {
            cpu
                ? gic.writeCPU(offset, size: size, value: value)
                : gic.writeDistributor(offset, size: size, value: value)
        }
    }
}
