/// An ARM PL011 UART as far as a kernel's early console and its probe read it (ARM PrimeCell UART
/// (PL011) Technical Reference Manual, r1p5: register map; the Linux side is
/// drivers/tty/serial/amba-pl011.c, v6.1: pl011_early_write polls UARTFR for TXFF then BUSY).
///
/// Modelled: UARTDR (0x000) writes go to the console; UARTFR (0x018) reads "transmit FIFO empty,
/// receive FIFO empty", never busy or full; the peripheral and PrimeCell identification registers
/// (0xfe0–0xffc) read as a PL011 r1p5 (0x00041011, cell id 0xb105f00d) so that an AMBA probe
/// finds one. Every other register reads 0 and ignores writes (no receive, no interrupts).
public final class Pl011Uart: MMIODevice {
    public let console: ConsoleLog
    public init(console: ConsoleLog) { self.console = console }

    /// UARTFR: TXFE (bit 7) | RXFE (bit 4).
    static let flagsIdle: UInt64 = 0x90
    /// UARTPeriphID0..3 then UARTPCellID0..3, at 0xfe0 + 4 × i.
    static let idBytes: [UInt64] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]

    public func read(offset: UInt64, size: Int) -> UInt64 {
        switch offset {
        case 0x018: return Self.flagsIdle
        case 0xfe0...0xffc where offset % 4 == 0: return Self.idBytes[Int((offset - 0xfe0) / 4)]
        default: return 0
        }
    }

    public func write(offset: UInt64, size: Int, value: UInt64) {
        if offset == 0 { console.put(UInt8(truncatingIfNeeded: value)) }
    }
}
