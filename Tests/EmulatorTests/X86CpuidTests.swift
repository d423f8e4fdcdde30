import Emulator
import KexecModel
import Testing

/// CPUID from a CPU description: the guest's own CPUID instruction, answered by the hook where the
/// description differs from Unicorn's qemu64, by the engine elsewhere.
@Suite struct X86CpuidTests {
    let codeVA: UInt64 = 0xffff_ffff_8040_0000
    let codePA: UInt64 = 0x20_0000

    /// Runs one CPUID (0F A2) with EAX = `leaf`, ECX = 0; returns EAX, EBX, ECX, EDX.
    func cpuid(_ leaf: UInt32, model: X86CpuModel?) throws -> [UInt32] {
        let mem = GuestMemory()
        try mem.add(start: PhysAddr(codePA), size: .kib(4), label: "code")
        #expect(mem.write(PhysAddr(codePA), [0x0f, 0xa2, 0x90, 0x90]))
        var t = try TinyTables(mem: mem, pool: PhysAddr(0x10_0000), poolPages: 8)
        t.map(va: codeVA, pa: codePA, level: 1)
        let e = try X86Engine(memory: mem)
        e.enterLongMode(cr3: t.root, fiveLevel: false)
        if let model { try e.attachCpuid(X86Cpuid(model: model)) }
        e.write(.rax, UInt64(leaf))
        e.write(.rcx, 0)
        let stop = e.run(from: VirtAddr(codeVA), until: VirtAddr(codeVA + 2), budget: 0, timeoutMicros: 5_000_000)
        #expect(stop == .reached(pc: VirtAddr(codeVA + 2)), "\(stop)")
        return [e.read(.rax), e.read(.rbx), e.read(.rcx), e.read(.rdx)].map { UInt32(truncatingIfNeeded: $0) }
    }

    @Test func sevCapableAmdReportsLeaf8000001F() throws {
        let amd = X86CpuModel(vendor: .amd, sev: true)
        // "Auth" "enti" "cAMD" in EBX, EDX, ECX.
        #expect(try cpuid(0, model: amd) == [0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65])
        #expect(try cpuid(0x8000_0000, model: amd)[0] == 0x8000_001f)
        #expect(try cpuid(0x8000_001f, model: amd) == [0b11, 47 | 1 << 6, 509, 1])
        // Leaves the description leaves alone are the engine's (leaf 1: family/model/stepping).
        #expect(try cpuid(1, model: amd) == cpuid(1, model: nil))
    }

    @Test func intelAndTheEngineStopAt80000008() throws {
        let intel = X86CpuModel(vendor: .intel)
        // "Genu" "ineI" "ntel".
        #expect(try cpuid(0, model: intel) == [0xd, 0x756e_6547, 0x6c65_746e, 0x4965_6e69])
        #expect(try cpuid(0x8000_0000, model: intel) == [0x8000_0008, 0, 0, 0])
        #expect(try cpuid(0x8000_0000, model: nil) == [0x8000_0008, 0x756e_6547, 0x6c65_746e, 0x4965_6e69])
        #expect(
            try cpuid(0x8000_0000, model: X86CpuModel(vendor: .amd)) == [
                0x8000_0008, 0x6874_7541, 0x444d_4163, 0x6974_6e65,
            ])
        #expect(try cpuid(0, model: nil) == cpuid(0, model: intel))
    }
}
