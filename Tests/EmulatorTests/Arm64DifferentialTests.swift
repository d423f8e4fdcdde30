import Emulator
import KexecModel
import Testing

/// Our AArch64 walker against Unicorn's own (UC_TLB_CPU, uc_vmem_translate) on what the engine can
/// do: 3-level walks with the 4 KiB granule (T0SZ 25), pages, 2 MiB and 1 GiB blocks, read-only,
/// invalid and AF-clear descriptors, output addresses up to 1 TiB, most above 4 GiB (where Debian's
/// 2.0.1 truncated). Measured limits of 2.1.4 that shape the test:
/// - uc_vmem_translate truncates arm64 VAs to 32 bits, sign-extended (VA 0x1_0000_1234 is answered
///   as 0x1234, VA 0x8060_1238 as 0xffff_ffff_8060_1238): VAs stay below 2 GiB, TTBR1 is out;
/// - its answers keep 40 physical bits (a 1 GiB block at 0xa83_4000_0000 comes back at
///   0x83_4000_0000): PAs stay below 1 TiB;
/// - 64 KiB granule walks all fault, 16 KiB ones disagree (the A72 model has no 16 KiB granule);
/// - the engine's own walker prefetch-aborts on 4-level tables (see Arm64StoreTests).
@Suite struct Arm64DifferentialTests {
    let sctlr: UInt64 = 0x30d0_1805

    func control(_ g: Granule, root: UInt64) -> Arm64Walker.Control {
        Arm64Walker.Control(
            sctlr: sctlr, tcr: arm64TCR(t0sz: 25, tg0: g, t1sz: 25, ipsBits: 44), ttbr0: root, ttbr1: 0,
            physicalAddressBits: 44)
    }

    /// Deterministic pseudo-random tables below VA 2 GiB: pages and blocks of every allowed level,
    /// some read-only, some invalid, some with AF clear; each sampled VA's page backed.
    func randomTables(_ mem: GuestMemory, granule g: Granule, seed: UInt64, count: Int) throws -> (
        Arm64TinyTables, [UInt64]
    ) {
        var t = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x100_0000), poolPages: 256, granule: g, vaBits: 39)
        var s = seed
        func next() -> UInt64 {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return s >> 11
        }
        let c = control(g, root: t.root.raw)
        let levels = g == .g4k ? [3, 2, 1] : [3, 2]
        var vas: [UInt64] = []
        for _ in 0..<count {
            let level = levels[Int(next() % UInt64(levels.count))]
            let size = UInt64(1) << UInt64(g.levelShift(level))
            let va = (next() % (1 << 31)) & ~(size - 1)
            let pa = (next() % (1 << 40)) & ~(size - 1)  // below 1 TiB: the engine keeps 40 PA bits
            // Skip slots whose upper levels already hold a block (a real builder never mixes them).
            switch Arm64Walker.translate(VirtAddr(va), access: .read, control: c, read64: { mem.read64($0) }) {
            case .success: continue
            case .failure(let f) where f.reason != .invalid || f.level.rawValue > level: continue
            default: break
            }
            let type: UInt64 = level == 3 ? 3 : 1
            switch next() % 10 {
            case 0: t.map(va: va, pa: pa, level: level, extra: 1 << 7)  // read-only
            case 1: t.map(va: va, pa: pa, level: level, raw: pa | 0x700 | (type & ~1))  // invalid
            case 2: t.map(va: va, pa: pa, level: level, raw: pa | 0x300 | type)  // AF clear
            default: t.map(va: va, pa: pa, level: level)
            }
            vas.append(va + (next() % size & ~7))
        }
        // Back the page each sampled VA lands on (the engine reports unbacked pages' PAs wrongly).
        for va in vas {
            if case .success(let tr) = Arm64Walker.translate(
                VirtAddr(va), access: .read, control: c, read64: { mem.read64($0) }),
                !mem.isBacked(tr.pa)
            {
                try mem.add(start: tr.pa.alignedDown(.kib(4)), size: .kib(4), label: "target")
            }
        }
        return (t, vas)
    }

    @Test(arguments: [UInt64(42), 7, 2026])
    func walkerAgreesWithTheEngine(seed: UInt64) throws {
        let granule = Granule.g4k
        let mem = GuestMemory()
        let (t, vas) = try randomTables(mem, granule: granule, seed: seed, count: 400)
        let c = control(granule, root: t.root.raw)
        let engine = try Arm64Engine(memory: mem, mmu: .engine)
        engine.write(.mairEL1, 0xff)
        engine.write(.tcrEL1, c.tcr)
        engine.write(.ttbr0EL1, c.ttbr0)
        engine.write(.sctlrEL1, c.sctlr)
        var compared = 0
        var agreedFaults = 0
        var above4G = 0
        // Mapped addresses, and the same addresses moved into neighbouring slots.
        for va in vas + vas.map({ $0 ^ (1 << 28) }) {
            for access in [Arm64Walker.Access.read, .write] {
                let ours = Arm64Walker.translate(VirtAddr(va), access: access, control: c) { mem.read64($0) }
                let theirs = engine.engineTranslate(VirtAddr(va), access: access)
                switch ours {
                case .success(let tr):
                    #expect(
                        theirs == tr.pa,
                        "VA \(hex(va)) \(access): ours \(tr.pa) \(tr.level.map { "\($0)" } ?? "flat") \(hex(tr.descriptor)), engine \(theirs.map { "\($0)" } ?? "fault")"
                    )
                    if tr.pa.raw >= 1 << 32 { above4G += 1 }
                case .failure(let f):
                    #expect(
                        theirs == nil,
                        "VA \(hex(va)) \(access): ours \(f), engine \(theirs.map { "\($0)" } ?? "-")")
                    agreedFaults += 1
                }
                compared += 1
            }
        }
        #expect(compared == vas.count * 4)
        #expect(vas.count >= 100, "\(vas.count) VAs")
        #expect(agreedFaults >= vas.count / 4, "\(agreedFaults) faults")
        #expect(above4G >= vas.count / 2, "\(above4G) above 4 GiB")
    }
}
