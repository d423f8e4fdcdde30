import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

/// The arm64 rules that follow the running kernel's version and config (issue 14): the seed
/// scenarios' numbers, relocation by version, the DMA limit, free-memblock placement.
@Suite(.serialized) struct Arm64VersionRuleTests {
    func ev(_ r: RunResult) -> [String: String] { r.verdict.evidenceByName }

    /// 4 GiB at 1 GiB, 4 KiB granule: whole-map base pages are 2048 L3 + 4 L2 + L1 + L0 = 2054
    /// table pages under 5.15 with ZONE_DMA and crashkernel=; 6.4 maps it with 1 GiB blocks (2).
    @Test func seed4GiBLinearMapCostByVersion() throws {
        let old = try Runner.run(try fixture("arm64-seed-4g-5.15.yaml"))
        let new = try Runner.run(try fixture("arm64-seed-4g-6.4.yaml"))
        #expect(old.verdict.kind == .landed && new.verdict.kind == .landed)
        #expect(
            ev(old)["first_kernel_linear_map"]
                == "2054 pages (8.0MiB), whole-map base pages; 2 pages (8KiB) with blocks")
        #expect(ev(new)["first_kernel_linear_map"] == "2 pages (8KiB), blocks; 2 pages (8KiB) with blocks")
        #expect(ev(old)["rule.linear_map"]?.hasPrefix("base pages on the WHOLE linear map") == true)
        #expect(ev(new)["rule.linear_map"]?.hasPrefix("blocks: v6.4+ no longer protects") == true)
        #expect(ev(old)["kernel"] == "5.15" && ev(new)["kernel"] == "6.4")
    }

    /// 1 TiB at 2 GiB: 524288 L3 + 1024 L2 + 2 L1 + 1 L0 = 525315 pages (about 2 GiB of tables)
    /// under 5.15, against 3 with 1 GiB blocks under 6.4.
    @Test func seed1TiBLinearMapCostByVersion() throws {
        let old = try Runner.run(try fixture("arm64-seed-1t-5.15.yaml"))
        let new = try Runner.run(try fixture("arm64-seed-1t-6.4.yaml"))
        #expect(old.verdict.kind == .landed && new.verdict.kind == .landed)
        #expect(
            ev(old)["first_kernel_linear_map"]
                == "525315 pages (2.0GiB), whole-map base pages; 3 pages (12KiB) with blocks")
        #expect(ev(new)["first_kernel_linear_map"] == "3 pages (12KiB), blocks; 3 pages (12KiB) with blocks")
    }

    /// The same load under 5.15 (MMU off, no tables) and 6.1 (MMU on, trans_pgd copy of a base-page
    /// linear map): same bytes.
    @Test func relocationByVersion() throws {
        let off = try Runner.run(try fixture("arm64-relocation-5.15.yaml"))
        let on = try Runner.run(try fixture("arm64-relocation-6.1.yaml"))
        #expect(off.verdict.kind == .landed && on.verdict.kind == .landed)
        #expect(ev(off)["relocation"] == "mmu-off" && ev(on)["relocation"] == "mmu-on")
        #expect(ev(off)["sha256"] == ev(on)["sha256"])
        #expect(ev(off)["linear_map_tables"] == nil)
        #expect(ev(on)["linear_map_tables"]?.hasPrefix("2054 pages") == true)
        #expect(ev(on)["linear_map_copy_tables"]?.hasPrefix("2054 pages") == true)
        #expect(off.policy == "mmu-off 4k base-pages" && on.policy == "mmu-on 4k base-pages")
        #expect(ev(off)["rule.relocation"]?.hasPrefix("mmu-off: cpu_soft_restart") == true)
        #expect(ev(on)["rule.relocation"]?.hasPrefix("mmu-on: relocate_kernel copies") == true)
    }

    /// `matrix --kernels 5.15,6.1,6.12`: an arm64 row is labelled with the policy that kernel
    /// resolves, so the relocation and linear-map rules show per version.
    @Test func matrixKernelsLabelArm64RowsByVersion() throws {
        let v = [KernelVersion(5, 15), KernelVersion(6, 1), KernelVersion(6, 12)]
        func labels(_ name: String) -> [String] {
            let files = [(path: TestPaths.repo + "/Fixtures/scenarios/" + name, fromDirectory: false)]
            return MatrixPlanner.jobs(fixtures: files, kernels: v, base: TestPaths.repo).map(\.policy)
        }
        #expect(
            labels("arm64-relocation-5.15.yaml") == [
                "mmu-off 4k base-pages @5.15", "mmu-on 4k base-pages @6.1", "mmu-on 4k base-pages @6.12",
            ])
        // Pinned to MMU-off; ZONE_DMA + crashkernel= forces base pages up to v6.3 only.
        #expect(
            labels("arm64-seed-4g-5.15.yaml") == [
                "mmu-off 4k base-pages @5.15", "mmu-off 4k base-pages @6.1", "mmu-off 4k blocks @6.12",
            ])
    }

    /// A crash image is loaded in place: no MMU-on tables whatever the version, nothing charged
    /// to the crashkernel region.
    @Test func crashImagesRelocateWithTheMMUOff() throws {
        var sc = try fixture("arm64-crash-first-kernel-write.yaml")
        sc.policy = .arm64(Arm64Policy())
        sc.kexec?.inject = []
        guard case .planned(let p) = try Planner.plan(sc) else {
            Issue.record("not planned")
            return
        }
        #expect(p.arm64?.relocation == .mmuOff && p.arm64?.tables.isEmpty == true)
        #expect(p.kimage.extraControlPages.count == 1)  // the zero page only
        #expect(p.segments.map(\.name) == ["kernel", "elfcorehdr", "initrd", "dtb"])
    }

    /// crashk_res only: with a `,high` reservation the low range is never used for the load, and
    /// usable-memory-range lists crashk_res first.
    @Test func crashLoadsUseCrashkResOnly() throws {
        var sc = try fixture("arm64-crash-first-kernel-write.yaml")
        sc.kexec?.inject = []
        let low = AddressRange(first: PhysAddr(0x4800_0000), last: PhysAddr(0x4fff_ffff))!
        let high = AddressRange(first: PhysAddr(0x1_2000_0000), last: PhysAddr(0x1_2fff_ffff))!
        sc.machine.crashkernelRanges = [low, high]
        let segs = try Arm64Planner.plannedSegments(sc)
        #expect(segs.allSatisfy { $0.range.map(high.contains) == true })
        let dtb = try #require(segs.first { $0.role == .dtb })
        let chosen = try #require(try Fdt.decode(dtb.bytes).root.child("chosen"))
        #expect(
            chosen.property("linux,usable-memory-range")?.rangesValue?.map { [$0.0, $0.1] } == [
                [0x1_2000_0000, 0x1000_0000], [0x4800_0000, 0x800_0000],
            ])
        #expect(chosen.property("kaslr-seed")?.u64Value == Dtb.kaslrSeed)
        #expect(chosen.property("rng-seed")?.value.count == 128)
    }

    /// Normal loads walk free memblock: never over memblock.reserved nor the crashkernel region.
    @Test func placementSkipsMemblockReserved() throws {
        var sc = try fixture("arm64-basic.yaml")
        // Reserve the top 64 MiB (a CMA pool): the DTB, top-down, goes below it.
        sc.machine.earlyReservations.ranges = [
            AddressRange(first: PhysAddr(0x1_3c00_0000), last: PhysAddr(0x1_3fff_ffff))!
        ]
        sc.machine.crashkernelRanges = [AddressRange(first: PhysAddr(0x4000_0000), last: PhysAddr(0x4fff_ffff))!]
        let segs = try Arm64Planner.plannedSegments(sc)
        #expect(segs.map { $0.mem.raw } == [0x5000_0000, 0x5080_0000, 0x1_3be0_0000])
    }

    @Test func dmaLimitRules() throws {
        func m(_ first: UInt64, _ last: UInt64) -> Machine {
            Machine(
                arch: .arm64,
                memory: try! MemoryMap([
                    Region(range: AddressRange(first: PhysAddr(first), last: PhysAddr(last))!, type: .usable)
                ]))
        }
        #expect(m(0x4000_0000, 0x1_3fff_ffff).arm64DmaLimit == PhysAddr(0x1_0000_0000))
        #expect(m(0x4000_0000, 0x7fff_ffff).arm64DmaLimit == PhysAddr(0x8000_0000))
        // RAM all above 4 GiB: the DMA zone covers all of it.
        #expect(m(0x80_0000_0000, 0x80_ffff_ffff).arm64DmaLimit == PhysAddr(0x81_0000_0000))
        var noZones = m(0x4000_0000, 0x1_3fff_ffff)
        noZones.config.zoneDma = false
        #expect(noZones.arm64DmaLimit == PhysAddr(1 << 48))
        // A Raspberry Pi 4's dma-ranges reach 1 GiB.
        var rpi = m(0, 0xfbff_ffff)
        rpi.dmaRangesLimit = PhysAddr(0x4000_0000)
        #expect(rpi.arm64DmaLimit == PhysAddr(0x4000_0000))
        // RAM that starts above the dma-ranges reach: U32_MAX.
        var above = m(0x8000_0000, 0x1_7fff_ffff)
        above.dmaRangesLimit = PhysAddr(0x4000_0000)
        #expect(above.arm64DmaLimit == PhysAddr(0x1_0000_0000))
    }

    /// crashkernel= on arm64 reserves below the machine's DMA limit (`config`, `dma_ranges_limit`).
    @Test func fixtureConfigAndReservedDecode() throws {
        let yaml = """
            name: a
            machine:
              arch: arm64
              memory: [{ range: 0x0-0xfbffffff, type: usable }]
              config: { zone_dma: true, rodata_full: false }
              dma_ranges_limit: 0x40000000
              memblock_reserved: [0x3b400000-0x3bffffff]
              cpus: 4
              crashkernel: 64M
            """
        let s = try FixtureDecoder.decode(yaml: yaml, file: "a.yaml", baseDirectory: "")
        #expect(s.machine.config == Arm64KernelConfig(zoneDma: true, rodataFull: false))
        #expect(s.machine.cpus == 4)
        #expect(
            s.machine.memblockReserved == [AddressRange(first: PhysAddr(0x3b40_0000), last: PhysAddr(0x3bff_ffff))!])
        #expect(
            s.machine.crashkernelRanges == [AddressRange(first: PhysAddr(0x3c00_0000), last: PhysAddr(0x3fff_ffff))!])
    }

    @Test func memblockImporterReadsReservations() throws {
        let log = """
            [    0.000000] Reserved memory: created CMA memory pool at 0x00000000f7000000, size 64 MiB
            [    0.000000] cma: Reserved 32 MiB at 0x00000000fbc00000 on node -1
            [    0.000000] memblock_reserve: [0x0000000040210000-0x000000004224ffff] paging_init+0x1c/0x2c
            [    0.000000] Zone ranges:
            [    0.000000]   DMA      [mem 0x0000000040000000-0x00000000ffffffff]
            [    0.000000]   DMA32    empty
            [    0.000000]   Normal   [mem 0x0000000100000000-0x000000013fffffff]
            [    0.000000] Early memory node ranges
            [    0.000000]   node   0: [mem 0x0000000040000000-0x000000013fffffff]
            """
        let m = try BootLog.parse(bytes: Array(log.utf8), format: .memblock, file: "log.txt")
        #expect(
            m.memblockReserved == [
                AddressRange(first: PhysAddr(0xf700_0000), last: PhysAddr(0xfaff_ffff))!,
                AddressRange(first: PhysAddr(0xfbc0_0000), last: PhysAddr(0xfdbf_ffff))!,
                AddressRange(first: PhysAddr(0x4021_0000), last: PhysAddr(0x4224_ffff))!,
            ])
    }
}
