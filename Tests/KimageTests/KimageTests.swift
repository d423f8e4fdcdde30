import KexecModel
import Kimage
import Testing

func range(_ f: UInt64, _ l: UInt64) -> AddressRange { AddressRange(first: PhysAddr(f), last: PhysAddr(l))! }

@Suite struct PlacementTests {
    let ram = [range(0, 0x9_ffff), range(0x10_0000, 0x7fff_ffff), range(0x1_0000_0000, 0x1_3fff_ffff)]

    @Test func topDownTakesTheTopOfTheHighestRange() throws {
        var p = Placer(ranges: ram, order: .topDown)
        let a = try p.place(
            BufferRequest(name: "a", memsz: ByteCount(0x3000), align: ByteCount(0x1000), bufMin: PhysAddr(0x3000)))
        #expect(a == PhysAddr(0x1_3fff_d000))
        // Collides with `a`: steps down page by page, then aligns down to 2 MiB.
        let b = try p.place(BufferRequest(name: "b", memsz: .mib(4), align: .mib(2), bufMin: PhysAddr(0x10_0000)))
        #expect(b == PhysAddr(0x1_3fa0_0000))
        // buf_max keeps it low.
        let c = try p.place(
            BufferRequest(name: "c", memsz: .kib(8), align: .kib(4), bufMin: PhysAddr(0), bufMax: PhysAddr(0xfff_ffff)))
        #expect(c == PhysAddr(0xfff_e000))
    }

    @Test func bottomUpTakesTheFirstFit() throws {
        var p = Placer(ranges: ram, order: .bottomUp)
        let a = try p.place(
            BufferRequest(name: "a", memsz: ByteCount(0x1001), align: ByteCount(0x10), bufMin: PhysAddr(0x3000)))
        #expect(a == PhysAddr(0x3000))
        let b = try p.place(BufferRequest(name: "b", memsz: .mib(1), align: .mib(2), bufMin: PhysAddr(0x10_0000)))
        #expect(b == PhysAddr(0x20_0000))
        // Too big for the low range: skips to the next one.
        let c = try p.place(BufferRequest(name: "c", memsz: .mib(1), align: .kib(4), bufMin: PhysAddr(0x3000)))
        #expect(c == PhysAddr(0x10_0000))
    }

    @Test func noHoleIsEADDRNOTAVAIL() {
        var p = Placer(ranges: ram, order: .topDown)
        #expect(throws: Rejection.self) {
            try p.place(BufferRequest(name: "huge", memsz: .gib(3), align: .kib(4), bufMin: PhysAddr(0)))
        }
        do {
            _ = try p.place(BufferRequest(name: "huge", memsz: .gib(3), align: .kib(4), bufMin: PhysAddr(0)))
        } catch {
            #expect(error.errno == .EADDRNOTAVAIL)
        }
    }
}

@Suite struct SanityTests {
    func seg(_ name: String, _ mem: UInt64, _ memsz: UInt64, bufsz: UInt64? = nil) -> Segment {
        Segment(
            role: .user(name), mem: PhysAddr(mem), memsz: ByteCount(memsz), bytes: [], bufsz: ByteCount(bufsz ?? memsz))
    }
    func errno(
        _ segs: [Segment], syscall: KexecSyscall = .kexecLoad, type: ImageType = .normal, crash: [AddressRange] = []
    )
        -> Errno?
    {
        do {
            try SanityCheck.check(
                segments: segs, syscall: syscall, type: type, totalRAM: .gib(4), crashRegions: crash,
                limits: .x86_64(fiveLevel: false))
            return nil
        } catch {
            return error.errno
        }
    }

    @Test func kernelErrnos() {
        #expect(errno([seg("k", 0x100_0000, 0x80_0000)]) == nil)
        #expect(errno([seg("k", 0x100_0800, 0x1000)]) == .EADDRNOTAVAIL)  // misaligned
        #expect(errno([seg("k", 0x3fff_ffff_f000, 0x1000)]) == .EADDRNOTAVAIL)  // end at 2^46: past the limit
        #expect(errno([seg("k", 0x100_0000, 0x80_0000), seg("i", 0x160_0000, 0x40_0000)]) == .EINVAL)  // overlap
        #expect(errno([seg("k", 0x100_0000, 0x1000, bufsz: 0x1001)]) == .EINVAL)  // bufsz > memsz
        #expect(errno([seg("k", 0x100_0000, 0x8000_1000)]) == .EINVAL)  // more than half of 4 GiB
        let seventeen = (0..<17).map { seg("s\($0)", 0x100_0000 + UInt64($0) * 0x1000, 0x1000) }
        #expect(errno(seventeen) == .EINVAL)
        #expect(errno(seventeen, syscall: .kexecFileLoad) == nil)
        let crash = [range(0x1000_0000, 0x1fff_ffff)]
        #expect(errno([seg("k", 0x1000_0000, 0x1000)], type: .crash, crash: crash) == nil)
        #expect(errno([seg("k", 0x0fff_f000, 0x2000)], type: .crash, crash: crash) == .EADDRNOTAVAIL)
    }
}

