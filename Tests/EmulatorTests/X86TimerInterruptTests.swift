import Emulator
import KexecModel
import Testing

/// A guest that programs the 8259A and PIT channel 0 the way Linux 6.1 does (init_8259A, then
/// the clockevent's periodic mode 0x34), loads an IDT, sets IF and spins: the follow machine's
/// block clock lets virtual time pass, IRQ0 arrives through IDT vector 0x30 with the 64-bit frame
/// (no error code) and IF cleared.
@Suite struct X86TimerInterruptTests {
    let codeVA: UInt64 = 0xffff_ffff_8040_0000
    let codePA: UInt64 = 0x20_0000
    let stackVA: UInt64 = 0xffff_ffff_8060_0000
    let stackPA: UInt64 = 0x30_0000

    @Test func irq0IsDeliveredThroughTheIDTWithTheInterruptFrame() throws {
        let mem = GuestMemory()
        try mem.add(start: PhysAddr(codePA), size: .kib(4), label: "code")
        try mem.add(start: PhysAddr(stackPA), size: .kib(4), label: "stack")
        var t = try TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 8)
        t.map(va: codeVA, pa: codePA, level: 1)
        t.map(va: stackVA, pa: stackPA, level: 1)
        var code: [UInt8] = []
        for (port, value): (UInt8, UInt8) in [
            (0x20, 0x11), (0x21, 0x30), (0x21, 0x04), (0x21, 0x01), (0x21, 0xfe),  // ICW1-4, unmask IRQ0
            (0x43, 0x34), (0x40, 0xe8), (0x40, 0x03),  // channel 0, mode 2, count 1000
        ] {
            code += [0xb0, value, 0xe6, port]  // mov al, value; out port, al
        }
        let idtrAt = 0x100, idtAt = 0x200, handlerAt = 0x800
        code += [0x0f, 0x01, 0x1d] + le32(UInt32(idtrAt - (code.count + 7)))  // lidt [rip + …]
        code += [0xfb]  // sti
        let spinAt = code.count
        code += [0xeb, 0xfe]  // jmp .
        #expect(mem.write(PhysAddr(codePA), code))
        let e = try X86Engine(memory: mem)
        e.enterLongMode(cr3: t.root, fiveLevel: false)
        let cs = e.read(.cs)
        // IDTR: limit, base; gate 0x30: a present 64-bit interrupt gate to the handler.
        #expect(mem.write(PhysAddr(codePA + UInt64(idtrAt)), le16(0xfff) + le64(codeVA + UInt64(idtAt))))
        let h = codeVA + UInt64(handlerAt)
        let gate =
            le16(UInt16(h & 0xffff)) + le16(UInt16(cs)) + [0, 0x8e] + le16(UInt16(h >> 16 & 0xffff))
            + le32(UInt32(h >> 32)) + le32(0)
        #expect(mem.write(PhysAddr(codePA + UInt64(idtAt + 0x30 * 16)), gate))
        #expect(mem.write(PhysAddr(codePA + UInt64(handlerAt)), [0x90, 0xeb, 0xfe]))
        let oldRSP = stackVA + 0xf08
        e.write(.rsp, oldRSP)
        let machine = try X86FollowPlatform(engine: e, console: ConsoleLog())
        let stop = e.follow(from: VirtAddr(codeVA), until: VirtAddr(h), timeoutMicros: 30_000_000) {
            machine.handle($0, engine: e)
        }
        #expect(stop == .reached(pc: VirtAddr(h)), "\(stop)")
        #expect(machine.interrupts == [0x30: 1])
        // The frame, from the new RSP up: RIP (the spin), CS, RFLAGS (IF set), RSP, SS.
        let sp = e.read(.rsp)
        #expect(sp == (oldRSP & ~0xf) - 40)
        let frame = (0..<5).map { mem.read64(PhysAddr(stackPA + (sp - stackVA) + UInt64(8 * $0))) ?? 0 }
        #expect(frame[0] == codeVA + UInt64(spinAt))
        #expect(frame[1] == cs)
        #expect(frame[2] & 0x200 != 0)
        #expect(frame[3] == oldRSP)
        #expect(e.read(.rflags) & 0x200 == 0)
        // IRQ0 is in service at the master until the handler's EOI; time passed by executed blocks.
        machine.pic.masterPorts.portOut(0x20, size: 1, value: 0x0b)
        #expect(machine.pic.masterPorts.portIn(0x20, size: 1) == 0x01)
        #expect(machine.clock.blocks > 0)
        #expect(machine.clock.now >= I8254Pit.nanoseconds(ofTicks: 1000))
    }

    private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
    private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xff) } }
    private func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(v >> (8 * UInt64($0)) & 0xff) } }
}
