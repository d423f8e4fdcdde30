import Emulator
import GuestCode
import KexecModel
import Testing

/// Stores through the project's MMU land at the PA the guest's tables say, far above what the
/// engine's own x86 models can address.
@Suite struct StoreTests {
    let probe = X86_64GuestCode.probe
    let codeVA: UInt64 = 0xffff_ffff_8040_0000
    let codePA: UInt64 = 0x20_0000

    func machine() throws -> (GuestMemory, TinyTables) {
        let mem = GuestMemory()
        try mem.add(start: PhysAddr(codePA), size: .kib(4), label: "probe")
        #expect(mem.write(PhysAddr(codePA), probe.bytes))
        var t = try TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 32)
        t.map(va: codeVA, pa: codePA, level: 1)
        return (mem, t)
    }

    func store(_ engine: X86Engine, va: UInt64, value: UInt64) -> StopReason<X86Walker.Fault> {
        engine.write(.rax, value)
        engine.write(.rbx, va)
        return engine.run(
            from: VirtAddr(codeVA + X86_64GuestCode.Probe.storeProbe),
            until: VirtAddr(codeVA + X86_64GuestCode.Probe.storeProbeDone),
            budget: 0, timeoutMicros: 5_000_000)
    }

    @Test func storesLandAtTheTranslatedPA() throws {
        var (mem, t) = try machine()
        let targets: [(va: UInt64, pa: UInt64, level: Int)] = [
            (0x4000_0000, 0x7654_3000, 1),  // 4 KiB page, VA != PA
            (0x8000_0000, 0x1_0000_0000 + (3 << 21), 2),  // 2 MiB leaf above 4 GiB
            (0xc000_0000, 1 << 40, 3),  // 1 GiB leaf at exactly 1 TiB
            (0x1_0000_0000, 20 << 40, 2),  // 2 MiB leaf at 20 TiB
            (0xffff_8880_0000_0000, (24 << 40) - (1 << 21), 2),  // kernel half -> last 2 MiB below 24 TiB
        ]
        for x in targets {
            t.map(va: x.va, pa: x.pa, level: x.level)
            try mem.add(start: PhysAddr(x.pa + (x.level == 1 ? 0 : 0x1000)), size: .kib(4), label: "target")
        }
        let engine = try X86Engine(memory: mem)
        engine.enterLongMode(cr3: t.root, fiveLevel: false)
        for (i, x) in targets.enumerated() {
            let value = 0x1122_3344_5566_7700 | UInt64(i)
            let off: UInt64 = x.level == 1 ? 0xff8 : 0x1ff8
            let stop = store(engine, va: x.va + off, value: value)
            #expect(
                stop == .reached(pc: VirtAddr(codeVA + X86_64GuestCode.Probe.storeProbeDone)), "\(hex(x.va)): \(stop)")
            #expect(
                mem.read64(PhysAddr(x.pa + off)) == value,
                "store through \(hex(x.va)) should land at \(hex(x.pa + off))")
            // And nowhere else: the identity address is not even backed.
            #expect(mem.read64(PhysAddr(x.va + off)) == nil)
        }
    }

    @Test func missingEntryIsAFaultWithItsLevel() throws {
        var (mem, t) = try machine()
        t.map(va: 0x20_0000, pa: 0x20_0000, level: 2)  // pgd[0] and its pud page now exist
        let engine = try X86Engine(memory: mem)
        engine.enterLongMode(cr3: t.root, fiveLevel: false)
        let stop = store(engine, va: 0x7_0000_1234, value: 1)
        guard case .translationFault(let f, let access, let pc) = stop else {
            Issue.record("expected a translation fault, got \(stop)")
            return
        }
        #expect(f.va == VirtAddr(0x7_0000_1000))  // the MMU sees the page
        #expect(f.level == .pud && f.reason == .notPresent)
        #expect(access == .write)
        #expect(pc == VirtAddr(codeVA + X86_64GuestCode.Probe.storeProbe))
    }

    @Test func unbackedPagesAreBackedOnDemandOrReported() throws {
        var (mem, t) = try machine()
        t.map(va: 0x4000_0000, pa: 0x4000_0000, level: 2)  // "usable RAM" nobody loaded
        t.map(va: 0x6000_0000, pa: 0xfec0_0000, level: 2)  // "MMIO"
        let engine = try X86Engine(memory: mem)
        engine.backOnDemand = { pa, _ in pa.raw < 0x8000_0000 }
        engine.enterLongMode(cr3: t.root, fiveLevel: false)
        let ok = store(engine, va: 0x4000_5008, value: 0xabcd)
        #expect(ok == .reached(pc: VirtAddr(codeVA + X86_64GuestCode.Probe.storeProbeDone)))
        #expect(engine.onDemandPages == [PhysAddr(0x4000_5000)])
        #expect(mem.read64(PhysAddr(0x4000_5008)) == 0xabcd)
        let bad = store(engine, va: 0x6000_0010, value: 1)
        guard case .unbackedAccess(let pa, let access, _) = bad else {
            Issue.record("expected an unbacked access, got \(bad)")
            return
        }
        #expect(pa == PhysAddr(0xfec0_0000))
        #expect(access == .write)
    }

    /// Unicorn sometimes returns early with no reason under load: the engine goes on from where it
    /// stopped, with the time and the instructions that are left, and only a real limit ends the run.
    @Test func earlyReturnsWithoutAReasonAreResumed() throws {
        var (mem, t) = try machine()
        let listVA: UInt64 = 0x4000_0000
        t.map(va: listVA, pa: 0x30_0000, level: 1)
        try mem.add(start: PhysAddr(0x30_0000), size: .kib(4), label: "list")
        for i in 0..<8 { #expect(mem.write64(PhysAddr(0x30_0000 + UInt64(i) * 8), listVA)) }
        let start = VirtAddr(codeVA + X86_64GuestCode.Probe.touchProbe)
        let done = VirtAddr(codeVA + X86_64GuestCode.Probe.touchProbeDone)
        for (budget, timeout) in [(UInt64(0), UInt64(5_000_000)), (0, 0), (100_000, 5_000_000), (100_000, 0)] {
            let e = try X86Engine(memory: mem)
            e.enterLongMode(cr3: t.root, fiveLevel: false)
            try e.stopWithoutReason(at: start, times: 1)
            try e.stopWithoutReason(at: VirtAddr(codeVA + X86_64GuestCode.Probe.touchProbe + 3), times: 2)
            e.write(.rsi, listVA)
            e.write(.rcx, 8)
            let stop = e.run(from: start, until: done, budget: budget, timeoutMicros: timeout)
            #expect(stop == .reached(pc: done), "budget \(budget), timeout \(timeout): \(stop)")
            #expect(e.resumes >= 1, "budget \(budget), timeout \(timeout)")
            #expect(e.read(.rcx) == 0)
        }
        // A budget that really runs out still ends the run, resumes or not.
        let e = try X86Engine(memory: mem)
        e.enterLongMode(cr3: t.root, fiveLevel: false)
        try e.stopWithoutReason(at: start, times: 1)
        e.write(.rsi, listVA)
        e.write(.rcx, 8)
        guard case .budgetExhausted(_, let n) = e.run(from: start, until: done, budget: 5, timeoutMicros: 0) else {
            Issue.record("a 5-instruction budget should run out")
            return
        }
        #expect(n == 5)
    }
}
