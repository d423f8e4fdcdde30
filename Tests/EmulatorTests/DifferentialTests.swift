import Emulator
import KexecModel
import Testing

/// Our walker against Unicorn's own (UC_TLB_CPU) on what the engine can do, and on what it cannot.
@Suite struct DifferentialTests {
    /// Deterministic pseudo-random tables: a mix of 4 KiB, 2 MiB and 1 GiB leaves below 1 TiB.
    func randomTables(_ mem: GuestMemory, seed: UInt64, count: Int) throws -> (TinyTables, [UInt64]) {
        var t = try TinyTables(mem: mem, pool: PhysAddr(0x100_0000), poolPages: 1024)
        var s = seed
        func next() -> UInt64 {
            s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return s >> 11
        }
        var vas: [UInt64] = []
        for i in 0..<count {
            let level = [1, 2, 3][Int(next() % 3)]
            let size: UInt64 = level == 1 ? 1 << 12 : level == 2 ? 1 << 21 : 1 << 30
            // VA below 256 TiB user half or in the kernel half; PA below 1 TiB (the engine's 40 bits).
            var va = (next() % (1 << 47)) & ~(size - 1)
            if i % 4 == 0 { va |= 0xffff_8000_0000_0000 }
            let pa = (next() % (1 << 40)) & ~(size - 1)
            // Skip slots whose upper levels already hold a large leaf (a real builder never mixes them).
            let probe = X86Walker.translate(VirtAddr(va), access: .read, control: control(t)) { mem.read64($0) }
            if case .success = probe { continue }
            if case .failure(let f) = probe, f.reason != .notPresent { continue }
            if case .failure(let f) = probe, (f.level?.number(levels: 4) ?? 0) < level { continue }
            t.map(va: va, pa: pa, level: level, flags: (next() % 5 == 0) ? 0x1e1 : 0x1e3)
            vas.append(va + (next() % size & ~7))
        }
        return (t, vas)
    }

    func control(_ t: TinyTables) -> X86Walker.Control {
        X86Walker.Control(cr0: 0x8005_0033, cr3: t.root.raw, cr4: 0x20, efer: 0x500)
    }

    @Test func walkerAgreesWithTheEngineBelow1TiB() throws {
        let mem = GuestMemory()
        let (t, vas) = try randomTables(mem, seed: 42, count: 300)
        let engine = try X86Engine(memory: mem, mmu: .engine)
        engine.enterLongMode(cr3: t.root, fiveLevel: false)
        engine.write(.cr0, 0x8005_0033)
        var compared = 0
        var agreedFaults = 0
        // Mapped addresses, and the same addresses moved into neighbouring unmapped slots.
        for va in vas + vas.map({ $0 ^ (1 << 38) }) {
            for access in [X86Walker.Access.read, .write] {
                let ours = X86Walker.translate(VirtAddr(va), access: access, control: control(t)) { mem.read64($0) }
                let theirs = engine.engineTranslate(VirtAddr(va), access: access)
                switch ours {
                case .success(let tr):
                    #expect(
                        theirs == tr.pa,
                        "VA \(hex(va)) \(access): ours \(tr.pa), engine \(theirs.map { "\($0)" } ?? "fault")")
                case .failure:
                    #expect(
                        theirs == nil, "VA \(hex(va)) \(access): ours faults, engine \(theirs.map { "\($0)" } ?? "-")")
                    agreedFaults += 1
                }
                compared += 1
            }
        }
        #expect(vas.count > 200)
        #expect(compared == vas.count * 4)
        #expect(agreedFaults > 50, "vas \(vas.count) faults \(agreedFaults) sample \(vas.prefix(3).map { hex($0) })")
    }

    @Test func aLeafAt20TiBOnlyOurWalkerTranslates() throws {
        let mem = GuestMemory()
        var t = try TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 16)
        let twentyTiB: UInt64 = 20 << 40
        t.map(va: twentyTiB, pa: twentyTiB, level: 2)
        let ours = X86Walker.translate(VirtAddr(twentyTiB + 0x1234), access: .read, control: control(t)) {
            mem.read64($0)
        }
        #expect(try ours.get().pa == PhysAddr(twentyTiB + 0x1234))
        let engine = try X86Engine(memory: mem, mmu: .engine)
        engine.enterLongMode(cr3: t.root, fiveLevel: false)
        // Unicorn 2.1.4's x86 CPU models have 40 physical address bits: the engine refuses.
        #expect(engine.engineTranslate(VirtAddr(twentyTiB + 0x1234), access: .read) == nil)
    }
}
