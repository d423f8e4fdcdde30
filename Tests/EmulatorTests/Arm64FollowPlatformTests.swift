import Emulator
import KexecModel
import Testing

/// The arm64 follow machine without a real kernel: PSCI answers, ESR_EL1 syndromes, and a guest
/// that calls the firmware, takes a BRK through its own VBAR_EL1 and powers off.
@Suite struct Arm64FollowPlatformTests {
    @Test func psciAnswersOneCPUFirmware() {
        let p = Psci(conduit: .hvc)
        #expect(p.instruction == 0xd400_0002)
        #expect(Psci(conduit: .smc).instruction == 0xd400_0003)
        #expect(p.call(x0: 0x8400_0000, x1: 0).x0 == 0x1_0000)
        #expect(p.call(x0: 0x8400_0000, x1: 0).power == nil)
        #expect(p.call(x0: 0x8400_000a, x1: 0x8400_0008).x0 == 0)
        // SMCCC_VERSION is not answered: the kernel stays on SMCCC 1.0.
        #expect(p.call(x0: 0x8400_000a, x1: 0x8000_0000).x0 == UInt64(bitPattern: -1))
        #expect(p.call(x0: 0x8400_0006, x1: 0).x0 == 2)
        #expect(p.call(x0: 0xc400_0003, x1: 0).x0 == UInt64(bitPattern: -4))
        #expect(p.call(x0: 0xc400_0003, x1: 1).x0 == UInt64(bitPattern: -2))
        #expect(p.call(x0: 0x8400_0008, x1: 0).power == .off)
        #expect(p.call(x0: 0x8400_0009, x1: 0).power == .reset)
        #expect(p.call(x0: 0x1_8400_0000, x1: 0).x0 == UInt64(bitPattern: -1))
    }

    @Test func syndromesAsTheCPUWritesThem() {
        // A level-3 translation fault on a write at EL1: the familiar 0x96000047.
        #expect(
            Arm64Exception.dataAbort(address: VirtAddr(0x1000), write: true, status: 0x07).syndrome(fromLowerEL: false)
                == 0x9600_0047)
        #expect(
            Arm64Exception.dataAbort(address: VirtAddr(0x1000), write: false, status: 0x06).syndrome(fromLowerEL: true)
                == 0x9200_0006)
        #expect(
            Arm64Exception.instructionAbort(address: VirtAddr(0), status: 0x0f).syndrome(fromLowerEL: false)
                == 0x8600_000f)
        #expect(Arm64Exception.breakpoint(0x800).syndrome(fromLowerEL: false) == 0xf200_0800)
        #expect(Arm64Exception.supervisorCall(0).syndrome(fromLowerEL: true) == 0x5600_0000)
        #expect(Arm64Exception.undefined.syndrome(fromLowerEL: false) == 0x0200_0000)
    }

    /// Code at 0x40000000, MMU off, VBAR_EL1 = 0x40001000:
    ///   movz x0, #0x8400, lsl #16 ; hvc #0 (PSCI_VERSION) ; mov x3, x0 ; brk #1
    /// Vector 0x40001200 (current EL, SP_ELx, synchronous):
    ///   mrs x1, esr_el1 ; mrs x2, elr_el1 ; movz x0, #0x8400, lsl #16 ; movk x0, #8 ; hvc #0 (SYSTEM_OFF)
    @Test func hvcAnsweredBrkDeliveredThroughVBARThenPowerOff() throws {
        let g = try Arm64FollowGuest()
        #expect(g.put(0x4000_0000, [0xd2b0_8000, 0xd400_0002, 0xaa00_03e3, 0xd420_0020]))
        #expect(g.put(0x4000_1200, [0xd538_5201, 0xd538_4022, 0xd2b0_8000, 0xf280_0100, 0xd400_0002]))
        let (e, machine, stop) = try g.run(vbar: 0x4000_1000)
        #expect(machine.power == .off)
        #expect(machine.firmwareCalls == ["version", "systemOff"])
        #expect(e.read(.x3) == 0x1_0000)
        #expect(e.read(.x1) == 0xf200_0001)
        #expect(e.read(.x2) == 0x4000_000c)
        #expect(machine.delivered == ["BRK": 1])
        #expect(stop.pc == VirtAddr(0x4000_1210))
        #expect(e.pstate & 0x3cf == 0x3c5)
    }

    /// With the MMU off and VBAR_EL1 at a kernel virtual address (the first kernel's vectors), the
    /// first exception cannot be delivered: the vector fetch itself aborts, a recursive exception.
    @Test func vectorThatDoesNotTranslateIsARecursiveException() throws {
        let mem = GuestMemory()
        try mem.add(start: PhysAddr(0x4000_0000), size: .kib(4), label: "code")
        #expect(mem.write(PhysAddr(0x4000_0000), [0x20, 0x00, 0x20, 0xd4]))  // brk #1
        let e = try Arm64Engine(memory: mem)
        let machine = try Arm64FollowPlatform(
            engine: e, uartBase: PhysAddr(0x900_0000), conduit: .hvc, console: ConsoleLog())
        e.write(.vbarEL1, 0xffff_8000_0801_0800)
        _ = e.follow(from: VirtAddr(0x4000_0000), until: VirtAddr(0xffff_ffff_ffff_fffc), timeoutMicros: 10_000_000) {
            machine.handle($0, engine: e)
        }
        #expect(machine.recursive?.vector == VirtAddr(0xffff_8000_0801_0a00))
        #expect(machine.delivered == ["BRK": 1])
    }

    @Test func pl011CollectsLinesAndAnswersItsProbe() {
        let console = ConsoleLog()
        var seen: [String] = []
        console.onLine = { seen.append($0) }
        let uart = Pl011Uart(console: console)
        for b in Array("ab\r\ncd".utf8) { uart.write(offset: 0, size: 1, value: UInt64(b)) }
        #expect(seen == ["ab"])
        #expect(console.text == "ab\ncd")
        #expect(uart.read(offset: 0x18, size: 4) == 0x90)
        #expect(
            (0..<8).map { uart.read(offset: 0xfe0 + UInt64($0) * 4, size: 4) } == [
                0x11, 0x10, 0x34, 0, 0x0d, 0xf0, 0x05, 0xb1,
            ])
    }
}

