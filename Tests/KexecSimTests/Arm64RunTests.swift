import KexecModel
import KexecSim
import Testing

/// arm64 through the emulator: MMU off and on land the same bytes; faults and stamps are named.
@Suite(.serialized) struct Arm64RunTests {
    func ev(_ r: RunResult) -> [String: String] { Dictionary(uniqueKeysWithValues: r.verdict.evidence) }

    @Test func mmuOffAndOnLandTheSameBytes() throws {
        let off = try Runner.run(try fixture("arm64-basic.yaml"))
        let on = try Runner.run(try fixture("arm64-mmu-on.yaml"))
        #expect(off.verdict.kind == .landed && on.verdict.kind == .landed)
        #expect(ev(off)["sha256"] == ev(on)["sha256"])
        #expect(ev(off)["segments"] == ev(on)["segments"])
        #expect(ev(on)["relocation"] == "mmu-on" && ev(off)["relocation"] == "mmu-off")
        #expect(ev(on)["x1_x2_x3"] == "0 0 0")
        // The linear map of 4 GiB with 4 KiB blocks: a level-0 table, one level-1 table (1 GiB blocks).
        #expect(ev(on)["linear_map_tables"]?.hasPrefix("2 pages") == true)
        #expect(ev(off)["linear_map_tables"] == nil)
        // Instruction counts of both relocations: the MMU-on one adds the TTBR1 switch, the
        // clean to PoC and turning the MMU off, a few thousand instructions over 2.6 million.
        func count(_ r: RunResult) -> Int? {
            ev(r)["relocation_instructions"]?.split(separator: " ").first.flatMap { Int($0) }
        }
        let nOff = try #require(count(off))
        let nOn = try #require(count(on))
        #expect(nOff > 2_000_000 && nOn > nOff && nOn - nOff < 100_000)
    }

    @Test func stampedCrashKernelIsNamed() throws {
        let r = try Runner.run(try fixture("arm64-crash-stamped.yaml"))
        #expect(r.verdict.kind == .hang)
        #expect(ev(r)["stamped_segment"] == "kernel")
        #expect(ev(r)["first_differing_address"] == "0xefc04242")
    }

    @Test func protectionBlocksTheStampAndCostsBasePages() throws {
        let r = try Runner.run(try fixture("arm64-crash-protected.yaml"))
        #expect(r.verdict.kind == .landed)
        // 4 GiB at 1 GiB with 4k blocks: L0 + L1 = 2 pages. Unmapping 256 MiB at 0xe0000000 splits
        // GiB 3 into 2 MiB blocks (one L2 page) and the 128 2 MiB chunks of the region into base
        // pages (128 L3 pages): 131.
        #expect(
            ev(r)["crashkernel_protection"]
                == "unmapped: the first kernel's linear map costs 131 pages (524KiB) instead of 2 (8KiB); stamps into the region cannot happen"
        )
        #expect(ev(r)["stamps_blocked"] == "1")
    }

    @Test func destinationOutsideTheLinearMapCopyFaults() throws {
        let r = try Runner.run(try fixture("arm64-outside-linear-map.yaml"))
        #expect(r.verdict.kind == .pageFault)
        #expect(ev(r)["physical"] == "0x100000000")
        #expect(ev(r)["level"] == "L1")
        #expect(ev(r)["routine"]?.hasPrefix("relocate_kernel") == true)
    }
}
