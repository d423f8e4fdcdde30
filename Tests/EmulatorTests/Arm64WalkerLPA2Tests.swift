import Emulator
import KexecModel
import Testing

/// FEAT_LPA2 (TCR_EL1.DS = 1) in the walker: 52-bit VAs and PAs with the 4K and 16K granules, the
/// descriptor layout with OA[51:50] in bits [9:8], level -1, the extra block levels, and the gate on
/// ID_AA64MMFR0_EL1 (arch/arm64/include/asm/pgtable-hwdef.h, tools/sysreg, mm/fault.c, 6.12.117).
@Suite struct Arm64WalkerLPA2Tests {
    let mmuOn: UInt64 = 0x30d0_1805
    let ds: UInt64 = 1 << 59

    /// A descriptor under DS: OA[49:n] in place, OA[51:50] in bits [9:8] (so leaves carry AF =
    /// 0x400 and no SH field).
    func dsDescriptor(_ pa: UInt64, _ low: UInt64) -> UInt64 {
        (pa & 0x0003_ffff_ffff_f000) | (((pa >> 50) & 3) << 8) | low
    }

    /// One walk's chain of tables, written by hand so that table addresses above 2^50 carry their
    /// top bits in [9:8]: `tables[i]` is the table at level `start + i`; the leaf goes in the last.
    func chain(
        _ mem: GuestMemory, granule g: Granule, vaBits: Int, va: UInt64, tables: [UInt64], leaf: UInt64
    ) throws {
        let start = g.startLevel(vaBits: vaBits)
        for (i, t) in tables.enumerated() {
            if !mem.isBacked(PhysAddr(t)) { try mem.add(start: PhysAddr(t), size: ByteCount(g.size), label: "t") }
            let level = start + i
            let shift = g.levelShift(level)
            let bits = level == start ? vaBits - shift : g.stride
            let index = (va >> UInt64(shift)) & ((1 << UInt64(bits)) - 1)
            let e = i + 1 < tables.count ? dsDescriptor(tables[i + 1], 3) : leaf
            _ = mem.write64(PhysAddr(t + index * 8), e)
        }
    }

    func control(_ tcr: UInt64, ttbr0: UInt64, lpa2: Bool = true) -> Arm64Walker.Control {
        Arm64Walker.Control(
            sctlr: mmuOn, tcr: tcr, ttbr0: ttbr0, ttbr1: 0,
            mmfr0: Arm64MMFR0(physicalAddressBits: 52, lpa2: lpa2))
    }

    /// TTBR with BADDR[51:48] in bits [5:2] (phys_to_ttbr).
    func ttbr(_ pa: UInt64) -> UInt64 { (pa | (pa >> 46)) & 0x0000_ffff_ffff_fffc }

    @Test func fourKWith52BitVAsWalksFromLevelMinus1() throws {
        let mem = GuestMemory()
        // Tables above 2^50 and 2^51, a page at PA 0xa_1234_5678_9000 (bits 51 and 49 set).
        let root: UInt64 = 0x000c_0000_0000_0000
        let tables = [root, 0x0008_0000_0001_0000, 0x0004_0000_0002_0000, 0x1_0000, 0x2_0000]
        let pa: UInt64 = 0x000a_1234_5678_9000
        let va: UInt64 = 0x000f_ffff_ffff_f000
        try chain(mem, granule: .g4k, vaBits: 52, va: va, tables: tables, leaf: dsDescriptor(pa, 0x403))
        let c = control(arm64TCR(t0sz: 12, ipsBits: 52, extra: ds), ttbr0: ttbr(root))
        let t = try Arm64Walker.translate(VirtAddr(va | 0xabc), access: .read, control: c) { mem.read64($0) }.get()
        #expect(t.pa == PhysAddr(pa | 0xabc) && t.level == .l3 && t.leafSize == .kib(4))
        // L-1 has 16 entries (VA[51:48]); an empty one is a level -1 translation fault (0x2b).
        let f = Arm64Walker.translate(VirtAddr(0x0001_0000_0000_0000), access: .read, control: c) { mem.read64($0) }
        guard case .failure(let e) = f else {
            Issue.record("walked through an empty L-1 entry")
            return
        }
        #expect(e.level == .lMinus1 && e.reason == .invalid && e.index == 1 && e.statusCode == 0x2b)
        #expect(e.entryAddress == PhysAddr(root + 8) && e.level.description == "L-1")
    }