@Suite struct KimageBuildTests {
    let ram = [range(0x10_0000, 0x7fff_ffff)]

    @Test func listHas511EntriesAndALinkPerPage() throws {
        // 600 pages: DESTINATION + 600 SOURCE + DONE = 602 entries -> two indirection pages.
        let s = Segment(role: .user("k"), mem: PhysAddr(0x4000_0000), memsz: ByteCount(600 * 4096), bytes: [])
        let (k, _) = try KimageBuilder.build(
            segments: [s], type: .normal, startAddress: PhysAddr(0x4000_0000), freeRAM: ram, crashRegions: [])
        // Allocation order from 16 MiB: control, swap, first indirection page, then sources.
        #expect(k.controlPage == PhysAddr(0x100_0000))
        #expect(k.swapPage == PhysAddr(0x100_1000))
        #expect(k.head == 0x100_2000 | Ind.indirection)
        #expect(k.indirectionPages.count == 2)
        let first = k.indirectionPages[0].entries
        #expect(first[0] == 0x4000_0000 | Ind.destination)
        #expect(first[1] == 0x100_3000 | Ind.source)
        // Slot 511 links to the second page. As in kimage_add_page, the 511th source page is
        // allocated before kimage_add_entry finds the page full and allocates the next one.
        #expect(first[511] == k.indirectionPages[1].pa.raw | Ind.indirection)
        #expect(k.indirectionPages[1].pa == PhysAddr(0x100_3000 + 511 * 0x1000))
        let second = k.indirectionPages[1].entries
        #expect(second[90 - 1] & Ind.source != 0)
        #expect(second[90] == Ind.done)  // 511 - 1 (dest) = 510 sources on page 1, 90 on page 2
        let entries = k.listEntries
        #expect(entries.count == 1 + 512 + 91)  // head, page one (511 + link), page two up to DONE
        #expect(entries.filter { $0 & Ind.source != 0 }.count == 600)
        #expect(k.sourcePages.count == 600)
    }

    /// PAGE_SIZE = 16 KiB (an arm64 16K kernel): every kimage page is 16 KiB and an indirection
    /// page holds 2048 entries, the last one the link (kimage_add_entry, kernel/kexec_core.c).
    @Test func sixteenKiBPagesHold2047EntriesAndALink() throws {
        // 3000 pages: DESTINATION + 3000 SOURCE + DONE -> 2047 on page one, 954 + DONE on page two.
        let page: UInt64 = 0x4000
        let s = Segment(role: .user("k"), mem: PhysAddr(0x4000_0000), memsz: ByteCount(3000 * page), bytes: [])
        let (k, alloc) = try KimageBuilder.build(
            segments: [s], type: .normal, startAddress: PhysAddr(0x4000_0000), freeRAM: ram, crashRegions: [],
            pageSize: ByteCount(page))
        #expect(k.pageSize == page && alloc.pageSize == page)
        #expect(k.controlPage == PhysAddr(0x100_0000))
        #expect(k.swapPage == PhysAddr(0x100_4000))
        #expect(k.head == 0x100_8000 | Ind.indirection)
        #expect(k.indirectionPages.map(\.entries.count) == [2048, 2048])
        let first = k.indirectionPages[0].entries
        #expect(first[0] == 0x4000_0000 | Ind.destination)
        #expect(first[1] == 0x100_c000 | Ind.source)
        #expect(first[2] == 0x101_0000 | Ind.source)
        // The 2047th source page is allocated before the page is found full; the link page follows it.
        #expect(first[2047] == k.indirectionPages[1].pa.raw | Ind.indirection)
        #expect(k.indirectionPages[1].pa == PhysAddr(0x100_c000 + 2047 * page))
        let second = k.indirectionPages[1].entries
        #expect(second[0] == (0x100_c000 + 2046 * page) | Ind.source)
        #expect(second[953] == (0x100_c000 + 3000 * page) | Ind.source)
        #expect(second[954] == Ind.done)
        #expect(k.sourcePages.count == 3000)
        #expect(k.sourcePages.map(\.destination.raw) == (0..<3000).map { 0x4000_0000 + UInt64($0) * page })
        #expect(k.listEntries.count == 1 + 2048 + 955)
        // The same segment in 4 KiB pages: 12000 sources, 24 list pages of 511 entries + link.
        let (k4, _) = try KimageBuilder.build(
            segments: [s], type: .normal, startAddress: PhysAddr(0x4000_0000), freeRAM: ram, crashRegions: [])
        #expect(k4.sourcePages.count == 12000 && k4.indirectionPages.count == 24)
    }

    /// A 64 KiB allocator hands out 64 KiB aligned pages only, from a free range trimmed to them.
    @Test func sixtyFourKiBAllocatorTrimsAndAligns() throws {
        var a = PageAllocator(
            free: [range(0x100_1000, 0x103_efff)], floor: PhysAddr(0x100_0000), destinations: RangeSet(),
            pageSize: 0x1_0000)
        #expect(try a.allocateNonDestination() == PhysAddr(0x101_0000))
        #expect(try a.allocateNonDestination() == PhysAddr(0x102_0000))
        #expect(throws: Rejection.self) { try a.allocateNonDestination() }
    }

