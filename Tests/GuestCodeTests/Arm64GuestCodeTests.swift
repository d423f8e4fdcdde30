import Testing

@testable import GuestCode

/// The little-endian instruction word at `offset`.
private func word(_ blob: GuestBlob, _ offset: UInt64) -> UInt32 {
    let o = Int(offset)
    return (0..<4).reduce(UInt32(0)) { $0 | UInt32(blob.bytes[o + $1]) << (8 * UInt32($1)) }
}

@Suite struct Arm64GuestCodeTests {
    @Test func relocateKernelLayout() {
        let blob = Arm64GuestCode.relocateKernel
        #expect(UInt64(blob.bytes.count) <= Arm64GuestCode.controlCodeMaxSize)
        #expect(blob.bytes.count % 4 == 0 && blob.bssSize == 0)
        #expect(Arm64GuestCode.RelocateKernel.arm64RelocateNewKernel == 0)
        #expect(Arm64GuestCode.RelocateKernel.arm64RelocateNewKernelEnd == UInt64(blob.bytes.count))
        let on = Arm64GuestCode.RelocateKernel.arm64RelocateNewKernelMmuOn
        let off = Arm64GuestCode.RelocateKernel.arm64RelocateMmuOff
        #expect(on > 0 && on < off && off < UInt64(blob.bytes.count))
        // Both entries start by saving the DTB / entry: mov x18, x2 and mov x28, x1.
        #expect(word(blob, 0) == 0xaa02_03f2)
        #expect(word(blob, on) == 0xaa01_03fc)
        // The MMU-off point follows msr sctlr_el1, x12; isb.
        #expect(word(blob, off - 8) == 0xd518_100c)
        #expect(word(blob, off - 4) == 0xd503_3fdf)
        // Each routine ends in br: x17 (MMU off) and x28 (MMU on).
        #expect(word(blob, on - 4) == 0xd61f_0220)
        #expect(word(blob, UInt64(blob.bytes.count) - 4) == 0xd61f_0380)
        // The cache maintenance the kernel does: dc ivac (MMU off), dc civac (MMU on), ic iallu.
        let words = stride(from: 0, to: blob.bytes.count, by: 4).map { word(blob, UInt64($0)) }
        #expect(words.contains(0xd508_7620))  // dc ivac, x0
        #expect(words.contains(0xd50b_7e20))  // dc civac, x0
        #expect(words.filter { $0 == 0xd508_751f }.count == 2)  // ic iallu
        #expect(words.contains(0xd508_871f))  // tlbi vmalle1
    }

    @Test func purgatoryLayout() {
        let blob = Arm64GuestCode.purgatory
        let size = UInt64(blob.bytes.count)
        for name in [
            "purgatory_start", "purgatory_main", "sha256_mismatch_spin", "purgatory_data", "purgatory_stack_top",
        ] {
            #expect(blob.symbols[name] != nil, "missing \(name)")
        }
        let data = Arm64GuestCode.Purgatory.purgatoryData
        #expect(data % 8 == 0)
        #expect(data + Arm64GuestCode.purgatoryDataSize <= size)
        #expect(blob.bssSize >= 4096)
        let top = Arm64GuestCode.Purgatory.purgatoryStackTop
        #expect(top % 16 == 0)
        #expect(top >= size + 4096 && top <= blob.memorySize)
        // The mismatch spin is a branch-to-self (b .).
        #expect(word(blob, Arm64GuestCode.Purgatory.sha256MismatchSpin) == 0x1400_0000)
        // adr x19, purgatory_stack_top; mov sp, x19 open the entry.
        let start = Arm64GuestCode.Purgatory.purgatoryStart
        #expect(word(blob, start) & 0x9f00_001f == 0x1000_0013)
        #expect(word(blob, start + 4) == 0x9100_027f)
        #expect(Arm64GuestCode.PurgatoryDataLayout.digest + 32 == Arm64GuestCode.purgatoryDataSize)
    }

    @Test func purgatoryDataStartsZeroed() {
        let blob = Arm64GuestCode.purgatory
        let data = Int(Arm64GuestCode.Purgatory.purgatoryData)
        #expect(blob.bytes[data..<data + Int(Arm64GuestCode.purgatoryDataSize)].allSatisfy { $0 == 0 })
    }

    @Test func probes() {
        let blob = Arm64GuestCode.probe
        #expect(Arm64GuestCode.Probe.storeProbe == 0)
        #expect(word(blob, 0) == 0xf900_0001)  // str x1, [x0]
        #expect(Arm64GuestCode.Probe.storeProbeDone == 4)
        #expect(word(blob, 4) == 0x1400_0000)  // b .
        let touch = Arm64GuestCode.Probe.touchProbe
        let done = Arm64GuestCode.Probe.touchProbeDone
        #expect(touch < done && word(blob, done) == 0x1400_0000)
        #expect(Arm64GuestCode.Probe.probeEnd == UInt64(blob.bytes.count))
    }
}