/// The x86 follow machine's UART: the divisor latch does not print, THR does, LSR is always ready.
@Suite struct Uart8250Tests {
    @Test func earlyprintkSequencePrintsOnlyTHRWrites() {
        let console = ConsoleLog()
        let u = Uart8250(console: console)
        #expect(u.ports == 0x3f8...0x3ff)
        u.portOut(0x3fb, size: 1, value: 0x83)  // LCR: DLAB, 8n1
        u.portOut(0x3f8, size: 1, value: 0x01)  // DLL: 115200 baud
        u.portOut(0x3f9, size: 1, value: 0x00)  // DLM
        u.portOut(0x3fb, size: 1, value: 0x03)  // LCR: 8n1
        #expect(u.portIn(0x3f8, size: 1) == 0)
        for b in Array("ok\n".utf8) { u.portOut(0x3f8, size: 1, value: UInt32(b)) }
        #expect(console.lines == ["ok"])
        #expect(u.portIn(0x3fd, size: 1) == 0x60)
        u.portOut(0x3fb, size: 1, value: 0x83)
        #expect(u.portIn(0x3f8, size: 1) == 0x01)
    }

    /// An exception from EL0 must run its vector as EL1 code. Code at 0x40000000 (MMU off):
    /// ELR_EL1 = 0x40000100, SPSR_EL1 = 0 (EL0t), eret; at EL0: x5 = 0x55, svc #7; the vector at
    /// VBAR_EL1 + 0x400: `msr tpidrro_el0, x30` (UNDEFINED at EL0: the KPTI trampoline's first
    /// instruction), x6 = ESR_EL1, x7 = ELR_EL1, x8 = SPSR_EL1, PSCI SYSTEM_OFF.
    @Test func svcFromEL0RunsItsVectorAtEL1() throws {
        let g = try Arm64FollowGuest()
        #expect(g.put(0x4000_0000, [0xd2a8_0000, 0x9104_0000, 0xd518_4020, 0xd518_401f, 0xd69f_03e0]))
        #expect(g.put(0x4000_0100, [0xd280_0aa5, 0xd400_00e1, 0x1400_0000]))
        #expect(
            g.put(
                0x4000_1400,
                [0xd51b_d07e, 0xd538_5206, 0xd538_4027, 0xd538_4008, 0xd2b0_8000, 0xf280_0100, 0xd400_0002]))
        let (e, machine, _) = try g.run(vbar: 0x4000_1000)
        #expect(machine.power == .off)
        #expect(machine.delivered == ["SVC": 1])
        #expect(e.read(.x5) == 0x55)
        #expect(e.read(.x6) == 0x5600_0007)
        #expect(e.read(.x7) == 0x4000_0108)
        #expect(e.read(.x8) == 0)
        #expect(e.pstate & 0xf == 0x5)
    }
}
