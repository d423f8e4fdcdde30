import Emulator
import KexecModel
import Testing

/// A minimal table writer for these tests (the real builder is the PageTables module).
struct TinyTables {
    let mem: GuestMemory
    let root: PhysAddr
    var next: UInt64
    let levels: Int

    init(mem: GuestMemory, pool: PhysAddr, poolPages: Int, levels: Int = 4) throws {
        try mem.add(start: pool, size: ByteCount(UInt64(poolPages) * 4096), label: "tables")
        self.mem = mem
        root = pool
        next = pool.raw + 4096
        self.levels = levels
    }

    mutating func table(_ t: UInt64, _ i: UInt64) -> UInt64 {
        let e = mem.read64(PhysAddr(t + i * 8))!
        if e & 1 != 0 { return e & 0x000f_ffff_ffff_f000 }
        let n = next
        next += 4096
        _ = mem.write64(PhysAddr(t + i * 8), n | 0x63)
        return n
    }
    /// Maps va -> pa with a leaf at `level` (1 = 4K pte, 2 = 2M pmd, 3 = 1G pud).
    mutating func map(va: UInt64, pa: UInt64, level: Int, flags: UInt64 = 0x1e3) {
        var t = root.raw
        for l in stride(from: levels, to: level, by: -1) {
            t = table(t, (va >> UInt64(12 + 9 * (l - 1))) & 0x1ff)
        }
        let idx = (va >> UInt64(12 + 9 * (level - 1))) & 0x1ff
        let f = level == 1 ? flags & ~0x80 : flags
        _ = mem.write64(PhysAddr(t + idx * 8), pa | f)
    }
}

@Suite struct WalkerTests {
    @Test func engineVersionIsAtLeast21() {
        let v = EngineVersion.current
        #expect(v.isSupported)
        #expect(v.description.hasPrefix("Unicorn 2."))
        #expect(EngineVersion(major: 2, minor: 0, patch: 1).isSupported == false)
        #expect(
            EmulatorError.engineTooOld(EngineVersion(major: 2, minor: 0, patch: 1)).description.contains(
                "scripts/setup-unicorn"))
    }

    @Test func walkerLeavesAndFaults() throws {
        let mem = GuestMemory()
        var t = try TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 16)
        t.map(va: 0x4000_0000, pa: 0x20_0000, level: 2)
        t.map(va: 0xC000_0000, pa: 0x1_4000_0000, level: 3)
        t.map(va: 0x7000, pa: 0x1234_5000, level: 1)
        t.map(va: 0x1400_0000_0000, pa: 0x1400_0000_0000, level: 2)  // 2 MiB leaf at 20 TiB
        let c = X86Walker.Control(cr0: 0x8000_0011, cr3: t.root.raw, cr4: 0x20, efer: 0x500)
        func tr(_ va: UInt64, _ a: X86Walker.Access = .read) -> Result<X86Walker.Translation, X86Walker.Fault> {
            X86Walker.translate(VirtAddr(va), access: a, control: c) { mem.read64($0) }
        }
        #expect(try tr(0x4000_0123).get().pa == PhysAddr(0x20_0123))
        #expect(try tr(0x4000_0123).get().leafLevel == .pmd)
        #expect(try tr(0xC123_4567).get().pa == PhysAddr(0x1_4123_4567))
        #expect(try tr(0xC123_4567).get().leafSize == ByteCount.gib(1))
        #expect(try tr(0x7ff8).get().pa == PhysAddr(0x1234_5ff8))
        #expect(try tr(0x1400_001f_fff8).get().pa == PhysAddr(0x1400_001f_fff8))
        // Inside the present PMD page of GiB 1 but a missing 2 MiB slot: the pmd entry is missing.
        guard case .failure(let f1) = tr(0x4020_0000) else {
            Issue.record("expected a fault")
            return
        }
        #expect(f1.level == .pmd && f1.reason == .notPresent && f1.index == 1)
        // Nothing in GiB 2: the pud entry is missing.
        guard case .failure(let f2) = tr(0x8000_0000) else {
            Issue.record("expected a fault")
            return
        }
        #expect(f2.level == .pud && f2.index == 2)
        // Non-canonical.
        guard case .failure(let f3) = tr(0x0000_8000_0000_0000) else {
            Issue.record("expected a fault")
            return
        }
        #expect(f3.reason == .nonCanonical)
        // Read-only leaf with CR0.WP set refuses writes, allows them with WP clear.
        t.map(va: 0x20_0000, pa: 0x20_0000, level: 2, flags: 0x1e1)
        let wp = X86Walker.Control(cr0: 0x8001_0011, cr3: t.root.raw, cr4: 0x20, efer: 0x500)
        let r = X86Walker.translate(VirtAddr(0x20_0010), access: .write, control: wp) { mem.read64($0) }
        guard case .failure(let f4) = r else {
            Issue.record("expected a write-protect fault")
            return
        }
        #expect(f4.reason == .writeProtected && f4.level == .pmd)
        #expect(try tr(0x20_0010, .write).get().writable)
        // Reserved bit in a 2 MiB leaf (bit 13).
        t.map(va: 0x60_0000, pa: 0x60_0000 | 0x2000, level: 2)
        guard case .failure(let f5) = tr(0x60_0000) else {
            Issue.record("expected a reserved-bit fault")
            return
        }
        #expect(f5.reason == .reservedBit)
    }
}
