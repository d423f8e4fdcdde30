import Emulator
import Testing

/// The local APIC's registers as the SDM resets them and as a kernel programs them.
@Suite struct LocalApicTests {
    @Test func resetValuesAndReadOnlyRegisters() {
        let a = LocalApic()
        #expect(a.read(offset: 0x20, size: 4) == 0)
        #expect(a.read(offset: 0x30, size: 4) == 0x0005_0014)
        #expect(a.read(offset: 0xe0, size: 4) == 0xffff_ffff)
        #expect(a.read(offset: 0xf0, size: 4) == 0xff)
        for lvt: UInt64 in [0x2f0, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370] {
            #expect(a.read(offset: lvt, size: 4) == 0x1_0000, "LVT \(lvt) starts masked")
        }
        a.write(offset: 0x30, size: 4, value: 0)
        a.write(offset: 0x20, size: 4, value: 7)
        #expect(a.read(offset: 0x30, size: 4) == 0x0005_0014)
        #expect(a.read(offset: 0x20, size: 4) == 0)
        #expect(a.read(offset: 0x100, size: 4) == 0)
        #expect(a.touched == [0x20, 0x30, 0xe0, 0xf0, 0x2f0, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x100])
    }

    @Test func programmedRegistersKeepTheirValues() {
        let a = LocalApic()
        a.write(offset: 0xf0, size: 4, value: 0x1ff)  // SVR: enabled, spurious vector 0xff
        a.write(offset: 0x80, size: 4, value: 0x20)  // TPR
        a.write(offset: 0x350, size: 4, value: 0x700)  // LINT0: ExtINT
        a.write(offset: 0x380, size: 4, value: 0x1234)  // timer initial count
        a.write(offset: 0x300, size: 4, value: 0x000c_4500 | 1 << 12)  // ICR: INIT, (busy bit)
        #expect(a.read(offset: 0xf0, size: 4) == 0x1ff)
        #expect(a.read(offset: 0xa0, size: 4) == 0x20)  // PPR follows TPR
        #expect(a.read(offset: 0x350, size: 4) == 0x700)
        #expect(a.read(offset: 0x390, size: 4) == 0x1234)  // the timer never runs
        #expect(a.read(offset: 0x300, size: 4) == 0x000c_4500)  // never pending
        #expect(a.read(offset: 0x404, size: 4) == 0)
    }
}