    @Test func destinationPagesAreSwappedIn() throws {
        // The destination sits where the allocator walks (kimage_alloc_page, kernel/kexec_core.c).
        let s = Segment(role: .user("k"), mem: PhysAddr(0x100_4000), memsz: ByteCount(4 * 4096), bytes: [])
        let (k, alloc) = try KimageBuilder.build(
            segments: [s], type: .normal, startAddress: PhysAddr(0), freeRAM: ram, crashRegions: [])
        #expect(k.controlPage == PhysAddr(0x100_0000))
        #expect(k.swapPage == PhysAddr(0x100_1000))
        #expect(k.head == 0x100_2000 | Ind.indirection)
        // Page 0 (for 0x1004000) gets 0x1003000. Page 1's request meets 0x1004000, page 0's
        // destination, which has a source: it is swapped in (page 0 now sits in place) and page 1
        // gets the old source 0x1003000; and so on up: three pages in place, the last one from 0x1003000.
        let pairs = k.sourcePages.map { [$0.source.raw, $0.destination.raw] }
        #expect(
            pairs == [
                [0x100_4000, 0x100_4000], [0x100_5000, 0x100_5000], [0x100_6000, 0x100_6000], [0x100_3000, 0x100_7000],
            ])
        #expect(k.listEntries.filter { $0 & Ind.source != 0 }.map { $0 & ~0xfff } == pairs.map { $0[0] })
        #expect(alloc.parked.isEmpty)
        #expect(k.parkedPages == 0)
        #expect(k.swappedInPages == 3)
        // No control, swap or indirection page is a destination.
        for p in [k.controlPage, k.swapPage!] + k.indirectionPages.map(\.pa) {
            #expect(!(p.raw >= 0x100_4000 && p.raw < 0x100_8000))
        }
    }

    @Test func destinationWithoutASourceIsParked() throws {
        // Two segments: the second's pages are met while the first is loaded; they have no source
        // yet, so they are parked and come back for their own destination.
        let a = Segment(role: .user("a"), mem: PhysAddr(0x4000_0000), memsz: ByteCount(3 * 4096), bytes: [])
        let b = Segment(role: .user("b"), mem: PhysAddr(0x100_4000), memsz: ByteCount(2 * 4096), bytes: [])
        let (k, alloc) = try KimageBuilder.build(
            segments: [a, b], type: .normal, startAddress: PhysAddr(0), freeRAM: ram, crashRegions: [])
        #expect(alloc.parked.isEmpty)
        #expect(k.parkedPages == 0)
        let pairs = k.sourcePages.map { [$0.source.raw, $0.destination.raw] }
        #expect(
            pairs == [
                [0x100_3000, 0x4000_0000], [0x100_6000, 0x4000_1000], [0x100_7000, 0x4000_2000],
                [0x100_4000, 0x100_4000], [0x100_5000, 0x100_5000],
            ])
    }

    @Test func normalImageNeverUsesTheCrashkernelRegion() throws {
        let crash = [range(0x100_0000, 0x1ff_ffff)]
        let s = Segment(role: .user("k"), mem: PhysAddr(0x4000_0000), memsz: ByteCount(2 * 4096), bytes: [])
        let (k, _) = try KimageBuilder.build(
            segments: [s], type: .normal, startAddress: PhysAddr(0), freeRAM: ram, crashRegions: crash)
        #expect(k.controlPage == PhysAddr(0x200_0000))
        #expect(k.swapPage == PhysAddr(0x200_1000))
        #expect(k.sourcePages.map(\.source.raw) == [0x200_3000, 0x200_4000])
    }

    @Test func eightKiBControlBlockIsAligned() throws {
        let s = Segment(role: .user("k"), mem: PhysAddr(0x4000_0000), memsz: ByteCount(4096), bytes: [])
        let (k, _) = try KimageBuilder.build(
            segments: [s], type: .normal, startAddress: PhysAddr(0), freeRAM: ram, crashRegions: [], controlPages: 2,
            allocatorFloor: PhysAddr(0x100_1000))
        // 0x1001000 is not 8 KiB aligned: the block starts at 0x1002000, PGD first, code second.
        #expect(k.controlPGD == PhysAddr(0x100_2000))
        #expect(k.controlPage == PhysAddr(0x100_3000))
        #expect(k.swapPage == PhysAddr(0x100_4000))
    }

    @Test func crashImageHasNoList() throws {
        let crash = [range(0x2000_0000, 0x2fff_ffff)]
        let s = Segment(role: .user("k"), mem: PhysAddr(0x2000_0000), memsz: ByteCount(8192), bytes: [])
        let (k, _) = try KimageBuilder.build(
            segments: [s], type: .crash, startAddress: PhysAddr(0), freeRAM: ram, crashRegions: crash)
        #expect(k.head == Ind.done)
        #expect(k.indirectionPages.isEmpty)
        #expect(k.swapPage == nil)
        #expect(k.controlPage == PhysAddr(0x2000_2000))
    }
}
