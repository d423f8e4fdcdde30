import Emulator
import KexecModel
import Testing

/// A minimal VMSAv8-64 table writer for these tests (the real builder is PageTables'
/// Arm64LinearMap): granule-sized table pages from a pool, any VA size.
struct Arm64TinyTables {
    let mem: GuestMemory
    let granule: Granule
    let vaBits: Int
    let root: PhysAddr
    var next: UInt64
    let poolEnd: UInt64

    /// Leaf attribute bits: AF | SH inner | AttrIndx 0 (+ bits[1:0]).
    static let leaf: UInt64 = 0x700

    init(mem: GuestMemory, pool: PhysAddr, poolPages: Int, granule: Granule, vaBits: Int = 48) throws {
        try mem.add(start: pool, size: ByteCount(UInt64(poolPages) * granule.size), label: "tables")
        self.mem = mem
        self.granule = granule
        self.vaBits = vaBits
        root = pool
        next = pool.raw + granule.size
        poolEnd = pool.raw + UInt64(poolPages) * granule.size
    }

    var startLevel: Int { granule.startLevel(vaBits: vaBits) }

    func index(_ va: UInt64, _ level: Int) -> UInt64 {
        let shift = granule.levelShift(level)
        let bits = level == startLevel ? vaBits - shift : granule.stride
        return (va >> UInt64(shift)) & ((1 << UInt64(bits)) - 1)
    }

    /// The table at `level` on `va`'s path, allocating missing tables (table descriptors `tableBits`).
    mutating func table(for va: UInt64, level: Int, tableBits: UInt64 = 0) -> UInt64 {
        var t = root.raw
        var l = startLevel
        while l < level {
            let ea = PhysAddr(t + index(va, l) * 8)
            let e = mem.read64(ea)!
            if e & 3 == 3 {
                t = e & 0x0000_ffff_ffff_f000
            } else {
                precondition(next < poolEnd, "table pool exhausted")
                let n = next
                next += granule.size
                _ = mem.write64(ea, n | 3 | tableBits)
                t = n
            }
            l += 1
        }
        return t
    }

    /// Maps va -> pa with a leaf at `level` (3: page; 1, 2: block; 0: whatever `raw` says).
    /// `extra` is ORed into the leaf (AP, PXN, UXN ...); `raw` replaces the whole descriptor.
    mutating func map(va: UInt64, pa: UInt64, level: Int, extra: UInt64 = 0, raw: UInt64? = nil, tableBits: UInt64 = 0)
    {
        let t = table(for: va, level: level, tableBits: tableBits)
        let e = raw ?? (pa | Self.leaf | extra | (level == 3 ? 3 : 1))
        _ = mem.write64(PhysAddr(t + index(va, level) * 8), e)
    }
}

/// TCR_EL1 for tests: both halves on their own granules and sizes, IPS from `ipsBits`.
func arm64TCR(
    t0sz: Int = 16, tg0: Granule = .g4k, t1sz: Int = 16, tg1: Granule = .g4k,
    ipsBits: Int = 48, extra: UInt64 = 0
) -> UInt64 {
    let ips: UInt64 = [32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5, 52: 6][ipsBits]!
    let half: UInt64 = (1 << 8) | (1 << 10) | (3 << 12)
    return UInt64(t0sz) | half | (tg0.tg0 << 14) | (UInt64(t1sz) << 16) | (half << 16) | (tg1.tg1 << 30) | (ips << 32)
        | extra
}

@Suite struct Arm64WalkerTests {
    let mmuOn: UInt64 = 0x30d0_1805  // SCTLR_EL1 RES1 bits | M | C | I

    func walk(
        _ va: UInt64, _ access: Arm64Walker.Access = .read, _ c: Arm64Walker.Control, _ mem: GuestMemory
    ) -> Result<Arm64Walker.Translation, Arm64Walker.Fault> {
        Arm64Walker.translate(VirtAddr(va), access: access, control: c) { mem.read64($0) }
    }