    @Test func fourKLevel0BlockOnlyUnderDS() throws {
        let mem = GuestMemory()
        let root: UInt64 = 0x10_0000
        let l0: UInt64 = 0x11_0000
        // A 512 GiB block at PA 0xc_0080_0000_0000 (OA[51:50] = 0b11).
        let va: UInt64 = 0x0000_0080_0000_0000
        let block = dsDescriptor(0x000c_0080_0000_0000, 0x401)
        try chain(mem, granule: .g4k, vaBits: 52, va: va, tables: [root, l0], leaf: block)
        let c = control(arm64TCR(t0sz: 12, ipsBits: 52, extra: ds), ttbr0: ttbr(root))
        let t = try Arm64Walker.translate(VirtAddr(va + 0x1234_5678), access: .write, control: c) {
            mem.read64($0)
        }.get()
        #expect(t.pa == PhysAddr(0x000c_0080_1234_5678) && t.level == .l0 && t.leafSize == .gib(512))
        // IPS 48: the same block's output address is an address size fault at level 0.
        let small = control(arm64TCR(t0sz: 12, ipsBits: 48, extra: ds), ttbr0: ttbr(root))
        guard
            case .failure(let a) = Arm64Walker.translate(
                VirtAddr(va), access: .read, control: small, read64: mem.read64)
        else {
            Issue.record("an output address past IPS translated")
            return
        }
        #expect(a.reason == .addressSize && a.level == .l0 && a.statusCode == 0x00)
        // Without DS a 48-bit walk (T0SZ 16) starting at L0: a block there is reserved.
        let flat = GuestMemory()
        try chain(flat, granule: .g4k, vaBits: 48, va: va, tables: [root], leaf: 0x80_0000_0401)
        let noDS = control(arm64TCR(t0sz: 16, ipsBits: 52), ttbr0: root)
        guard
            case .failure(let r) = Arm64Walker.translate(
                VirtAddr(va), access: .read, control: noDS, read64: flat.read64)
        else {
            Issue.record("an L0 block translated without DS")
            return
        }
        #expect(r.reason == .reservedDescriptor && r.level == .l0)
        // With DS the same 48-bit walk takes it.
        let withDS = control(arm64TCR(t0sz: 16, ipsBits: 52, extra: ds), ttbr0: root)
        let b = try Arm64Walker.translate(VirtAddr(va + 8), access: .read, control: withDS, read64: flat.read64).get()
        #expect(b.pa == PhysAddr(0x80_0000_0008) && b.level == .l0)
    }

    @Test func sixteenKWith52BitVAsAndALevel1Block() throws {
        let mem = GuestMemory()
        let root: UInt64 = 0x0004_0000_0010_0000
        // 16K, 52 bits: L0 has 32 entries (VA[51:47]); a page at PA 0x8_0000_1234_4000.
        let va: UInt64 = 0x000f_ffff_ffff_c000
        let tables = [root, 0x0008_0000_0000_4000, 0x20_0000, 0x20_4000]
        try chain(
            mem, granule: .g16k, vaBits: 52, va: va, tables: tables, leaf: dsDescriptor(0x0008_0000_1234_4000, 0x403))
        // A 64 GiB block at level 1 (legal under DS only).
        let bva: UInt64 = 0x0000_0010_0000_0000
        try chain(
            mem, granule: .g16k, vaBits: 52, va: bva, tables: [root, 0x0008_0000_0000_4000],
            leaf: dsDescriptor(0x0004_0010_0000_0000, 0x401))
        let c = control(arm64TCR(t0sz: 12, tg0: .g16k, ipsBits: 52, extra: ds), ttbr0: ttbr(root))
        #expect(Granule.g16k.startLevel(vaBits: 52) == 0)
        let p = try Arm64Walker.translate(VirtAddr(va | 0x3ff8), access: .fetch, control: c, read64: mem.read64).get()
        #expect(p.pa == PhysAddr(0x0008_0000_1234_7ff8) && p.level == .l3 && p.granule == .g16k)
        let b = try Arm64Walker.translate(VirtAddr(bva + 0x10), access: .read, control: c, read64: mem.read64).get()
        #expect(b.pa == PhysAddr(0x0004_0010_0000_0010) && b.level == .l1 && b.leafSize == .gib(64))
    }

    /// DS is RES0 on a CPU whose TGran field does not say 52_BIT: TxSZ clamps to 16 and the 52-bit
    /// VA is out of range; a 4K LPA2 CPU without 16K LPA2 keeps DS for 4K only.
    @Test func dsIsIgnoredWithoutLPA2InTheTGranField() throws {
        let mem = GuestMemory()
        let root: UInt64 = 0x10_0000
        try chain(mem, granule: .g4k, vaBits: 52, va: 0x000f_ffff_ffff_f000, tables: [root], leaf: 0)
        let tcr = arm64TCR(t0sz: 12, ipsBits: 52, extra: ds)
        for m in [
            Arm64MMFR0(physicalAddressBits: 52),  // TGran4 0b0000: 4K, 48 bits
            Arm64MMFR0(raw: 0xf000_0006),  // TGran4 0b1111: 4K not implemented
        ] {
            let c = Arm64Walker.Control(sctlr: mmuOn, tcr: tcr, ttbr0: root, ttbr1: 0, mmfr0: m)
            #expect(!c.lpa2(.g4k) && c.regime(0).txsz == 16)
            guard
                case .failure(let f) = Arm64Walker.translate(
                    VirtAddr(0x000f_ffff_ffff_f000), access: .read, control: c, read64: mem.read64)
            else {
                Issue.record("a 52-bit VA translated without LPA2")
                continue
            }
            #expect(f.reason == .outOfRange)
        }
        var only4k = Arm64MMFR0(physicalAddressBits: 52)
        only4k.tgran4 = 1
        #expect(only4k.lpa2(.g4k) && !only4k.lpa2(.g16k) && !only4k.lpa2(.g64k))
        #expect(Arm64MMFR0(physicalAddressBits: 52, lpa2: true).raw == 0x1000_0000 | 0x20_0000 | 6)
        #expect(Arm64MMFR0(raw: 5).physicalAddressBits == 48 && Arm64MMFR0(raw: 6).physicalAddressBits == 52)
    }

    /// Level -1 status codes (ESR DFSC): translation 0x2b, address size 0x29, walk abort 0x13.
    @Test func levelMinus1FaultCodes() {
        func code(_ r: Arm64Walker.Reason) -> UInt8 {
            Arm64Walker.Fault(va: VirtAddr(0), level: .lMinus1, reason: r, ttbr: 0).statusCode
        }
        #expect(code(.invalid) == 0x2b && code(.addressSize) == 0x29 && code(.tableNotBacked) == 0x13)
    }
}
