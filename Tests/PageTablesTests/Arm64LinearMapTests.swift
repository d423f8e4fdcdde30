import KexecModel
import PageTables
import Testing

/// RAM [2 GiB, 2 GiB + size): PHYS_OFFSET 2 GiB (1 GiB and 512 MiB aligned), so the linear map is
/// [PAGE_OFFSET, PAGE_OFFSET + size) with VA and PA equally aligned.
func arm64RAM(_ size: UInt64) -> [AddressRange] { [range(2 * GiB, 2 * GiB + size - 1)] }

func arm64Cost(
    _ ram: [AddressRange], _ g: Granule, _ m: Arm64Mappings, protected: [AddressRange] = []
) -> Arm64TableCost {
    Arm64LinearMap.cost(
        ram: ram, protected: protected, granule: g, mappings: m, layout: Arm64Layout(ram: ram, granule: g))
}

/// A bump allocator of granule pages from `start`.
final class Arm64Pages {
    var next: UInt64
    init(_ start: UInt64) { next = start }
    func take(_ g: Granule) -> () throws -> PhysAddr {
        {
            self.next = (self.next + g.size - 1) & ~(g.size - 1)
            defer { self.next += g.size }
            return PhysAddr(self.next)
        }
    }
}

@Suite struct Arm64LinearMapTests {
    @Test func descriptorsAndRegisters() {
        #expect(Arm64Descriptor.kernelPage == 0x0068_0000_0000_0703)
        #expect(Arm64Descriptor.kernelBlock == 0x0068_0000_0000_0701)
        #expect(Arm64Descriptor.kernelROXPage == 0x0040_0000_0000_0783)
        #expect(Arm64Descriptor.table == 0b11)
        #expect(Arm64Descriptor.mair == 0x0000_0004_0044_ffff)
        // T0SZ = T1SZ = 16, WBWA inner-shareable walks, IPS 48 bits; TG0 / TG1 per granule.
        #expect(Arm64LinearMap.tcr(granule: .g4k, t0sz: 16, t1sz: 16) == 0x5_b510_3510)
        #expect(Arm64LinearMap.tcr(granule: .g16k, t0sz: 16, t1sz: 16) == 0x5_7510_b510)
        #expect(Arm64LinearMap.tcr(granule: .g64k, t0sz: 16, t1sz: 16) == 0x5_f510_7510)
        let layout = Arm64Layout(physOffset: PhysAddr(2 * GiB))
        #expect(layout.pageOffset == VirtAddr(0xffff_0000_0000_0000))
        #expect(layout.pageEnd == VirtAddr(0xffff_8000_0000_0000))
        #expect(layout.va(PhysAddr(3 * GiB)) == VirtAddr(0xffff_0000_4000_0000))
        #expect(layout.va(PhysAddr(GiB)) == nil)
        #expect(layout.va(PhysAddr(2 * GiB + 128 * TiB)) == nil)
        // relocate_kernel subtracts phys_offset from a PA to get the linear VA.
        #expect(layout.physToVirtOffset == 0x0001_0000_8000_0000)
        #expect(3 * GiB &- layout.physToVirtOffset == 0xffff_0000_4000_0000)
        // PHYS_OFFSET: the lowest RAM rounded down to 1 GiB (4k, 16k) or 512 MiB (64k).
        let ram = [range(0x8_a000_0000, 0x9_ffff_ffff)]
        #expect(Arm64Layout(ram: ram, granule: .g4k).physOffset == PhysAddr(0x8_8000_0000))
        #expect(Arm64Layout(ram: ram, granule: .g16k).physOffset == PhysAddr(0x8_8000_0000))
        #expect(Arm64Layout(ram: ram, granule: .g64k).physOffset == PhysAddr(0x8_a000_0000))
    }

