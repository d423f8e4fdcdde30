/// The cascaded 8259A interrupt controller pair of a PC: master on ports 0x20/0x21 (IRQ 0–7),
/// slave on 0xa0/0xa1 (IRQ 8–15) wired to the master's IR2.
///
/// The kernel side read (arch/x86/kernel/i8259.c, v6.1.192): probe_8259A writes 0xff to the
/// slave's IMR and 0xfb to the master's and reads the master's IMR back (another value means "no
/// PIC": the NULL legacy PIC); init_8259A sends ICW1 0x11 (edge, cascade, ICW4 follows), ICW2 the
/// vector base ISA_IRQ_VECTOR(0) / (8), ICW3 the cascade line (1 << 2 to the master, 2 to the
/// slave), ICW4 0x01 (8086 mode; 0x03 adds auto-EOI); mask_and_ack_8259A writes the IMR, then a
/// specific EOI 0x60 + IR; i8259A_irq_pending and the spurious check read ISR / IRR after OCW3
/// 0x0b / 0x0a.
///
/// Modelled (8259A data sheet): IMR, IRR, ISR; ICW1–4 in order (ICW1 clears IMR and ISR);
/// OCW2 non-specific (0x20) and specific (0x60 + IR) EOI; OCW3 "read ISR" / "read IRR";
/// edge-triggered requests; fully nested priority (IR0 highest, an in-service IR blocks it and
/// every lower one); auto-EOI. Not modelled: rotation, special mask, poll, level mode (ELCR).
public final class I8259Pic {
    struct Chip {
        var imr: UInt8 = 0xff
        var irr: UInt8 = 0
        var isr: UInt8 = 0
        var vectorBase: UInt8 = 0
        var initStep = 0
        var expectICW4 = false
        var autoEOI = false
        var readISR = false

        /// The IR this chip would interrupt with, by fully nested priority.
        func pending(extraRequest: UInt8 = 0) -> Int? {
            let req = (irr | extraRequest) & ~imr
            for ir in 0..<8 {
                if isr & (1 << ir) != 0 { return nil }
                if req & (1 << ir) != 0 { return ir }
            }
            return nil
        }

        mutating func command(_ b: UInt8) {
            if b & 0x10 != 0 {
                imr = 0
                isr = 0
                irr = 0
                readISR = false
                expectICW4 = b & 1 != 0
                initStep = 2
            } else if b & 0x08 != 0 {
                if b & 2 != 0 { readISR = b & 1 != 0 }
            } else if b & 0xe0 == 0x60 {
                isr &= ~(1 << (b & 7))
            } else if b & 0xe0 == 0x20, isr != 0 {
                isr &= isr - 1  // clears the lowest set bit: the highest priority in service
            }
        }

        mutating func data(_ b: UInt8) {
            switch initStep {
            case 2:
                vectorBase = b & 0xf8
                initStep = 3
            case 3: initStep = expectICW4 ? 4 : 0
            case 4:
                autoEOI = b & 2 != 0
                initStep = 0
            default: imr = b
            }
        }
    }
    var master = Chip()
    var slave = Chip()
    /// Called after any change that may raise the INTR line.
    public var onChange: () -> Void = {}

    public init() {}

    /// The master's port pair and the slave's, as bus devices.
    public private(set) lazy var masterPorts = I8259Ports(pic: self, base: 0x20)
    public private(set) lazy var slavePorts = I8259Ports(pic: self, base: 0xa0)

    /// An edge on IRQ `irq` (0–15).
    public func raise(_ irq: Int) {
        if irq < 8 { master.irr |= 1 << irq } else { slave.irr |= 1 << (irq - 8) }
        onChange()
    }

    private var cascade: UInt8 { slave.pending() != nil ? 1 << 2 : 0 }

    /// The CPU's INTR input: an unmasked request above everything in service.
    public var interruptRequested: Bool { master.pending(extraRequest: cascade) != nil }

    /// The INTA cycle: the vector of the highest request, which moves from IRR to ISR (nil: none).
    public func acknowledge() -> UInt8? {
        guard let ir = master.pending(extraRequest: cascade) else { return nil }
        if ir == 2, let s = slave.pending() {
            slave.irr &= ~(1 << s)
            if !slave.autoEOI { slave.isr |= 1 << s }
            if !master.autoEOI { master.isr |= 1 << 2 }
            return slave.vectorBase | UInt8(s)
        }
        master.irr &= ~(1 << ir)
        if !master.autoEOI { master.isr |= 1 << ir }
        return master.vectorBase | UInt8(ir)
    }

    func read(_ port: UInt16) -> UInt8 {
        let chip = port & 0x80 == 0 ? master : slave
        if port & 1 != 0 { return chip.imr }
        return chip.readISR ? chip.isr : chip.irr
    }

    func write(_ port: UInt16, _ b: UInt8) {
        let isData = port & 1 != 0
        if port & 0x80 == 0 {
            if isData { master.data(b) } else { master.command(b) }
        } else {
            if isData { slave.data(b) } else { slave.command(b) }
        }
        onChange()
    }
}

/// One 8259A's two ports on the I/O bus.
public final class I8259Ports: PortDevice {
    unowned let pic: I8259Pic
    public let ports: ClosedRange<UInt16>
    init(pic: I8259Pic, base: UInt16) {
        self.pic = pic
        ports = base...(base + 1)
    }
    public func portIn(_ port: UInt16, size: Int) -> UInt32 { UInt32(pic.read(port)) }
    public func portOut(_ port: UInt16, size: Int, value: UInt32) { pic.write(port, UInt8(truncatingIfNeeded: value)) }
}
