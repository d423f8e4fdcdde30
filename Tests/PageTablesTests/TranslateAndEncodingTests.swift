import KexecModel
import PageTables
import Testing

@Suite struct TranslateTests {
    @Test func insideATwoMiBLeaf() throws {
        let t = try build(ramRequests(try fourGiBMachine()), .ram2m)
        #expect(translated(t, 0x1234_5678)! == (0x1234_5678, .size2M))
        #expect(translated(t, 0x1_7fff_ffff)! == (0x1_7fff_ffff, .size2M))
        // The ACPI MiB was asked for, so its whole 2 MiB is mapped.
        #expect(translated(t, 0x801f_ffff)! == (0x801f_ffff, .size2M))
    }

    @Test func missingLevels() throws {
        let t = try build(ramRequests(try fourGiBMachine()), .ram2m)
        let pud = PhysAddr(0x100_1000)
        // GiB 2 has a pmd page (ACPI) whose second entry is empty.
        #expect(missing(t, 0x8020_0000) == MissingLevel(level: "pmd", index: 1, table: PhysAddr(0x100_6000)))
        // GiB 3 has nothing: the pud entry is missing.
        #expect(missing(t, 0xc000_0000) == MissingLevel(level: "pud", index: 3, table: pud))
        // 1 TiB: pgd entry 2 is missing.
        #expect(missing(t, TiB) == MissingLevel(level: "pgd", index: 2, table: t.root))
        // Not canonical under 4-level paging.
        #expect(missing(t, 0x8000_0000_0000)?.level == "non-canonical")
        #expect(missing(t, 0xffff_8000_0000_0000) == MissingLevel(level: "pgd", index: 256, table: t.root))
    }

    @Test func leafAtTwentyTiB() throws {
        let at = 20 * TiB
        let t = try build([request(at, at + 0xfff)], .ram2m)
        #expect(t.leaves == [Leaf(va: VirtAddr(at), pa: PhysAddr(at), size: .size2M, level: "pmd")])
        #expect(translated(t, at)! == (at, .size2M))
        #expect(translated(t, at + 0x1f_ffff)! == (at + 0x1f_ffff, .size2M))
        #expect(missing(t, at + 2 * MiB)?.level == "pmd")
        // 20 TiB is pgd entry 40 (512 GiB each), pud entry 0 of it.
        #expect(t.pages[t.root]![40] == 0x100_1000 | 0x63)
        let five = try build([request(at, at + 0xfff)], .ram1g, levels: 5)
        #expect(translated(five, at + 0x3fff_ffff)! == (at + 0x3fff_ffff, .size1G))
    }

    @Test func leavesOverlappingARangeSkipTheRest() throws {
        let t = try build(ramRequests(try fourGiBMachine()), .ram2m)
        let hits = t.leaves(overlapping: VirtAddr(0x7fff_0000), VirtAddr(0x8000_0000))
        #expect(hits.map(\.va.raw) == [0x7fe0_0000, 0x8000_0000])
    }
}

@Suite struct EncodingTests {
    @Test func leafAndTableEntryBytes() throws {
        let t = try build(ramRequests(try fourGiBMachine()), .ram2m)
        // pmd page for GiB 0, entry 1: 0x200000 | 0x1e3.
        let pmd = t.encodedPage(PhysAddr(0x100_2000))
        #expect(pmd.count == 4096)
        #expect(Array(pmd[8..<16]) == [0xe3, 0x01, 0x20, 0, 0, 0, 0, 0])
        // pmd page for GiB 5 (allocated fourth), entry 511: 0x17fe00000 | 0x1e3.
        #expect(Array(t.encodedPage(PhysAddr(0x100_5000))[4088..<4096]) == [0xe3, 0x01, 0xe0, 0x7f, 0x01, 0, 0, 0])
        // pgd entry 0 -> the pud page, table flags 0x63.
        #expect(Array(t.encodedPage(t.root)[0..<8]) == [0x63, 0x10, 0x00, 0x01, 0, 0, 0, 0])
        #expect(t.encodedPage(t.root)[8..<4096].allSatisfy { $0 == 0 })
        // A page not in the tables reads as zeros.
        #expect(t.encodedPage(PhysAddr(0x9000_0000)) == [UInt8](repeating: 0, count: 4096))
    }

    @Test func gigabyteLeafBytes() throws {
        let t = try build([request(0, 2 * GiB - 1)], .ram1g)
        let pud = t.encodedPage(PhysAddr(0x100_1000))
        #expect(Array(pud[8..<16]) == [0xe3, 0x01, 0x00, 0x40, 0, 0, 0, 0])
        #expect(t.pages[PhysAddr(0x100_1000)]![1] == X86PTE.largeLeafFlags | GiB)
        #expect(X86PTE.largeLeafFlags == 0x1e3)
        #expect(X86PTE.tableFlags == 0x63)
        // A leaf high up keeps all its address bits (12..51).
        let high = try build([request(0xf_ffff_c000_0000, 0xf_ffff_c000_0fff)], .ram1g, levels: 5)
        let leaf = high.leaves[0]
        let bytes = high.encodedPage(high.levelOf.first { $0.value == "pud" }!.key)
        #expect(Array(bytes[511 * 8..<512 * 8]) == [0xe3, 0x01, 0x00, 0xc0, 0xff, 0xff, 0x0f, 0x00])
        #expect(leaf.pa.raw == 0xf_ffff_c000_0000)
    }
}