    /// 1 TiB of RAM. 4k: L0 entries 512 GiB, L1 1 GiB, L2 2 MiB, L3 4 KiB, 512 per table.
    /// 16k: L0 128 TiB (2 used), L1 64 GiB, L2 32 MiB, L3 16 KiB, 2048 per table.
    /// 64k: start at L1 (4 TiB, 64 entries), L2 512 MiB, L3 64 KiB, 8192 per table.
    @Test func oneTiB() {
        let ram = arm64RAM(TiB)
        // 4k blocks: L0 1, L1 1 TiB / 512 GiB = 2 pages of 1 GiB blocks: 3 pages = 12 KiB.
        #expect(arm64Cost(ram, .g4k, .blocks).levels == [1, 2, 0, 0])
        #expect(arm64Cost(ram, .g4k, .blocks).bytes == 12 * 1024)
        // 4k base pages: L3 1 TiB / 2 MiB = 524,288, L2 1 TiB / 1 GiB = 1,024, L1 2, L0 1
        // = 525,315 pages = 2,151,690,240 bytes (≈ 2.004 GiB): RAM / 512.
        let b4 = arm64Cost(ram, .g4k, .basePages)
        #expect(b4.levels == [1, 2, 1024, 524_288])
        #expect(b4.pages == 525_315 && b4.bytes == 2_151_690_240)
        // 16k blocks: L0 1, L1 1, L2 1 TiB / 64 GiB = 16 pages of 32 MiB blocks: 18 × 16 KiB = 288 KiB.
        let k16 = arm64Cost(ram, .g16k, .blocks)
        #expect(k16.levels == [1, 1, 16, 0] && k16.bytes == 288 * 1024)
        // 16k base pages: L3 1 TiB / 32 MiB = 32,768: 32,786 × 16 KiB = 537,165,824 bytes (≈ 512.3 MiB).
        let b16 = arm64Cost(ram, .g16k, .basePages)
        #expect(b16.levels == [1, 1, 16, 32_768] && b16.bytes == 537_165_824)
        // 64k blocks: L1 1, L2 1 (4 TiB per L2 page) of 512 MiB blocks: 2 × 64 KiB = 128 KiB.
        let k64 = arm64Cost(ram, .g64k, .blocks)
        #expect(k64.levels == [0, 1, 1, 0] && k64.bytes == 128 * 1024)
        // 64k base pages: L3 1 TiB / 512 MiB = 2,048: 2,050 × 64 KiB = 134,348,800 bytes (≈ 128.1 MiB).
        let b64 = arm64Cost(ram, .g64k, .basePages)
        #expect(b64.levels == [0, 1, 1, 2048] && b64.bytes == 134_348_800)
    }

    @Test func twentyFourTiB() {
        let ram = arm64RAM(24 * TiB)
        // 4k blocks: L1 24 TiB / 512 GiB = 48 pages: 49 pages = 196 KiB.
        #expect(arm64Cost(ram, .g4k, .blocks).levels == [1, 48, 0, 0])
        #expect(arm64Cost(ram, .g4k, .blocks).bytes == 196 * 1024)
        // 4k base pages: L3 24 TiB / 2 MiB = 12,582,912, L2 24,576, L1 48, L0 1
        // = 12,607,537 pages = 51,640,471,552 bytes (≈ 48.1 GiB).
        let b4 = arm64Cost(ram, .g4k, .basePages)
        #expect(b4.levels == [1, 48, 24_576, 12_582_912])
        #expect(b4.pages == 12_607_537 && b4.bytes == 51_640_471_552)
        // 16k blocks: L2 24 TiB / 64 GiB = 384: 386 × 16 KiB = 6,176 KiB.
        let k16 = arm64Cost(ram, .g16k, .blocks)
        #expect(k16.levels == [1, 1, 384, 0] && k16.bytes == 6176 * 1024)
        // 16k base pages: L3 24 TiB / 32 MiB = 786,432: 786,818 × 16 KiB = 12,891,226,112 bytes (≈ 12 GiB).
        let b16 = arm64Cost(ram, .g16k, .basePages)
        #expect(b16.levels == [1, 1, 384, 786_432] && b16.bytes == 12_891_226_112)
        // 64k blocks: L2 24 TiB / 4 TiB = 6: 7 × 64 KiB = 448 KiB.
        let k64 = arm64Cost(ram, .g64k, .blocks)
        #expect(k64.levels == [0, 1, 6, 0] && k64.bytes == 448 * 1024)
        // 64k base pages: L3 24 TiB / 512 MiB = 49,152: 49,159 × 64 KiB = 3,221,684,224 bytes (≈ 3 GiB).
        let b64 = arm64Cost(ram, .g64k, .basePages)
        #expect(b64.levels == [0, 1, 6, 49_152] && b64.bytes == 3_221_684_224)
    }

