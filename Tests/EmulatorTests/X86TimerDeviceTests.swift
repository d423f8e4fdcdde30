import Emulator
import Testing

/// The x86 follow machine's 8259A pair, 8254 PIT and virtual clock, driven exactly as Linux 6.1
/// drives them (arch/x86/kernel/i8259.c, drivers/clocksource/i8253.c, arch/x86/kernel/tsc.c).
@Suite struct X86TimerDeviceTests {
    /// init_8259A(0) then unmasking IRQ0, as legacy_pic->init and the clockevent set-up do.
    private func initialisedPic() -> I8259Pic {
        let p = I8259Pic()
        let m = p.masterPorts, s = p.slavePorts
        m.portOut(0x21, size: 1, value: 0xff)
        s.portOut(0xa1, size: 1, value: 0xff)
        m.portOut(0x20, size: 1, value: 0x11)
        m.portOut(0x21, size: 1, value: 0x30)  // ISA_IRQ_VECTOR(0)
        m.portOut(0x21, size: 1, value: 0x04)
        m.portOut(0x21, size: 1, value: 0x01)
        s.portOut(0xa0, size: 1, value: 0x11)
        s.portOut(0xa1, size: 1, value: 0x38)  // ISA_IRQ_VECTOR(8)
        s.portOut(0xa1, size: 1, value: 0x02)
        s.portOut(0xa1, size: 1, value: 0x01)
        m.portOut(0x21, size: 1, value: 0xfa)  // IRQ0 and the cascade unmasked
        s.portOut(0xa1, size: 1, value: 0xff)
        return p
    }

    @Test func probeReadsTheMasterMaskBack() {
        let p = I8259Pic()
        p.slavePorts.portOut(0xa1, size: 1, value: 0xff)
        p.masterPorts.portOut(0x21, size: 1, value: 0xfb)  // probe_8259A's probe_val
        #expect(p.masterPorts.portIn(0x21, size: 1) == 0xfb)
        #expect(p.slavePorts.portIn(0xa1, size: 1) == 0xff)
    }

    @Test func irq0IsAcknowledgedAtItsVectorAndBlockedUntilEOI() {
        let p = initialisedPic()
        #expect(!p.interruptRequested)
        p.raise(0)
        #expect(p.interruptRequested)
        p.masterPorts.portOut(0x20, size: 1, value: 0x0a)
        #expect(p.masterPorts.portIn(0x20, size: 1) == 0x01)  // IRR
        #expect(p.acknowledge() == 0x30)
        #expect(!p.interruptRequested)
        p.masterPorts.portOut(0x20, size: 1, value: 0x0b)
        #expect(p.masterPorts.portIn(0x20, size: 1) == 0x01)  // ISR
        p.raise(0)
        #expect(!p.interruptRequested)  // IR0 in service blocks itself
        p.masterPorts.portOut(0x20, size: 1, value: 0x60)  // specific EOI, IR0
        #expect(p.masterPorts.portIn(0x20, size: 1) == 0x00)
        #expect(p.interruptRequested)
        p.masterPorts.portOut(0x21, size: 1, value: 0xfb)  // mask IRQ0
        #expect(!p.interruptRequested)
    }

    @Test func slaveInterruptsComeThroughTheCascade() {
        let p = initialisedPic()
        p.slavePorts.portOut(0xa1, size: 1, value: 0xfe)  // IRQ8 unmasked
        p.raise(8)
        #expect(p.interruptRequested)
        #expect(p.acknowledge() == 0x38)
        p.masterPorts.portOut(0x20, size: 1, value: 0x0b)
        #expect(p.masterPorts.portIn(0x20, size: 1) == 0x04)
        p.slavePorts.portOut(0xa0, size: 1, value: 0x20)  // non-specific EOI
        p.masterPorts.portOut(0x20, size: 1, value: 0x20)
        #expect(p.masterPorts.portIn(0x20, size: 1) == 0)
    }

    @Test func pitChannel0PeriodicRaisesIRQ0AtEachPeriod() {
        let clock = X86VirtualClock(nanosecondsPerIO: 0)
        let pit = I8254Pit(clock: clock)
        var edges = 0
        pit.onIRQ0 = { edges += 1 }
        #expect(pit.nextIRQ0 == nil)
        pit.portOut(0x43, size: 1, value: 0x34)
        pit.portOut(0x40, size: 1, value: 0xa9)  // PIT_LATCH for HZ=250: 4773 = 0x12a5
        #expect(pit.nextIRQ0 == nil)  // LSB only: not started
        pit.portOut(0x40, size: 1, value: 0x12)
        // 0x12a9 = 4777 ticks at 1193182 Hz: ceil(4777e9 / 1193182) ns.
        #expect(pit.nextIRQ0 == 4_003_581)
        clock.now = 4_003_580
        pit.catchUp()
        #expect(edges == 0)
        clock.now = 4_003_581
        pit.catchUp()
        #expect(edges == 1)
        #expect(pit.nextIRQ0 == 8_007_161)
        // The latched count: 10 ticks into the second period.
        clock.now = I8254Pit.nanoseconds(ofTicks: 4777 + 10)
        pit.portOut(0x43, size: 1, value: 0x00)
        let lo = pit.portIn(0x40, size: 1), hi = pit.portIn(0x40, size: 1)
        #expect(lo | hi << 8 == 4777 - 10)
        // Shutdown (clockevent_i8253_disable): the mode word stops the channel.
        pit.portOut(0x43, size: 1, value: 0x30)
        #expect(pit.nextIRQ0 == nil)
    }

    @Test func pitChannel2OutputRisesAtTerminalCountWithItsGate() {
        let clock = X86VirtualClock(nanosecondsPerIO: 0)
        let pit = I8254Pit(clock: clock)
        let portB = I8254PortB(pit: pit)
        portB.portOut(0x61, size: 1, value: 0x01)  // gate high, speaker off
        pit.portOut(0x43, size: 1, value: 0xb0)
        pit.portOut(0x42, size: 1, value: 0xff)
        pit.portOut(0x42, size: 1, value: 0xff)
        #expect(portB.portIn(0x61, size: 1) == 0x01)
        clock.now = I8254Pit.nanoseconds(ofTicks: 0x100)
        _ = pit.portIn(0x42, size: 1)
        #expect(pit.portIn(0x42, size: 1) == 0xfe)  // MSB of 0xffff - 0x100
        clock.now = I8254Pit.nanoseconds(ofTicks: 0xffff)
        #expect(portB.portIn(0x61, size: 1) == 0x21)  // OUT2
    }

    @Test func tscReadsMoveTheClock() {
        let clock = X86VirtualClock(ticksPerTSCRead: 64)
        #expect(clock.readTSC() == 0)
        #expect(clock.readTSC() == 64)
        clock.ioAccess()
        #expect(clock.now == 1128)
        clock.deadline = 5000
        #expect(clock.fastForward())
        #expect(clock.now == 5000)
    }
}
