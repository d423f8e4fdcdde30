import KexecModel
import PageTables
import Testing

@Suite struct BuildTests {
    // The 4 GiB machine asks for [0, 2 GiB) (pfn_mapped[0]: the first MiB merged with the RAM above),
    // [4 GiB, 6 GiB) and the ACPI region [2 GiB, 2 GiB + 1 MiB).
    // GiBs touched: 0, 1, 2, 4, 5. All below 512 GiB, so one pgd entry, one pud page.

    @Test func fourGiBUnderRam2m() throws {
        let t = try build(ramRequests(try fourGiBMachine()), .ram2m)
        // pgd 1 + pud 1 + one pmd page per GiB touched (0, 1, 2, 4, 5) = 7 pages.
        #expect(
            t.cost == TableCost(policy: "ram-2m", pgd: 1, p4d: 0, pud: 1, pmd: 5, pte: 0, transition: 0))
        #expect(t.cost.pages == 7)
        #expect(t.cost.bytes == 7 * 4096)
        #expect(t.effectiveLeafRule == "2m")
        // 512 leaves in each of GiBs 0, 1, 4, 5 and one 2 MiB leaf for the ACPI MiB.
        let leaves = t.leaves
        #expect(leaves.count == 4 * 512 + 1)
        #expect(leaves.allSatisfy { $0.size == .size2M && $0.level == "pmd" && $0.va.raw == $0.pa.raw })
        #expect(leaves == leaves.sorted { $0.va < $1.va })
        #expect(t.identityCoverage == RangeSet([range(0, 0x801f_ffff), range(0x1_0000_0000, 0x1_7fff_ffff)]))
        // Allocation order: root, pud, pmd(GiB 0), pmd(GiB 1), pmd(GiB 4), pmd(GiB 5), pmd(GiB 2, ACPI last).
        #expect(t.root == PhysAddr(0x100_0000))
        #expect(t.levelOf[PhysAddr(0x100_1000)] == "pud")
        #expect(t.pages[PhysAddr(0x100_1000)]![2] == 0x100_6000 | 0x63)
        #expect(t.pages[PhysAddr(0x100_1000)]![3] == 0)
        #expect(t.pages[PhysAddr(0x100_6000)]![0] == 0x8000_0000 | 0x1e3)
        #expect(t.pages[PhysAddr(0x100_6000)]![1] == 0)
    }

    @Test func fourGiBUnderRam1g() throws {
        let t = try build(ramRequests(try fourGiBMachine()), .ram1g)
        #expect(t.cost == TableCost(policy: "ram-1g", pgd: 1, p4d: 0, pud: 1, pmd: 0, pte: 0, transition: 0))
        #expect(t.leaves.map(\.va.raw) == [0, 1, 2, 4, 5].map { $0 * GiB })
        #expect(t.leaves.allSatisfy { $0.size == .size1G && $0.level == "pud" })
        // Without gbpages the CPU gets ram-2m's tables.
        let noGB = try build(ramRequests(try fourGiBMachine()), .ram1g, gbpages: false)
        #expect(noGB.cost.pmd == 5)
        #expect(noGB.effectiveLeafRule == "2m")
        #expect(noGB.policy == .ram1g)
    }

    @Test func fourGiBUnderGbpagesExactAndExceptUV() throws {
        let reqs = ramRequests(try fourGiBMachine())
        // GiBs 0, 1, 4, 5 lie wholly inside a request: 1 GiB leaves; GiB 2 only partly (ACPI): a pmd page.
        let exact = try build(reqs, .gbpagesExact)
        #expect(exact.cost.pmd == 1)
        #expect(exact.cost.pages == 3)
        #expect(exact.leaves.filter { $0.size == .size1G }.map(\.va.raw) == [0, 1, 4, 5].map { $0 * GiB })
        #expect(exact.leaves.filter { $0.size == .size2M }.map(\.va.raw) == [2 * GiB])
        let generic = try build(reqs, .gbpagesExceptUV)
        #expect(generic.effectiveLeafRule == "1g")
        #expect(generic.cost.pmd == 0)
        let uv = try build(reqs, .gbpagesExceptUV, platform: .uv)
        #expect(uv.effectiveLeafRule == "1g-exact")
        #expect(uv.policy == .gbpagesExceptUV)
        #expect(uv.cost.pmd == 1)
        #expect(uv.leaves == exact.leaves)
    }

    @Test func gbpagesExactOnlyWhereTheWholeGiBIsAsked() throws {
        let partial = [request(0x10_0000, 0x7fff_ffff)]
        let t = try build(partial, .gbpagesExact)
        // GiB 0 starts at 1 MiB, not covered whole: 2 MiB leaves over all of it (aligned out);
        // GiB 1 is covered whole: one 1 GiB leaf.
        let leaves = t.leaves
        #expect(leaves.filter { $0.size == .size2M }.count == 512)
        #expect(leaves.filter { $0.size == .size2M }.allSatisfy { $0.va.raw < GiB })
        #expect(leaves.filter { $0.size == .size1G }.map(\.va.raw) == [GiB])
        #expect(translated(t, 0x1234)! == (0x1234, .size2M))
        #expect(translated(t, 0x4567_89ab)! == (0x4567_89ab, .size1G))

        // The 2024 regression: a request ending inside a GiB. Firmware data at 0xb0000000 sits in that
        // GiB but outside the request; full gbpages cover it by accident, gbpages-exact does not.
        let reqs = [request(0x10_0000, 0x9fff_ffff)]
        let exact = try build(reqs, .gbpagesExact)
        #expect(missing(exact, 0xb000_0000) == MissingLevel(level: "pmd", index: 384, table: PhysAddr(0x100_3000)))
        #expect(translated(exact, 0x9fff_fff0)! == (0x9fff_fff0, .size2M))
        let full = try build(reqs, .ram1g)
        #expect(translated(full, 0xb000_0000)! == (0xb000_0000, .size1G))
        // Nothing at all in GiB 3 under either.
        #expect(missing(full, 0xc000_0000)?.level == "pud")
    }

    @Test func gbpagesExactFateIsDecidedByTheFirstRequest() throws {
        // GiB 1 first asked partly (a pmd page), then whole: the pud entry is present, so it stays a pmd page.
        let partialFirst = try build([request(0x5000_0000, 0x5000_0fff), request(GiB, 2 * GiB - 1)], .gbpagesExact)
        #expect(partialFirst.cost.pmd == 1)
        #expect(partialFirst.leaves.count == 512)
        // Whole first: a 1 GiB leaf, and the later partial request finds it and adds nothing.
        let wholeFirst = try build([request(GiB, 2 * GiB - 1), request(0x5000_0000, 0x5000_0fff)], .gbpagesExact)
        #expect(wholeFirst.cost.pmd == 0)
        #expect(wholeFirst.leaves.map(\.size) == [.size1G])
    }

    @Test func presentEntriesAreLeftAlone() throws {
        // A segment overlapping RAM already mapped changes nothing; a 4 KiB request maps its whole 2 MiB.
        let t = try build(
            [request(0, 0x3f_ffff), request(0x20_0000, 0x20_0fff, .segment("k")), request(0x60_0000, 0x60_0fff)], .ram2m
        )
        #expect(t.leaves.map(\.va.raw) == [0, 0x20_0000, 0x60_0000])
        #expect(t.cost.pmd == 1)
    }

    @Test func fiveLevelAddsOneP4dPage() throws {
        let reqs = ramRequests(try fourGiBMachine())
        let t = try build(reqs, .ram2m, levels: 5, transition: true)
        #expect(t.cost == TableCost(policy: "ram-2m", pgd: 1, p4d: 1, pud: 1, pmd: 5, pte: 0, transition: 4))
        #expect(t.levelOf[PhysAddr(0x100_1000)] == "p4d")
        #expect(translated(t, 0x1_2345_6789)! == (0x1_2345_6789, .size2M))
        #expect(missing(t, 1 << 39) == MissingLevel(level: "p4d", index: 1, table: PhysAddr(0x100_1000)))
        #expect(missing(t, 1 << 48) == MissingLevel(level: "pgd", index: 1, table: t.root))
        #expect(translated(t, transitionVA.raw + 0x10)! == (controlPage.raw + 0x10, .size4K))
        let four = try build(reqs, .ram2m, levels: 4, transition: true)
        #expect(t.cost.pages == four.cost.pages + 1)
        #expect(throws: PageTableError.unsupportedLevels(3)) { try build(reqs, .ram2m, levels: 3) }
    }

    @Test func transitionPagesAreCountedApart() throws {
        let t = try build(ramRequests(try fourGiBMachine()), .ram2m, transition: true)
        #expect(t.cost == TableCost(policy: "ram-2m", pgd: 1, p4d: 0, pud: 1, pmd: 5, pte: 0, transition: 3))
        #expect(t.cost.pages == 7)
        // After the identity map's 7 pages: pud, pmd, pte for 0xffffffffa0000000.
        #expect(t.transitionPages == [PhysAddr(0x100_7000), PhysAddr(0x100_8000), PhysAddr(0x100_9000)])
        #expect(t.transitionPages.map { t.levelOf[$0]! } == ["pud", "pmd", "pte"])
        // pgd[511] -> pud[510] -> pmd[256] -> pte[0].
        #expect(t.pages[t.root]![511] == 0x100_7000 | 0x63)
        #expect(t.pages[PhysAddr(0x100_7000)]![510] == 0x100_8000 | 0x63)
        #expect(t.pages[PhysAddr(0x100_8000)]![256] == 0x100_9000 | 0x63)
        #expect(t.pages[PhysAddr(0x100_9000)]![0] == controlPage.raw | 0x63)
        #expect(translated(t, transitionVA.raw + 0xabc)! == (controlPage.raw + 0xabc, .size4K))
        #expect(
            missing(t, transitionVA.raw + 0x1000) == MissingLevel(level: "pte", index: 1, table: PhysAddr(0x100_9000)))
        let last = t.leaves.last!
        #expect(last == Leaf(va: transitionVA, pa: controlPage, size: .size4K, level: "pte"))
        // The transition leaf is not identity coverage.
        #expect(t.identityCoverage == (try build(ramRequests(try fourGiBMachine()), .ram2m)).identityCoverage)
    }

    @Test func transitionInsideAnIdentityLeafIsRefused() throws {
        var next: UInt64 = 0x100_0000
        #expect(throws: PageTableError.transitionConflict(VirtAddr(0x4000_1000), level: "pud")) {
            try X86IdentityMap.build(
                requests: [request(0, 2 * GiB - 1)], policy: .ram1g, platform: .generic, levels: 4,
                transition: (VirtAddr(0x4000_1000), controlPage),
                allocate: {
                    defer { next += 0x1000 }
                    return PhysAddr(next)
                })
        }
        #expect(throws: PageTableError.nonCanonicalTransition(VirtAddr(0x8000_0000_0000))) {
            try X86IdentityMap.build(
                requests: [], policy: .ram1g, platform: .generic, levels: 4,
                transition: (VirtAddr(0x8000_0000_0000), controlPage), allocate: { PhysAddr(0x1000) })
        }
    }

    struct OutOfControlPages: Error, Equatable {}

    @Test func allocatorErrorsPassThrough() throws {
        var left = 3
        #expect(throws: OutOfControlPages()) {
            try X86IdentityMap.build(
                requests: ramRequests(try fourGiBMachine()), policy: .ram2m, platform: .generic, levels: 4,
                transition: nil,
                allocate: {
                    guard left > 0 else { throw OutOfControlPages() }
                    left -= 1
                    return PhysAddr(UInt64(0x10_0000 + left * 0x1000))
                })
        }
        #expect(throws: PageTableError.badPage(PhysAddr(0x1_0800))) {
            try X86IdentityMap.build(
                requests: [], policy: .ram2m, platform: .generic, levels: 4, transition: nil,
                allocate: { PhysAddr(0x1_0800) })
        }
        #expect(throws: PageTableError.pageReused(PhysAddr(0x1_0000))) {
            try X86IdentityMap.build(
                requests: [request(0, 0xfff)], policy: .ram2m, platform: .generic, levels: 4, transition: nil,
                allocate: { PhysAddr(0x1_0000) })
        }
    }

    @Test func requestsBeyondTheIdentityLimitAreClippedNotTrapped() throws {
        let top = request(0x7fff_ffe0_0000, 0xffff_ffff_ffff_ffff)
        let t = try build([top], .ram2m)
        #expect(t.unmappable == [range(0x8000_0000_0000, 0xffff_ffff_ffff_ffff)])
        #expect(t.leaves.map(\.va.raw) == [0x7fff_ffe0_0000])
        #expect(t.cost.pages == 3)
        let five = try build([request((1 << 52) - 0x1000, 0xffff_ffff_ffff_ffff)], .ram1g, levels: 5)
        #expect(five.unmappable == [range(1 << 52, 0xffff_ffff_ffff_ffff)])
        #expect(five.leaves.map(\.va.raw) == [(1 << 52) - GiB])
        #expect(translated(five, (1 << 52) - 1)! == ((1 << 52) - 1, .size1G))
        #expect(missing(five, 1 << 52)?.level == "pgd")
    }
}