    /// A crashkernel region guarded with set_memory_valid(…, 0) must be mapped with base pages, and
    /// it splits the RAM around it: the GiB holding it loses its block.
    @Test func protectedCrashkernelCost() throws {
        let ram = arm64RAM(TiB)
        // 512 MiB at 5 GiB + 2 MiB (2 MiB aligned, as arm64 aligns crashkernel=), inside GiB 5.
        let crash = range(5 * GiB + 2 * MiB, 5 * GiB + 514 * MiB - 1)
        let c = arm64Cost(ram, .g4k, .blocks, protected: [crash])
        // One more L2 page for GiB 5 (2 MiB blocks either side), 512 MiB / 2 MiB = 256 L3 pages:
        // 3 + 1 + 256 = 260 pages = 1,040 KiB instead of 12 KiB.
        #expect(c.levels == [1, 2, 1, 256])
        #expect(c.bytes == 1040 * 1024)
        // ZONE_DMA + crashkernel before 2023: the whole linear map in base pages, ≈ 2 GiB.
        #expect(arm64Cost(ram, .g4k, .basePages, protected: [crash]).pages == 525_315)
        // Built on a small machine: the protected pages are invalid, their neighbours 2 MiB blocks.
        let small = arm64RAM(8 * GiB)
        let layout = Arm64Layout(ram: small, granule: .g4k)
        let t = try Arm64LinearMap.build(
            ram: small, protected: [crash], granule: .g4k, mappings: .blocks, layout: layout,
            allocate: Arm64Pages(0x10_0000).take(.g4k))
        #expect(t.cost.levels == [1, 1, 1, 256])
        let inCrash = layout.va(PhysAddr(5 * GiB + 100 * MiB))!
        #expect(missingLevel(t, inCrash)?.level == "L3")
        let below = layout.va(PhysAddr(5 * GiB + 0x1234))!
        #expect(try t.translate(below).get() == (PhysAddr(5 * GiB + 0x1234), 2 * MiB, 2))
        let above = layout.va(PhysAddr(5 * GiB + 514 * MiB))!
        #expect(try t.translate(above).get().level == 2)
        #expect(try t.translate(layout.va(PhysAddr(7 * GiB))!).get().level == 1)
    }

    /// The MMU-on relocation's tables. KEXEC-FACTS quotes "≈ relocated size / 512 with 4 KiB pages
    /// (64 MiB → 128 KiB; 512 MiB → 1 MiB)": that is base-page PTEs for only the relocated bytes
    /// (8 bytes per 4 KiB page), not trans_pgd_create_copy, whose cost is the linear map's whatever
    /// is relocated.
    @Test func relocationTableOverhead() {
        let ram = arm64RAM(TiB)
        let layout = Arm64Layout(ram: ram, granule: .g4k)
        func reloc(_ v: Arm64LinearMap.RelocationTables, _ payload: [AddressRange], _ m: Arm64Mappings = .blocks)
            -> Arm64TableCost
        {
            Arm64LinearMap.relocationCost(v, ram: ram, relocated: payload, granule: .g4k, mappings: m, layout: layout)
        }
        let p64 = [range(4 * GiB, 4 * GiB + 64 * MiB - 1)]
        let p512 = [range(4 * GiB, 4 * GiB + 512 * MiB - 1)]
        // Relocated only, 64 MiB: 64 MiB / 2 MiB = 32 L3 pages (128 KiB) + L2, L1, L0 = 35 pages = 140 KiB.
        #expect(reloc(.relocatedOnly, p64).levels == [1, 1, 1, 32])
        #expect(reloc(.relocatedOnly, p64).bytes == 140 * 1024)
        // 512 MiB: 256 L3 pages (1 MiB) + 3 = 259 pages = 1,036 KiB.
        #expect(reloc(.relocatedOnly, p512).levels == [1, 1, 1, 256])
        #expect(reloc(.relocatedOnly, p512).bytes == 1036 * 1024)
        // With the 64 MiB of source pages mapped too (contiguous, in another GiB): 32 more L3 pages
        // and their L2 page: 68 pages = 272 KiB.
        let withSources = p64 + [range(9 * GiB, 9 * GiB + 64 * MiB - 1)]
        #expect(reloc(.relocatedOnly, withSources).levels == [1, 1, 2, 64])
        // The linear-map copy does not depend on the payload: 12 KiB with blocks, ≈ 2 GiB with base pages.
        for p in [p64, p512] {
            #expect(reloc(.linearMapCopy, p).bytes == 12 * 1024)
            #expect(reloc(.linearMapCopy, p, .basePages).bytes == 2_151_690_240)
        }
        // Other granules, relocated only: 64 MiB is 2 L3 pages of 16k (+3) = 80 KiB; 1 L3 page of 64k (+2) = 192 KiB.
        let c16 = Arm64LinearMap.relocationCost(
            .relocatedOnly, ram: ram, relocated: p64, granule: .g16k, mappings: .blocks,
            layout: Arm64Layout(ram: ram, granule: .g16k))
        #expect(c16.levels == [1, 1, 1, 2] && c16.bytes == 80 * 1024)
        let c64 = Arm64LinearMap.relocationCost(
            .relocatedOnly, ram: ram, relocated: p64, granule: .g64k, mappings: .blocks,
            layout: Arm64Layout(ram: ram, granule: .g64k))
        #expect(c64.levels == [0, 1, 1, 1] && c64.bytes == 192 * 1024)
    }