    func fault(_ r: Result<Arm64Walker.Translation, Arm64Walker.Fault>) -> Arm64Walker.Fault? {
        if case .failure(let f) = r { return f }
        return nil
    }

    @Test func granuleGeometry() {
        // Start levels at 48 bits: 4K 0 (4 levels), 16K 0 (4 levels, 2-entry L0), 64K 1 (3 levels).
        #expect(Granule.g4k.startLevel(vaBits: 48) == 0)
        #expect(Granule.g16k.startLevel(vaBits: 48) == 0)
        #expect(Granule.g64k.startLevel(vaBits: 48) == 1)
        #expect(Granule.g4k.startLevel(vaBits: 39) == 1)  // T0SZ 25: 3 levels
        #expect(Granule.g4k.startLevel(vaBits: 30) == 2)  // T0SZ 34: 2 levels
        #expect(Granule.g64k.startLevel(vaBits: 52) == 1)
        #expect(Granule.g16k.startLevel(vaBits: 47) == 1)  // 16K, 47 bits: 3 levels
        #expect(Granule.g16k.startLevel(vaBits: 36) == 2)
        #expect(Granule.g4k.levelShift(0) == 39)
        #expect(Granule.g16k.levelShift(0) == 47)
        #expect(Granule.g64k.levelShift(1) == 42)
        // TG0 and TG1 encode the granules differently.
        #expect(Granule(tg0: 0) == .g4k && Granule(tg1: 2) == .g4k)
        #expect(Granule(tg0: 2) == .g16k && Granule(tg1: 1) == .g16k)
        #expect(Granule(tg0: 1) == .g64k && Granule(tg1: 3) == .g64k)
        // Reserved encodings select 4k; only the low 2 bits count; encoding round-trips.
        #expect(Granule(tg0: 3) == .g4k && Granule(tg1: 0) == .g4k)
        #expect(Granule(tg0: 0b110) == .g16k && Granule(tg1: 0b111) == .g64k)
        #expect(Granule.allCases.allSatisfy { Granule(tg0: $0.tg0) == $0 && Granule(tg1: $0.tg1) == $0 })
    }

