import KexecModel

/// The 8254 programmable interval timer on ports 0x40–0x43, channels 0 and 2, counting at
/// 1.193182 MHz on the machine's virtual clock (X86VirtualClock), with channel 2's gate and
/// output on port 0x61 (I8254PortB).
///
/// The kernel side read (v6.1.192): drivers/clocksource/i8253.c programs channel 0 as the
/// clockevent — periodic `0x34` (mode 2, LSB then MSB) with PIT_LATCH = (1193182 + HZ/2) / HZ,
/// oneshot `0x38` (mode 4) then the delta LSB, MSB per event, shutdown `0x30` + count 0, 0 +
/// `0x30` — and its clocksource latches channel 0 with `0x00` then reads LSB, MSB;
/// arch/x86/kernel/tsc.c pit_calibrate_tsc / quick_pit_calibrate set port 0x61 bit 0 (gate 2)
/// and clear bit 1 (speaker), program channel 2 `0xb0` (mode 0, LSB then MSB) and then poll
/// port 0x61 bit 5 (OUT2) or read the count's MSB with two `inb(0x42)`.
///
/// Modelled (8254 data sheet): the control word (SC, RW, mode; SC = 3 read-back and BCD are not
/// modelled), counter latch (RW = 0), LSB / MSB / LSB-then-MSB access with its byte toggle for
/// reads and writes; a count written in full starts the channel (mode 2/3 periodic: channel 0
/// raises IRQ0 at every multiple of the count; modes 0/1/4/5 once, at the terminal count); a
/// count of 0 means 65536; writing the control word stops the channel until a new count.
/// Channel 2 starts when its count is written with its gate (port 0x61 bit 0) high, or when the
/// gate rises after (pausing a running count on a falling gate is not modelled); its OUT (port 0x61 bit 5)
/// goes high at the terminal count in mode 0. Channel 1 (DRAM refresh) reads all ones.
public final class I8254Pit: PortDevice {
    /// The PIT's input clock (include/linux/timex.h PIT_TICK_RATE).
    public static let hz: UInt64 = 1_193_182
    public var ports: ClosedRange<UInt16> { 0x40...0x43 }

    struct Channel {
        var mode: UInt8 = 0
        var access: UInt8 = 3
        var reload: UInt64 = 0x10000
        var startedAt: UInt64?
        var writeLow: UInt8?
        var latched: [UInt8] = []
        var readHigh = false
        var lastFired: UInt64 = 0
        var periodic: Bool { mode & 3 >= 2 }
        /// A full count written while the channel's gate was low: it starts when the gate rises.
        var waitingForGate = false
    }
    private var channels = [Channel(), Channel(), Channel()]
    /// Channel 2's gate (port 0x61 bit 0); a rising gate starts a count written while it was low.
    public internal(set) var gate2 = false {
        didSet {
            guard gate2, !oldValue, channels[2].waitingForGate else { return }
            channels[2].waitingForGate = false
            channels[2].startedAt = Self.pitTicks(clock.now)
        }
    }
    private unowned let clock: X86VirtualClock
    /// Called when channel 0's output rises (IRQ0 edge).
    public var onIRQ0: () -> Void = {}

    public init(clock: X86VirtualClock) { self.clock = clock }

    /// PIT ticks elapsed at the clock's `now` (now × 1193182 / 10⁹, exact integer arithmetic).
    public static func pitTicks(_ ns: UInt64) -> UInt64 {
        let (hi, lo) = ns.multipliedFullWidth(by: hz)
        return UInt64(1_000_000_000).dividingFullWidth((hi, lo)).quotient
    }
    /// The first nanosecond at which `ticks` PIT ticks have elapsed.
    public static func nanoseconds(ofTicks ticks: UInt64) -> UInt64 {
        let (hi, lo) = ticks.multipliedFullWidth(by: 1_000_000_000)
        let (q, r) = hz.dividingFullWidth((hi, lo))
        return r == 0 ? q : q + 1
    }

    private func elapsed(_ c: Channel) -> UInt64? {
        guard let s = c.startedAt else { return nil }
        let now = Self.pitTicks(clock.now)
        return now >= s ? now - s : 0
    }

    /// The count a channel holds now.
    func count(_ i: Int) -> UInt64 {
        let c = channels[i]
        guard let e = elapsed(c) else { return c.reload & 0xffff }
        if c.periodic { return c.reload - e % c.reload }
        return (c.reload &- e) & 0xffff
    }