    /// The estimate equals what build allocates, for every granule and mapping, with awkward ranges.
    @Test(arguments: Granule.allCases)
    func costMatchesBuild(granule: Granule) throws {
        let cases: [(ram: [AddressRange], protected: [AddressRange])] = [
            (arm64RAM(6 * GiB), []),
            (arm64RAM(6 * GiB), [range(3 * GiB + 0x1000, 3 * GiB + 33 * MiB)]),
            // Holes, unaligned ends, RAM touching at a GiB boundary, a region below PHYS_OFFSET's GiB.
            (
                [
                    range(0x8000_0000, 0x8fff_ffff), range(0x9000_0000, 0xbfff_f7ff),
                    range(0x1_0000_1000, 0x1_3fff_ffff),
                    range(0x2_0000_0000 - 0x20_0000, 0x2_4000_0fff),
                ], [range(0x1_1000_0000, 0x1_1fff_ffff), range(0xa000_0000, 0xa000_0fff)]
            ),
            ([range(0x40_0000_0000, 0x40_0000_0000 + 3 * GiB - 1)], []),
        ]
        for (i, c) in cases.enumerated() {
            for m in Arm64Mappings.allCases {
                let layout = Arm64Layout(ram: c.ram, granule: granule)
                let built = try Arm64LinearMap.build(
                    ram: c.ram, protected: c.protected, granule: granule, mappings: m, layout: layout,
                    allocate: Arm64Pages(0x1000_0000).take(granule))
                let estimate = Arm64LinearMap.cost(
                    ram: c.ram, protected: c.protected, granule: granule, mappings: m, layout: layout)
                #expect(estimate == built.cost, "case \(i) \(granule) \(m)")
                #expect(built.pages.count == built.cost.pages)
                // Every RAM page outside the protected ranges translates to itself through the linear map.
                for r in c.ram {
                    for pa in [r.first.raw, r.last.raw & ~7, (r.first.raw + r.last.raw) / 2 & ~7] {
                        let va = layout.va(PhysAddr(pa))!
                        let protected = c.protected.contains {
                            $0.alignedOut(ByteCount(granule.size)).contains(PhysAddr(pa))
                        }
                        switch built.translate(va) {
                        case .success(let t):
                            #expect(!protected && t.pa == PhysAddr(pa), "case \(i) \(granule) \(m) \(hex(pa))")
                        case .failure(let f):
                            #expect(protected && f.level == "L3", "case \(i) \(granule) \(m) \(hex(pa)): \(f)")
                        }
                    }
                }
            }
        }
    }

    @Test func buildShapeAndEncoding() throws {
        let ram = arm64RAM(3 * GiB + 4 * MiB)
        let layout = Arm64Layout(ram: ram, granule: .g4k)
        let t = try Arm64LinearMap.build(
            ram: ram, granule: .g4k, mappings: .blocks, layout: layout, allocate: Arm64Pages(0x10_0000).take(.g4k))
        // L0, L1 (3 × 1 GiB blocks), one L2 page for the last 4 MiB (2 × 2 MiB blocks).
        #expect(t.cost.levels == [1, 1, 1, 0])
        #expect(t.root == PhysAddr(0x10_0000) && t.ttbr == 1 && t.txsz == 16)
        #expect(t.levelOf[PhysAddr(0x10_1000)] == 1 && t.levelOf[PhysAddr(0x10_2000)] == 2)
        let root = t.encodedPage(t.root)
        #expect(root.count == 4096)
        // L0[0] (PAGE_OFFSET's bits 47:39 are 0) -> L1 page at 0x10_1000, a table descriptor.
        #expect(Array(root[0..<8]) == [0x03, 0x10, 0x10, 0, 0, 0, 0, 0])
        let l1 = t.encodedPage(PhysAddr(0x10_1000))
        // L1[0]: 1 GiB block at PA 2 GiB: 0x0068_0000_8000_0701.
        #expect(Array(l1[0..<8]) == [0x01, 0x07, 0x00, 0x80, 0x00, 0x00, 0x68, 0x00])
        #expect(try t.translate(VirtAddr(0xffff_0000_c000_1238)).get() == (PhysAddr(0x1_4000_1238), 2 * MiB, 2))
        #expect(missingLevel(t, VirtAddr(0xffff_0000_c040_0000))?.level == "L2")
        #expect(missingLevel(t, VirtAddr(0xffff_0001_0000_0000))?.level == "L1")
        #expect(missingLevel(t, VirtAddr(0x1000))?.level == "out-of-range")
        #expect(t.encodedPage(PhysAddr(0x9000_0000)) == [UInt8](repeating: 0, count: 4096))
        // 64k pages are 64 KiB with 8192 entries.
        let t64 = try Arm64LinearMap.build(
            ram: ram, granule: .g64k, mappings: .basePages, layout: Arm64Layout(ram: ram, granule: .g64k),
            allocate: Arm64Pages(0x100_0000).take(.g64k))
        #expect(t64.encodedPage(t64.root).count == 65536)
        #expect(t64.cost.levels == [0, 1, 1, 7])  // (3 GiB + 4 MiB) / 512 MiB → 7 L3 pages
    }

