import Emulator
import KexecModel
import Testing

/// The follow machine's GICv2 and virtual timer: register behaviour as Linux's drivers use them
/// (drivers/irqchip/irq-gic.c, drivers/clocksource/arm_arch_timer.c, v6.1), the deterministic
/// clock, and a guest that arms the timer, waits (WFI), unmasks and takes the IRQ through its own
/// VBAR_EL1 + 0x280.
@Suite struct Arm64TimerInterruptTests {
    @Test func virtualTimerCountsReadsAndRaisesItsLineAtCVAL() {
        let t = Arm64VirtualTimer(ticksPerRead: 64)
        #expect(t.readCounter() == 0)
        #expect(t.readCounter() == 64)
        #expect(t.reads == 2)
        t.writeCompare(1000)
        #expect(!t.interruptAsserted)
        #expect(t.deadline == nil)  // not enabled yet
        t.writeControl(Arm64VirtualTimer.enable)
        #expect(t.deadline == 1000)
        #expect(t.controlRegister == 1)
        // TVAL: CVAL − count as a signed 32-bit value (1000 − 128).
        #expect(t.timerValue == 872)
        #expect(t.fastForwardToDeadline())
        #expect(t.count == 1000)
        #expect(t.interruptAsserted)
        #expect(t.controlRegister == 5)  // ENABLE | ISTATUS
        // IMASK drops the line, ISTATUS stays.
        t.writeControl(Arm64VirtualTimer.enable | Arm64VirtualTimer.interruptMask)
        #expect(!t.interruptAsserted)
        #expect(t.controlRegister == 7)
        #expect(!t.fastForwardToDeadline())
        // TVAL writes are relative to the count and sign-extended.
        t.writeTimerValue(0xffff_ff00)
        #expect(t.compareValue == 1000 - 256)
    }

    @Test func gicRegistersAsIrqGicReadsThem() {
        let g = Gicv2()
        let d = g.distributor
        let c = g.cpuInterface
        #expect(d.read(offset: 0x004, size: 4) == 1)  // ITLinesNumber 1: 64 interrupts
        #expect(c.read(offset: 0x0fc, size: 4) & 0xff0fff == 0x02043b)  // gic_check_gicv2
        #expect(d.read(offset: 0x800, size: 4) == 0x0101_0101)  // gic_get_cpumask
        #expect(c.read(offset: 0x00c, size: 4) == 1023)  // nothing pending
        var line = false
        g.level = { $0 == 27 && line }
        d.write(offset: 0x000, size: 4, value: 1)
        c.write(offset: 0x000, size: 4, value: 1)
        c.write(offset: 0x004, size: 4, value: 0xf0)
        d.write(offset: 0x41b, size: 1, value: 0xa0)
        #expect(d.read(offset: 0x418, size: 4) == 0xa000_0000)
        line = true
        #expect(!g.signalsIRQ)  // not enabled
        d.write(offset: 0x100, size: 4, value: 1 << 27)
        #expect(d.read(offset: 0x100, size: 4) == 1 << 27)
        #expect(g.signalsIRQ)
        #expect(d.read(offset: 0x200, size: 4) == 1 << 27)  // pending (the level)
        #expect(c.read(offset: 0x018, size: 4) == 27)  // HPPIR
        #expect(c.read(offset: 0x00c, size: 4) == 27)  // IAR: now active
        #expect(c.read(offset: 0x014, size: 4) == 0xa0)  // running priority
        #expect(c.read(offset: 0x00c, size: 4) == 1023)  // active: not signalled again
        #expect(!g.signalsIRQ)
        c.write(offset: 0x010, size: 4, value: 27)  // EOIR
        #expect(g.signalsIRQ)  // the level is still up
        line = false
        #expect(!g.signalsIRQ)
        // PMR at or below the priority masks it.
        line = true
        c.write(offset: 0x004, size: 4, value: 0xa0)
        #expect(!g.signalsIRQ)
        c.write(offset: 0x004, size: 4, value: 0xf0)
        d.write(offset: 0x180, size: 4, value: 1 << 27)  // ICENABLER
        #expect(!g.signalsIRQ)
        // An SGI to self (gic_ipi_send_mask: target list CPU 0, SGI 1) latches until acknowledged.
        d.write(offset: 0x100, size: 4, value: 1 << 1)
        d.write(offset: 0xf00, size: 4, value: 1 << 16 | 1)
        #expect(c.read(offset: 0x00c, size: 4) == 1)
        c.write(offset: 0x010, size: 4, value: 1)
        #expect(c.read(offset: 0x00c, size: 4) == 1023)
        #expect(g.acknowledged == [27: 1, 1: 1])
    }

    /// Code at 0x40000000 (MMU off, VBAR_EL1 0x40001000): mask IRQs; GICD_CTLR = 1, ISENABLER0 =
    /// bit 27, IPRIORITYR[27] = 0xa0; GICC_PMR = 0xf0, GICC_CTLR = 1; CVAL = CNTVCT + 1000; CTL = 1;
    /// wfi; msr daifclr, #2; b . — vector +0x280: x4 = IAR; CTL = 3 (IMASK); EOIR = x4; x5 = IAR;
    /// x2 = ELR_EL1; x3 = CNTVCT; PSCI SYSTEM_OFF.
    @Test func armedTimerWakesWFIAndItsIRQIsTakenWhenUnmasked() throws {
        let g = try Arm64FollowGuest()
        let code: [UInt32] = [
            0xd503_42df, 0xd2a1_0009, 0x5280_002a, 0xb900_012a, 0x52a1_000a, 0xb901_012a, 0x5280_140a,
            0x3910_6d2a, 0x9140_412b, 0x5280_1e0a, 0xb900_056a, 0x5280_002a, 0xb900_016a, 0xd53b_e04c,
            0x910f_a18c, 0xd51b_e34c, 0xd280_002d, 0xd51b_e32d, 0xd503_207f, 0xd503_42ff, 0x1400_0000,
        ]
        let vector: [UInt32] = [
            0xb940_0d64, 0xd280_0061, 0xd51b_e321, 0xb900_1164, 0xb940_0d65, 0xd538_4022, 0xd53b_e043,
            0xd2b0_8000, 0xf280_0100, 0xd400_0002,
        ]
        #expect(g.put(0x4000_0000, code))
        #expect(g.put(0x4000_1280, vector))
        let (e, machine, _) = try g.run(vbar: 0x4000_1000)
        #expect(machine.power == .off)
        #expect(machine.waits == 1)
        #expect(machine.interruptsDelivered == 1)
        #expect(e.read(.x4) == 27)
        #expect(e.read(.x5) == 1023)  // the line fell with IMASK: nothing pending after EOI
        #expect(e.read(.x12) == 1000)  // CVAL: the first counter read gave 0
        #expect(e.read(.x3) == 1000)  // WFI moved the clock to CVAL, not further
        // Taken at the first instruction with PSTATE.I clear: after `msr daifclr, #2`.
        #expect(e.read(.x2) == 0x4000_0050)
        #expect(machine.gic.acknowledged == [27: 1])
        #expect(machine.timer.reads == 2)
    }
}