    /// Channel 2's OUT: high once mode 0 reached its terminal count.
    public var out2: Bool {
        let c = channels[2]
        guard let e = elapsed(c) else { return c.mode != 0 }
        if c.periodic { return c.mode & 3 == 2 || e % c.reload < c.reload / 2 }
        return e >= c.reload
    }

    /// The clock time (ns) of channel 0's next IRQ0 edge after the last one delivered, if armed.
    public var nextIRQ0: UInt64? {
        let c = channels[0]
        guard let s = c.startedAt else { return nil }
        if c.periodic {
            let k = (c.lastFired - s) / c.reload + 1
            return Self.nanoseconds(ofTicks: s + k * c.reload)
        }
        return c.lastFired >= s + c.reload ? nil : Self.nanoseconds(ofTicks: s + c.reload)
    }

    /// Raises IRQ0 for each edge due by the clock's `now` (at most one: a level that is already
    /// requested in the PIC does not request twice).
    public func catchUp() {
        guard let due = nextIRQ0, due <= clock.now else { return }
        let c = channels[0]
        let now = Self.pitTicks(clock.now)
        channels[0].lastFired = c.periodic ? now - (now - c.startedAt!) % c.reload : now
        onIRQ0()
    }

    public func portIn(_ port: UInt16, size: Int) -> UInt32 {
        clock.ioAccess()
        let i = Int(port - 0x40)
        guard i == 0 || i == 2 else { return 0xff }
        if !channels[i].latched.isEmpty { return UInt32(channels[i].latched.removeFirst()) }
        let v = count(i)
        switch channels[i].access {
        case 1: return UInt32(v & 0xff)
        case 2: return UInt32(v >> 8 & 0xff)
        default:
            channels[i].readHigh.toggle()
            return UInt32(channels[i].readHigh ? v & 0xff : v >> 8 & 0xff)
        }
    }

    public func portOut(_ port: UInt16, size: Int, value: UInt32) {
        clock.ioAccess()
        let b = UInt8(truncatingIfNeeded: value)
        if port == 0x43 {
            let sc = Int(b >> 6)
            guard sc == 0 || sc == 2 else { return }
            let rw = b >> 4 & 3
            if rw == 0 {
                let v = count(sc)
                let lo = UInt8(v & 0xff), hi = UInt8(v >> 8 & 0xff)
                channels[sc].latched = channels[sc].access == 3 ? [lo, hi] : [channels[sc].access == 2 ? hi : lo]
                return
            }
            channels[sc] = Channel(mode: b >> 1 & 7, access: rw)
            return
        }
        let i = Int(port - 0x40)
        guard i == 0 || i == 2 else { return }
        var c = channels[i]
        let full: UInt64
        switch c.access {
        case 1: full = UInt64(b)
        case 2: full = UInt64(b) << 8
        default:
            guard let low = c.writeLow else {
                c.writeLow = b
                channels[i] = c
                return
            }
            full = UInt64(low) | UInt64(b) << 8
            c.writeLow = nil
        }
        c.reload = full == 0 ? 0x10000 : full
        let now = Self.pitTicks(clock.now)
        c.latched = []
        if i == 2 && !gate2 {
            c.startedAt = nil
            c.waitingForGate = true
        } else {
            c.startedAt = now
            c.lastFired = now
        }
        channels[i] = c
        if i == 0 { clock.scheduleChanged() }
    }
}

/// Port 0x61, system control port B as the kernel uses it (arch/x86/kernel/tsc.c v6.1.192):
/// bit 0 gates PIT channel 2, bit 1 enables the speaker, bit 5 reads channel 2's OUT; the other
/// bits keep what was written, bit 4 (refresh toggle) reads 0.
public final class I8254PortB: PortDevice {
    public var ports: ClosedRange<UInt16> { 0x61...0x61 }
    private unowned let pit: I8254Pit
    private var value: UInt8 = 0
    public init(pit: I8254Pit) { self.pit = pit }

    public func portIn(_ port: UInt16, size: Int) -> UInt32 {
        UInt32(value & 0x0f) | (pit.out2 ? 0x20 : 0)
    }
    public func portOut(_ port: UInt16, size: Int, value v: UInt32) {
        value = UInt8(truncatingIfNeeded: v)
        pit.gate2 = value & 1 != 0
    }
}
