/// A 16550A-compatible UART on eight I/O ports as a kernel's early console drives it
/// (arch/x86/kernel/early_printk.c early_serial_init / serial_putc, v6.1: LCR with DLAB to set the
/// divisor, then THR writes after polling LSR for THRE; register map of the 8250/16550A).
///
/// Modelled: THR (base+0, DLAB = 0) writes go to the console; DLL/DLM (base+0/1, DLAB = 1) and
/// the other registers keep what is written; LSR (base+5) reads THRE | TEMT (0x60): the
/// transmitter is always ready, nothing is ever received; MSR (base+6) reads DCD | DSR | CTS (0xb0).
public final class Uart8250: PortDevice {
    public let console: ConsoleLog
    public let base: UInt16
    private var regs = [UInt8](repeating: 0, count: 8)
    private var divisor: (UInt8, UInt8) = (0, 0)

    public init(console: ConsoleLog, base: UInt16 = 0x3f8) {
        self.console = console
        self.base = base
    }

    public var ports: ClosedRange<UInt16> { base...(base + 7) }
    private var dlab: Bool { regs[3] & 0x80 != 0 }

    public func portIn(_ port: UInt16, size: Int) -> UInt32 {
        let r = Int(port - base)
        switch r {
        case 0: return dlab ? UInt32(divisor.0) : 0
        case 1: return dlab ? UInt32(divisor.1) : UInt32(regs[1])
        case 2: return 0xc1  // IIR: FIFOs enabled, no interrupt pending
        case 5: return 0x60
        case 6: return 0xb0
        default: return UInt32(regs[r])
        }
    }

    public func portOut(_ port: UInt16, size: Int, value: UInt32) {
        let r = Int(port - base)
        let b = UInt8(truncatingIfNeeded: value)
        switch r {
        case 0 where dlab: divisor.0 = b
        case 0: console.put(b)
        case 1 where dlab: divisor.1 = b
        default: regs[r] = b
        }
    }
}