    @Test func copyKeepsShapeAndMapping() throws {
        let ram = arm64RAM(5 * GiB)
        let crash = range(3 * GiB, 3 * GiB + 64 * MiB - 1)
        for g in Granule.allCases {
            let layout = Arm64Layout(ram: ram, granule: g)
            let pages = Arm64Pages(0x10_0000)
            let first = try Arm64LinearMap.build(
                ram: ram, protected: [crash], granule: g, mappings: .blocks, layout: layout, allocate: pages.take(g))
            let copy = try Arm64LinearMap.copy(first, allocate: pages.take(g))
            #expect(copy.cost == first.cost, "\(g)")
            #expect(Set(copy.pages.keys).isDisjoint(with: first.pages.keys))
            for pa: UInt64 in [2 * GiB, 3 * GiB - 8, 3 * GiB + 64 * MiB, 7 * GiB - 8] {
                let va = layout.va(PhysAddr(pa))!
                #expect(try copy.translate(va).get().pa == PhysAddr(pa), "\(g) \(hex(pa))")
            }
            // The protected pages' invalid entries are not copied.
            #expect(missingLevel(copy, layout.va(PhysAddr(3 * GiB + MiB))!)?.level == "L3")
        }
    }

    @Test func identityMapPage() throws {
        for (g, levels) in [(Granule.g4k, [1, 1, 1, 1]), (.g16k, [1, 1, 1, 1]), (.g64k, [0, 1, 1, 1])] {
            let t = try Arm64LinearMap.identityMapPage(
                PhysAddr(0x41_0000_0123), granule: g, allocate: Arm64Pages(0x10_0000).take(g))
            #expect(t.cost.levels == levels, "\(g)")
            #expect(t.ttbr == 0 && t.txsz == 16)
            #expect(try t.translate(VirtAddr(0x41_0000_0ff8)).get().pa == PhysAddr(0x41_0000_0ff8))
            #expect(missingLevel(t, VirtAddr(0x41_0000_0000 + g.size))?.level == "L3")
            // PAGE_KERNEL_ROX: read-only, executable at EL1.
            let leafTable = t.levelOf.first { $0.value == 3 }!.key
            #expect(t.pages[leafTable]!.contains { $0 == 0x41_0000_0000 | Arm64Descriptor.kernelROXPage })
        }
    }

    @Test func unreachableRAMIsReported() throws {
        // PHYS_OFFSET 4 GiB: RAM below it and beyond 4 GiB + 128 TiB is cut.
        let layout = Arm64Layout(physOffset: PhysAddr(4 * GiB))
        let ram = [range(3 * GiB, 5 * GiB - 1), range(4 * GiB + 128 * TiB - GiB, 4 * GiB + 128 * TiB + GiB - 1)]
        let t = try Arm64LinearMap.build(
            ram: ram, granule: .g4k, mappings: .blocks, layout: layout, allocate: Arm64Pages(0x10_0000).take(.g4k))
        #expect(
            t.unmappable == [range(3 * GiB, 4 * GiB - 1), range(4 * GiB + 128 * TiB, 4 * GiB + 128 * TiB + GiB - 1)])
        #expect(try t.translate(VirtAddr(0xffff_7fff_ffff_fff8)).get().pa == PhysAddr(4 * GiB + 128 * TiB - 8))
    }
}

func missingLevel(_ t: Arm64Tables, _ va: VirtAddr) -> MissingLevel? {
    if case .failure(let m) = t.translate(va) { return m }
    return nil
}