    @Test func fourLevels4KWithBlocks() throws {
        let mem = GuestMemory()
        var t = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 32, granule: .g4k)
        t.map(va: 0x0000_7fff_ffff_f000, pa: 0x8_7654_3000, level: 3)  // last page of TTBR0's 48 bits
        t.map(va: 0x0000_0080_4000_0000, pa: 0x140_0000_0000, level: 1)  // 1 GiB block at 1.25 TiB
        t.map(va: 0x0000_0000_4020_0000, pa: 0x1_0060_0000, level: 2)  // 2 MiB block above 4 GiB
        let c = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(), ttbr0: t.root.raw, ttbr1: 0)
        let p = try walk(0x0000_7fff_ffff_fff8, .write, c, mem).get()
        #expect(p.pa == PhysAddr(0x8_7654_3ff8))
        #expect(p.level == .l3 && p.leafSize == .kib(4) && p.ttbr == 0 && p.granule == .g4k)
        #expect(p.writable && p.executable && p.attrIndx == 0)
        let b1 = try walk(0x0000_0080_7fff_fff0, .read, c, mem).get()
        #expect(b1.pa == PhysAddr(0x140_3fff_fff0))
        #expect(b1.level == .l1 && b1.leafSize == .gib(1))
        let b2 = try walk(0x0000_0000_403f_f008, .fetch, c, mem).get()
        #expect(b2.pa == PhysAddr(0x1_007f_f008))
        #expect(b2.level == .l2 && b2.leafSize == .mib(2))
        // Invalid entries: the level whose descriptor has bit 0 clear.
        #expect(
            fault(walk(0x0000_0100_0000_0000, .read, c, mem))
                == Arm64Walker.Fault(
                    va: VirtAddr(0x0000_0100_0000_0000), level: .l0, reason: .invalid, ttbr: 0, index: 2,
                    entryAddress: PhysAddr(0x10_0000 + 16), entry: 0))
        let f1 = try #require(fault(walk(0x0000_0080_0000_0000, .read, c, mem)))
        #expect(f1.level == .l1 && f1.reason == .invalid && f1.index == 0)
        let f2 = try #require(fault(walk(0x0000_0000_4040_0000, .read, c, mem)))
        #expect(f2.level == .l2 && f2.reason == .invalid && f2.index == 2 && f2.statusCode == 0x06)
        let f3 = try #require(fault(walk(0x0000_7fff_ffff_e000, .read, c, mem)))
        #expect(f3.level == .l3 && f3.reason == .invalid && f3.index == 510 && f3.statusCode == 0x07)
    }

    /// EL0 accesses (PSTATE.EL = 0): AP[1] grants them, UXN instead of PXN forbids their fetches,
    /// APTable[0] and UXNTable on the way down apply (Arm ARM D8.4; Linux user pages are AP[1] | PXN,
    /// its kernel pages AP[1] clear).
    @Test func unprivilegedAccessesUseAP1AndUXN() throws {
        let mem = GuestMemory()
        var t = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 16, granule: .g4k)
        let ap1: UInt64 = 1 << 6
        let pxn: UInt64 = 1 << 53
        let uxn: UInt64 = 1 << 54
        t.map(va: 0x40_0000, pa: 0x5000, level: 3, extra: ap1 | pxn)  // user text
        t.map(va: 0x40_1000, pa: 0x6000, level: 3, extra: ap1 | pxn | uxn)  // user data
        t.map(va: 0x40_2000, pa: 0x7000, level: 3)  // kernel only
        var c = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(), ttbr0: t.root.raw, ttbr1: 0)
        #expect(fault(walk(0x40_0000, .fetch, c, mem))?.reason == .executeNever)  // PXN at EL1
        #expect((try? walk(0x40_2000, .read, c, mem).get()) != nil)
        c.unprivileged = true
        #expect(try walk(0x40_0000, .fetch, c, mem).get().pa == PhysAddr(0x5000))
        #expect(try walk(0x40_1008, .write, c, mem).get().pa == PhysAddr(0x6008))
        #expect(fault(walk(0x40_1000, .fetch, c, mem))?.reason == .executeNever)
        let k = try #require(fault(walk(0x40_2000, .read, c, mem)))
        #expect(k.reason == .privilegedOnly && k.statusCode == 0x0f)
        // UXNTable on the level-2 table descriptor forbids EL0 fetches below it.
        var u = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x20_0000), poolPages: 16, granule: .g4k)
        u.map(va: 0x40_0000, pa: 0x5000, level: 3, extra: ap1 | pxn, tableBits: 1 << 60)
        var cu = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(), ttbr0: u.root.raw, ttbr1: 0)
        cu.unprivileged = true
        #expect(fault(walk(0x40_0000, .fetch, cu, mem))?.reason == .executeNever)
        #expect(try walk(0x40_0000, .read, cu, mem).get().pa == PhysAddr(0x5000))
    }

    @Test func ttbr1AndTheRangeCheck() throws {
        let mem = GuestMemory()
        var t0 = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 8, granule: .g4k)
        var t1 = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x20_0000), poolPages: 8, granule: .g4k)
        t0.map(va: 0x1234_5000, pa: 0x5000, level: 3)
        t1.map(va: 0xffff_0000_1234_5000, pa: 0x7000, level: 3)
        let c = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(), ttbr0: t0.root.raw, ttbr1: t1.root.raw)
        #expect(try walk(0x1234_5008, .read, c, mem).get().pa == PhysAddr(0x5008))
        let hi = try walk(0xffff_0000_1234_5008, .read, c, mem).get()
        #expect(hi.pa == PhysAddr(0x7008) && hi.ttbr == 1)
        // Bits [63:48] must all equal VA[55]: neither half.
        for va: UInt64 in [0x0001_0000_0000_0000, 0x8000_0000_1234_5000, 0xfffe_0000_1234_5000] {
            let f = try #require(fault(walk(va, .read, c, mem)))
            #expect(f.reason == .outOfRange && f.level == .l0 && f.statusCode == 0x04, "\(hex(va))")
        }
        // TBI0: the top byte is ignored for data, not for fetches.
        let tbi = Arm64Walker.Control(
            sctlr: mmuOn, tcr: arm64TCR(extra: 1 << 37), ttbr0: t0.root.raw, ttbr1: t1.root.raw)
        #expect(try walk(0xab00_0000_1234_5010, .write, tbi, mem).get().pa == PhysAddr(0x5010))
        #expect(fault(walk(0xab00_0000_1234_5010, .fetch, tbi, mem))?.reason == .outOfRange)
        // EPD1: walks through TTBR1 fault at level 0.
        let epd = Arm64Walker.Control(
            sctlr: mmuOn, tcr: arm64TCR(extra: 1 << 23), ttbr0: t0.root.raw, ttbr1: t1.root.raw)
        #expect(fault(walk(0xffff_0000_1234_5008, .read, epd, mem))?.reason == .walkDisabled)
        #expect(try walk(0x1234_5008, .read, epd, mem).get().pa == PhysAddr(0x5008))
        // T0SZ 34: a 2-level walk starting at level 2; 2^30 is out of range.
        var t2 = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x30_0000), poolPages: 4, granule: .g4k, vaBits: 30)
        t2.map(va: 0x3fe0_0000, pa: 0x4_0000_0000, level: 2)
        let short = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(t0sz: 34), ttbr0: t2.root.raw, ttbr1: 0)
        let s = try walk(0x3fff_fff8, .read, short, mem).get()
        #expect(s.pa == PhysAddr(0x4_001f_fff8) && s.level == .l2)
        #expect(fault(walk(0x4000_0000, .read, short, mem))?.reason == .outOfRange)
    }

    @Test func sixteenK() throws {
        let mem = GuestMemory()
        var t = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x40_0000), poolPages: 16, granule: .g16k)
        // L0 has 2 entries (VA bit 47); L1 entries 64 GiB, L2 32 MiB blocks, L3 16 KiB pages.
        t.map(va: 0xffff_8000_0200_0000, pa: 0x1_0400_0000, level: 2)
        t.map(va: 0xffff_8000_0000_4000, pa: 0x9_8765_c000, level: 3)
        let c = Arm64Walker.Control(
            sctlr: mmuOn, tcr: arm64TCR(tg0: .g16k, tg1: .g16k), ttbr0: 0, ttbr1: t.root.raw)
        let b = try walk(0xffff_8000_03ff_fff8, .read, c, mem).get()
        #expect(b.pa == PhysAddr(0x1_05ff_fff8) && b.level == .l2 && b.leafSize == .mib(32))
        let p = try walk(0xffff_8000_0000_7ffc, .read, c, mem).get()
        #expect(p.pa == PhysAddr(0x9_8765_fffc) && p.level == .l3 && p.leafSize == .kib(16))
        // The root index is VA bit 47 only.
        #expect(
            fault(walk(0xffff_0000_0000_0000, .read, c, mem))
                == Arm64Walker.Fault(
                    va: VirtAddr(0xffff_0000_0000_0000), level: .l0, reason: .invalid, ttbr: 1, index: 0,
                    entryAddress: t.root, entry: 0))
        // No 64 GiB blocks with 16K (without FEAT_LPA2): a block descriptor at L1 is a translation fault.
        t.map(va: 0xffff_8010_0000_0000, pa: 0x10_0000_0000, level: 1)
        let f = try #require(fault(walk(0xffff_8010_0000_0000, .read, c, mem)))
        #expect(f.reason == .reservedDescriptor && f.level == .l1 && f.statusCode == 0x05)
    }

    @Test func sixtyFourK() throws {
        let mem = GuestMemory()
        var t = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x100_0000), poolPages: 8, granule: .g64k)
        // Start level 1 (64 entries, 4 TiB each), L2 512 MiB blocks, L3 64 KiB pages.
        t.map(va: 0x0000_0400_2000_0000, pa: 0x20_0000_0000, level: 2)
        t.map(va: 0x0000_0000_0001_0000, pa: 0x5_0003_0000, level: 3)
        let c = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(tg0: .g64k), ttbr0: t.root.raw, ttbr1: 0)
        let b = try walk(0x0000_0400_3fff_fff0, .read, c, mem).get()
        #expect(b.pa == PhysAddr(0x20_1fff_fff0) && b.level == .l2 && b.leafSize == .mib(512))
        let p = try walk(0x0000_0000_0001_fff8, .write, c, mem).get()
        #expect(p.pa == PhysAddr(0x5_0003_fff8) && p.level == .l3 && p.leafSize == .kib(64))
        let f = try #require(fault(walk(0x0000_0000_0002_0000, .read, c, mem)))
        #expect(f.level == .l3 && f.index == 2 && f.reason == .invalid)
        // A 4 TiB block at L1 needs 52-bit output addresses.
        t.map(va: 0x0000_0800_0000_0000, pa: 0x800_0000_0000, level: 1)
        #expect(fault(walk(0x0000_0800_0000_0000, .read, c, mem))?.reason == .reservedDescriptor)
    }

    @Test func sixtyFourKWith52BitAddresses() throws {
        // FEAT_LPA: PA[51:48] in descriptor bits [15:12] and TTBR bits [5:2]; 52-bit VAs (T0SZ 12).
        let mem = GuestMemory()
        var t = try Arm64TinyTables(
            mem: mem, pool: PhysAddr(0x100_0000), poolPages: 8, granule: .g64k, vaBits: 52)
        let pa52: UInt64 = 0x000a_1234_5678_0000
        let paBits = (pa52 & 0x0000_ffff_ffff_0000) | ((pa52 >> 48) << 12)
        t.map(va: 0x000f_ffff_ffff_0000, pa: paBits, level: 3)
        t.map(va: 0x0004_0000_0000_0000, pa: 0x3000, level: 1)  // 4 TiB block at PA 3 << 48
        let c = Arm64Walker.Control(
            sctlr: mmuOn, tcr: arm64TCR(t0sz: 12, tg0: .g64k, ipsBits: 52), ttbr0: t.root.raw, ttbr1: 0,
            physicalAddressBits: 52)
        let p = try walk(0x000f_ffff_ffff_fff8, .read, c, mem).get()
        #expect(p.pa == PhysAddr(pa52 | 0xfff8))
        let b = try walk(0x0004_0123_4567_8000, .read, c, mem).get()
        #expect(b.pa == PhysAddr(0x0003_0123_4567_8000) && b.level == .l1 && b.leafSize == .tib(4))
        // The same tables under a 48-bit CPU: T0SZ is clamped to 16 and the VA is out of range.
        var c48 = c
        c48.physicalAddressBits = 48
        #expect(fault(walk(0x000f_ffff_ffff_fff8, .read, c48, mem))?.reason == .outOfRange)
    }

    @Test func reservedDescriptorsAndAddressSize() throws {
        let mem = GuestMemory()
        var t = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 16, granule: .g4k)
        t.map(va: 0, pa: 0, level: 0, raw: 0x8000_0000_0701)  // block at L0 (4K): reserved
        t.map(va: 0x80_0000_1000, pa: 0, level: 3, raw: 0x2000_0701)  // 0b01 at L3: reserved
        t.map(va: 0x80_4000_0000, pa: 0x8000_0000_0000, level: 1)  // 1 GiB block at 128 TiB
        let c = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(ipsBits: 40), ttbr0: t.root.raw, ttbr1: 0)
        let f0 = try #require(fault(walk(0x1000, .read, c, mem)))
        #expect(f0.reason == .reservedDescriptor && f0.level == .l0)
        let f3 = try #require(fault(walk(0x80_0000_1000, .read, c, mem)))
        #expect(f3.reason == .reservedDescriptor && f3.level == .l3)
        // IPS = 40 bits: an output address at 128 TiB is an address size fault at its level.
        let fa = try #require(fault(walk(0x80_4000_0000, .read, c, mem)))
        #expect(fa.reason == .addressSize && fa.level == .l1 && fa.statusCode == 0x01)
        var c48 = c
        c48.tcr = arm64TCR(ipsBits: 48)
        #expect(try walk(0x80_4000_0010, .read, c48, mem).get().pa == PhysAddr(0x8000_0000_0010))
        // A table page outside guest memory: an external abort on the walk.
        t.map(va: 0x100_0000_0000, pa: 0, level: 0, raw: 0x7000_0000 | 3)
        let fx = try #require(fault(walk(0x100_0000_0000, .read, c, mem)))
        #expect(fx.reason == .tableNotBacked && fx.level == .l1 && fx.entryAddress == PhysAddr(0x7000_0000))
    }

    @Test func permissionsAndAccessFlag() throws {
        let mem = GuestMemory()
        var t = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 16, granule: .g4k)
        let ap2: UInt64 = 1 << 7
        let ap1: UInt64 = 1 << 6
        let pxn: UInt64 = 1 << 53
        let uxn: UInt64 = 1 << 54
        t.map(va: 0x1000, pa: 0x1000, level: 3, extra: ap2)  // read-only
        t.map(va: 0x2000, pa: 0x2000, level: 3, extra: pxn)  // data only at EL1
        t.map(va: 0x3000, pa: 0x3000, level: 3, extra: uxn)  // EL1 may execute
        t.map(va: 0x4000, pa: 0x4000, level: 3, extra: ap1)  // writable at EL0: never executes at EL1
        t.map(va: 0x5000, pa: 0x5000, level: 3, raw: 0x5000 | 0x303)  // AF clear
        t.map(va: 0x4000_0000, pa: 0x4000_0000, level: 2, tableBits: 1 << 62)  // APTable[1]: read-only below
        t.map(va: 0x80_0000_0000, pa: 0x8000_0000, level: 2, tableBits: 1 << 59)  // PXNTable
        let c = Arm64Walker.Control(sctlr: mmuOn, tcr: arm64TCR(), ttbr0: t.root.raw, ttbr1: 0)
        let ro = try #require(fault(walk(0x1008, .write, c, mem)))
        #expect(ro.reason == .readOnly && ro.level == .l3 && ro.statusCode == 0x0f)
        #expect(try !walk(0x1008, .read, c, mem).get().writable)
        let xn = try #require(fault(walk(0x2000, .fetch, c, mem)))
        #expect(xn.reason == .executeNever && xn.level == .l3)
        #expect(try walk(0x2000, .write, c, mem).get().writable)
        #expect(try walk(0x3000, .fetch, c, mem).get().executable)
        #expect(fault(walk(0x4000, .fetch, c, mem))?.reason == .executeNever)
        let af = try #require(fault(walk(0x5000, .read, c, mem)))
        #expect(af.reason == .accessFlag && af.statusCode == 0x0b)
        var ha = c
        ha.tcr |= 1 << 39  // TCR_EL1.HA: the hardware sets AF instead
        #expect(try walk(0x5000, .read, ha, mem).get().pa == PhysAddr(0x5000))
        #expect(fault(walk(0x4000_1000, .write, c, mem))?.reason == .readOnly)
        #expect(fault(walk(0x80_0000_0000, .fetch, c, mem))?.reason == .executeNever)
        // SCTLR_EL1.WXN: writable pages never execute.
        var wxn = c
        wxn.sctlr |= 1 << 19
        #expect(fault(walk(0x3000, .fetch, wxn, mem))?.reason == .executeNever)
        #expect(try walk(0x1000, .fetch, wxn, mem).get().executable)
    }

    @Test func mmuOffIsFlat() throws {
        let c = Arm64Walker.Control(sctlr: 0x30d0_0800, tcr: 0, ttbr0: 0, ttbr1: 0)
        let mem = GuestMemory()
        let t = try walk(0x7_1234_5678, .fetch, c, mem).get()
        #expect(t.pa == PhysAddr(0x7_1234_5678) && t.level == nil && t.executable && t.writable)
        // Beyond the CPU's 48 physical address bits: an address size fault.
        #expect(fault(walk(0x1_0000_0000_0000, .read, c, mem))?.reason == .addressSize)
    }
}
