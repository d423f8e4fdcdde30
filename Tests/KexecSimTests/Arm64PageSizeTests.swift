import KexecModel
import KexecSim
import Kimage
import Testing

/// PAGE_SIZE = the granule on arm64 (issue 14): placement, the sanity checks, every kimage page
/// (kernel/kexec_core.c, kexec_file.c) and the relocation routine's page copy (x6 = PAGE_SIZE,
/// arch/arm64/kernel/relocate_kernel.S), read in 6.12.117, follow it on 16K and 64K kernels.
@Suite(.serialized) struct Arm64PageSizeTests {
    func planned(_ sc: Scenario) throws -> Plan? {
        guard case .planned(let p) = try Planner.plan(sc) else { return nil }
        return p
    }

    func addresses(_ pages: [PhysAddr]) -> [UInt64] { pages.map(\.raw) }

    /// 16K: every kimage page 16 KiB apart, one list page of 2048 entries, 16 KiB table pages
    /// straight from the kimage allocator; the run copies 16 KiB per IND_SOURCE and lands.
    @Test func sixteenKiBScenarioPlansAndRunsInSixteenKiBPages() throws {
        let sc = try fixture("arm64-mmu-on-16k.yaml")
        let p = try #require(try planned(sc))
        let k = p.kimage
        #expect(k.pageSize == 16384 && p.arm64?.pageSize == .kib(16))
        #expect(
            p.segments.map { "\($0.name) \($0.mem) \($0.memsz)" } == [
                "kernel 0x40000000 4MiB", "initrd 0x40400000 1MiB", "dtb 0x13fe00000 16KiB",
            ])
        #expect(k.controlPage == PhysAddr(0x4050_0000) && k.swapPage == PhysAddr(0x4050_4000))
        #expect(k.head == 0x4050_8000 | Ind.indirection)
        #expect(k.indirectionPages.map(\.pa) == [PhysAddr(0x4050_8000)])
        #expect(k.indirectionPages[0].entries.count == 2048)
        // 4 MiB + 1 MiB + 16 KiB in 16 KiB pages; the DTB's source is the next free page.
        #expect(k.sourcePages.count == 256 + 64 + 1)
        #expect(k.sourcePages.filter { $0.source != $0.destination }.map(\.source) == [PhysAddr(0x4050_c000)])
        #expect(k.listEntries.count == 1 + 3 + 321 + 1)
        // The zero page, then linear map (L1, L2: 47-bit VAs), its copy, and the idmap (4 levels).
        #expect(
            addresses(k.extraControlPages)
                == (0..<9).map { 0x4051_0000 + UInt64($0) * 0x4000 })
        #expect(
            p.arm64?.tables.map { addresses(Array($0.tables.pages.keys).sorted()) } == [
                [0x4051_4000, 0x4051_8000], [0x4051_c000, 0x4052_0000],
                [0x4052_4000, 0x4052_8000, 0x4052_c000, 0x4053_0000],
            ])
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed)
        #expect(
            r.verdict.evidenceByName["rule.page_size"]?.hasPrefix("PAGE_SIZE = the 16k granule (16384 bytes)") == true)
    }

    /// 64K: the same load in 64 KiB pages: 81 sources, one list page of 8192 entries.
    @Test func sixtyFourKiBScenarioPlansAndRunsInSixtyFourKiBPages() throws {
        let sc = try fixture("arm64-mmu-on-64k.yaml")
        let p = try #require(try planned(sc))
        let k = p.kimage
        #expect(k.pageSize == 65536)
        #expect(p.segments.map(\.memsz) == [.mib(4), .mib(1), .kib(64)])
        #expect(k.controlPage == PhysAddr(0x4050_0000) && k.swapPage == PhysAddr(0x4051_0000))
        #expect(k.indirectionPages.map(\.pa) == [PhysAddr(0x4052_0000)])
        #expect(k.indirectionPages[0].entries.count == 8192)
        #expect(k.sourcePages.count == 64 + 16 + 1)
        #expect(k.sourcePages.filter { $0.source != $0.destination }.map(\.source) == [PhysAddr(0x4053_0000)])
        #expect(addresses(k.extraControlPages) == (0..<8).map { 0x4054_0000 + UInt64($0) * 0x1_0000 })
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed)
        #expect(r.verdict.evidenceByName["idmap_tables"] == "3 pages (192KiB), 64k base-pages")
    }

    /// kexec_load's sanity check in PAGE_SIZE units: a 4 KiB aligned segment is refused on a 16K
    /// kernel; the half-of-RAM limit counts 64 KiB pages on a 64K kernel.
    @Test func sanityChecksCountPageSizeUnits() throws {
        func load(_ granule: String, _ segments: String) throws -> PlanOutcome {
            let yaml = """
                name: page size
                machine:
                  arch: arm64
                  memory: [{ range: 0x40000000-0x13fffffff, type: usable }]
                kexec:
                  syscall: kexec_load
                  segments:
                \(segments)
                policy: { relocation: mmu-on, linear_map: { granule: \(granule), mappings: blocks } }
                """
            return try Planner.plan(try FixtureDecoder.decode(yaml: yaml, file: "p.yaml", baseDirectory: ""))
        }
        let misaligned =
            "    - { name: kernel, mem: 0x80000000, memsz: 2MiB }\n"
            + "    - { name: dtb, mem: 0x80201000, memsz: 4KiB }"
        guard case .rejected(let r, _) = try load("16k", misaligned) else {
            Issue.record("a 4 KiB aligned segment planned on a 16K kernel")
            return
        }
        #expect(r.errno == .EADDRNOTAVAIL && r.check == "sanity_check_segment_list")
        #expect(r.detail == "dtb (p.yaml:9): mem 0x80201000 or end 0x80202000 is not aligned to PAGE_SIZE 16KiB")
        if case .rejected = try load("4k", misaligned) { Issue.record("4 KiB pages refused an aligned segment") }
        guard case .rejected(let half, _) = try load("64k", "    - { name: kernel, mem: 0x40000000, memsz: 2112MiB }")
        else {
            Issue.record("more than half of RAM planned")
            return
        }
        #expect(half.detail == "kernel (p.yaml:8): 33792 pages is more than half of RAM (32768 pages)")
    }
}
