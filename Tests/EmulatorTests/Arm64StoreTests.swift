import Emulator
import GuestCode
import KexecModel
import Testing

/// Stores through the project's AArch64 MMU land at the PA the guest's 4-level tables say — above
/// 4 GiB and above 1 TiB, where Unicorn's own arm64 walker gives up (it aborts on 4-level walks).
@Suite struct Arm64StoreTests {
    let probe = Arm64GuestCode.probe
    let codeVA: UInt64 = 0xffff_8000_0040_0000
    let codePA: UInt64 = 0x4020_0000
    let sctlr: UInt64 = 0x30d0_1805

    func machine() throws -> (GuestMemory, Arm64TinyTables, Arm64TinyTables) {
        let mem = GuestMemory()
        try mem.add(start: PhysAddr(codePA), size: .kib(4), label: "probe")
        #expect(mem.write(PhysAddr(codePA), probe.bytes))
        let low = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x4000_0000), poolPages: 32, granule: .g4k)
        var high = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x4010_0000), poolPages: 32, granule: .g4k)
        high.map(va: codeVA, pa: codePA, level: 3, extra: 1 << 7)  // read-only, executable at EL1
        return (mem, low, high)
    }

    func engine(_ mem: GuestMemory, _ low: Arm64TinyTables, _ high: Arm64TinyTables, mmu: MMUMode = .project) throws
        -> Arm64Engine
    {
        let e = try Arm64Engine(memory: mem, mmu: mmu)
        e.enableMMU(tcr: arm64TCR(), ttbr0: low.root.raw, ttbr1: high.root.raw, mair: 0x0000_0004_0044_ffff)
        return e
    }

    func store(_ e: Arm64Engine, va: UInt64, value: UInt64) -> StopReason<Arm64Walker.Fault> {
        e.write(.x0, va)
        e.write(.x1, value)
        return e.run(
            from: VirtAddr(codeVA + Arm64GuestCode.Probe.storeProbe),
            until: VirtAddr(codeVA + Arm64GuestCode.Probe.storeProbeDone), budget: 0, timeoutMicros: 5_000_000)
    }

    var done: StopReason<Arm64Walker.Fault> { .reached(pc: VirtAddr(codeVA + Arm64GuestCode.Probe.storeProbeDone)) }

    @Test func storesLandAtTheTranslatedPA() throws {
        var (mem, low, high) = try machine()
        let targets: [(va: UInt64, pa: UInt64, level: Int)] = [
            (0x4000_0000_0000, 0x1_2345_6000, 3),  // 4 KiB page above 4 GiB, L0 index 128
            (0x0000_0000_8000_0000, 0x1_0000_0000 + (3 << 21), 2),  // 2 MiB block above 4 GiB
            (0x0000_7f80_4000_0000, 1 << 40, 1),  // 1 GiB block at exactly 1 TiB, L0 index 255
            (0x0000_0001_0000_0000, 20 << 40, 2),  // 2 MiB block at 20 TiB
            (0xffff_0000_0000_0000, (24 << 40) - (1 << 21), 2),  // TTBR1 -> the last 2 MiB below 24 TiB
        ]
        for x in targets {
            if x.va >> 63 == 1 {
                high.map(va: x.va, pa: x.pa, level: x.level)
            } else {
                low.map(va: x.va, pa: x.pa, level: x.level)
            }
            try mem.add(start: PhysAddr(x.pa + (x.level == 3 ? 0 : 0x1000)), size: .kib(4), label: "target")
        }
        let e = try engine(mem, low, high)
        for (i, x) in targets.enumerated() {
            let value = 0x1122_3344_5566_7700 | UInt64(i)
            let off: UInt64 = x.level == 3 ? 0xff8 : 0x1ff8
            let stop = store(e, va: x.va + off, value: value)
            #expect(stop == done, "\(hex(x.va)): \(stop)")
            #expect(
                mem.read64(PhysAddr(x.pa + off)) == value,
                "store through \(hex(x.va)) should land at \(hex(x.pa + off))")
            #expect(mem.read64(PhysAddr((x.va & 0xffff_ffff_ffff) + off)) == nil)
        }
        #expect(e.tlbFills > 0)
    }

    @Test func theEnginesOwnWalkerCannotDoFourLevels() throws {
        var (mem, low, high) = try machine()
        low.map(va: 0x0000_0000_8000_0000, pa: 0x1_0060_0000, level: 2)
        try mem.add(start: PhysAddr(0x1_0060_0000), size: .kib(4), label: "target")
        let e = try engine(mem, low, high, mmu: .engine)
        // Unicorn 2.1.4 prefetch-aborts on the first fetch through 4-level tables (T1SZ 16).
        let stop = store(e, va: 0x8000_0008, value: 7)
        #expect(stop != done)
        #expect(mem.read64(PhysAddr(0x1_0060_0008)) == 0)
    }

    @Test func missingEntryIsAFaultWithItsLevel() throws {
        var (mem, low, high) = try machine()
        low.map(va: 0x20_0000, pa: 0x20_0000, level: 2)  // L0[0], L1[0] and an L2 page now exist
        let e = try engine(mem, low, high)
        let stop = store(e, va: 0x7_0000_1234, value: 1)
        guard case .translationFault(let f, let access, let pc) = stop else {
            Issue.record("expected a translation fault, got \(stop)")
            return
        }
        #expect(f.va == VirtAddr(0x7_0000_1000))  // the MMU sees the page
        #expect(f.level == .l1 && f.reason == .invalid && f.index == 28)
        #expect(access == .write)
        #expect(pc == VirtAddr(codeVA + Arm64GuestCode.Probe.storeProbe))
        #expect(
            e.lastFault
                == Arm64Walker.Fault(
                    va: VirtAddr(0x7_0000_1000), level: .l1, reason: .invalid, ttbr: 0, index: 28,
                    entryAddress: PhysAddr(0x4000_1000 + 28 * 8), entry: 0))
        // A write to the read-only code page is a permission fault at level 3.
        let ro = try engine(mem, low, high)
        guard case .translationFault(let f2, _, _) = store(ro, va: codeVA + 0x800, value: 1) else {
            Issue.record("expected a permission fault")
            return
        }
        #expect(f2.reason == .readOnly && f2.level == .l3)
        #expect(ro.lastFault?.reason == .readOnly && ro.lastFault?.statusCode == 0x0f)
    }

    @Test func unbackedPagesAreBackedOnDemandOrReported() throws {
        var (mem, low, high) = try machine()
        low.map(va: 0x4000_0000, pa: 0x8000_0000, level: 2)  // "usable RAM" nobody loaded
        low.map(va: 0x6000_0000, pa: 0x0900_0000, level: 2)  // "MMIO"
        let e = try engine(mem, low, high)
        e.backOnDemand = { pa, _ in pa.raw >= 0x8000_0000 }
        #expect(store(e, va: 0x4000_5008, value: 0xabcd) == done)
        #expect(e.onDemandPages == [PhysAddr(0x8000_5000)])
        #expect(mem.read64(PhysAddr(0x8000_5008)) == 0xabcd)
        guard case .unbackedAccess(let pa, let access, _) = store(e, va: 0x6000_0010, value: 1) else {
            Issue.record("expected an unbacked access")
            return
        }
        #expect(pa == PhysAddr(0x0900_0000))
        #expect(access == .write)
    }

    @Test func touchProbeReadsEachAddress() throws {
        var (mem, low, high) = try machine()
        low.map(va: 0x1000_0000, pa: 0x4030_0000, level: 3)  // the address list
        low.map(va: 0x2000_0000, pa: 0x2_0000_0000, level: 2)  // "firmware tables" above 8 GiB
        try mem.add(start: PhysAddr(0x4030_0000), size: .kib(4), label: "list")
        try mem.add(start: PhysAddr(0x2_0000_0000), size: .kib(8), label: "fw")
        _ = mem.write64(PhysAddr(0x4030_0000), 0x2000_0010)
        _ = mem.write64(PhysAddr(0x4030_0008), 0x2000_1ff0)
        _ = mem.write64(PhysAddr(0x4030_0010), 0x3000_0000)  // not mapped
        _ = mem.write64(PhysAddr(0x2_0000_0010), 0x55)
        _ = mem.write64(PhysAddr(0x2_0000_1ff0), 0x66)
        let e = try engine(mem, low, high)
        func touch(_ n: UInt64) -> StopReason<Arm64Walker.Fault> {
            e.write(.x0, 0x1000_0000)
            e.write(.x1, n)
            return e.run(
                from: VirtAddr(codeVA + Arm64GuestCode.Probe.touchProbe),
                until: VirtAddr(codeVA + Arm64GuestCode.Probe.touchProbeDone), budget: 1000)
        }
        #expect(touch(2) == .reached(pc: VirtAddr(codeVA + Arm64GuestCode.Probe.touchProbeDone)))
        #expect(e.read(.x2) == 0x66)
        guard case .translationFault(let f, let access, _) = touch(3) else {
            Issue.record("expected a fault on the third address")
            return
        }
        #expect(f.va == VirtAddr(0x3000_0000) && f.level == .l2 && access == .read)
        #expect(e.read(.x1) == 1)  // one address left when it faulted
    }

    /// Unicorn's TLB is the CPU model's, so the guest's maintenance drives it: MSR TTBR0_EL1 with the
    /// same ASID invalidates nothing (a stale entry is architecturally allowed, and QEMU keeps it),
    /// TLBI VMALLE1 does, MSR SCTLR_EL1 flushes. Host register writes flush too (Arm64Engine does it).
    @Test func tlbMaintenanceFollowsTheArchitecture() throws {
        let mem = GuestMemory()
        let code: UInt64 = 0x4020_0000
        let words: [UInt32] = [
            0xf940_0002,  // ldr x2, [x0]         through table A
            0xd518_2001,  // msr ttbr0_el1, x1    table B, no TLBI
            0xf940_0003,  // ldr x3, [x0]
            0xd508_871f,  // tlbi vmalle1
            0xd503_3f9f,  // dsb sy
            0xd503_3fdf,  // isb
            0xf940_0004,  // ldr x4, [x0]         through table B
            0xd518_1005,  // msr sctlr_el1, x5    MMU off
            0xd503_3fdf,  // isb
            0xf940_0006,  // ldr x6, [x0]         flat
            0x1400_0000,  // done: b .
        ]
        try mem.add(start: PhysAddr(code), size: .kib(4), label: "code")
        #expect(
            mem.write(PhysAddr(code), words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } }))
        for (pa, v): (UInt64, UInt64) in [(0x4030_0000, 0x1111), (0x4040_0000, 0x2222), (0x1000_0000, 0x3333)] {
            try mem.add(start: PhysAddr(pa), size: .kib(4), label: "data")
            _ = mem.write64(PhysAddr(pa), v)
        }
        var a = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x4100_0000), poolPages: 8, granule: .g4k)
        var b = try Arm64TinyTables(mem: mem, pool: PhysAddr(0x4200_0000), poolPages: 8, granule: .g4k)
        for t in [0, 1] {
            if t == 0 {
                a.map(va: code, pa: code, level: 3)
                a.map(va: 0x1000_0000, pa: 0x4030_0000, level: 3)
            } else {
                b.map(va: code, pa: code, level: 3)
                b.map(va: 0x1000_0000, pa: 0x4040_0000, level: 3)
            }
        }
        let e = try Arm64Engine(memory: mem)
        e.enableMMU(tcr: arm64TCR(), ttbr0: a.root.raw, ttbr1: 0, mair: 0xff)
        e.write(.x0, 0x1000_0000)
        e.write(.x1, b.root.raw)
        e.write(.x5, e.read(.sctlrEL1) & ~1)
        let done = VirtAddr(code + 40)
        #expect(e.run(from: VirtAddr(code), until: done, budget: 100) == .reached(pc: done))
        #expect(e.read(.x2) == 0x1111)
        #expect(e.read(.x3) == 0x1111, "stale after MSR TTBR0_EL1 without TLBI")
        #expect(e.read(.x4) == 0x2222, "TLBI VMALLE1 flushed")
        #expect(e.read(.x6) == 0x3333, "MSR SCTLR_EL1 flushed: flat")
        // The host's register writes flush: back on table A, the first load sees A again (the engine
        // also drops blocks translated for the earlier stop address, which ran past code + 4).
        e.enableMMU(tcr: arm64TCR(), ttbr0: a.root.raw, ttbr1: 0, mair: 0xff)
        #expect(e.run(from: VirtAddr(code), until: VirtAddr(code + 4), budget: 10) == .reached(pc: VirtAddr(code + 4)))
        #expect(e.read(.x2) == 0x1111)
        e.write(.ttbr0EL1, b.root.raw)
        #expect(e.run(from: VirtAddr(code), until: VirtAddr(code + 4), budget: 10) == .reached(pc: VirtAddr(code + 4)))
        #expect(e.read(.x2) == 0x2222)
    }
}
