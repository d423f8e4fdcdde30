import Dispatch
import Emulator
import GuestCode
import KexecModel
import PageTables
import Testing

/// SHA-256 (FIPS 180-4) for the purgatory tests; EmulatorTests has no crypto dependency.
func arm64TestSHA256(_ message: [UInt8]) -> [UInt8] {
    let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]
    var h: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    var m = message
    m.append(0x80)
    while m.count % 64 != 56 { m.append(0) }
    let bits = UInt64(message.count) * 8
    for i in (0..<8).reversed() { m.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
    func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    var w = [UInt32](repeating: 0, count: 64)
    for chunk in stride(from: 0, to: m.count, by: 64) {
        for i in 0..<16 {
            w[i] =
                UInt32(m[chunk + 4 * i]) << 24 | UInt32(m[chunk + 4 * i + 1]) << 16 | UInt32(m[chunk + 4 * i + 2]) << 8
                | UInt32(m[chunk + 4 * i + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for i in 0..<64 {
            let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
    }
    return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32($0))) } }
}

/// Bump allocator for table pages, granule aligned.
final class Arm64TablePool {
    var next: UInt64
    let end: UInt64
    init(start: UInt64, end: UInt64) {
        next = start
        self.end = end
    }
    func allocator(_ g: Granule) -> () throws -> PhysAddr {
        {
            self.next = (self.next + g.size - 1) & ~(g.size - 1)
            precondition(self.next + g.size <= self.end, "table pool exhausted")
            defer { self.next += g.size }
            return PhysAddr(self.next)
        }
    }
}

/// A kexec scene in guest memory: the relocation routine in its control page, an IND_* list over
/// source pages, destinations, a DTB and an entry page. RAM is [1 GiB, 5 GiB) (PHYS_OFFSET 1 GiB).
struct Arm64KexecScene {
    static let ram = AddressRange(first: PhysAddr(0x4000_0000), last: PhysAddr(0x1_3fff_ffff))!
    static let control: UInt64 = 0x4100_0000
    static let zeroPage: UInt64 = 0x4102_0000
    static let purgatory: UInt64 = 0x4400_0000
    static let dtb: UInt64 = 0x4500_0000
    static let kernelEntry: UInt64 = 0x4700_0000
    static let listBase: UInt64 = 0x4200_0000
    static let sourceBase: UInt64 = 0x5000_0000
    static let tablePool: UInt64 = 0x6000_0000
    static let tablePoolSize: UInt64 = 40 << 20

    let mem = GuestMemory()
    let pageSize: UInt64
    /// Destination segments: (physical start, pages).
    let segments: [(dest: UInt64, pages: Int)]
    var sources: [[UInt64]] = []
    var listPages: [UInt64] = []
    var head: UInt64 = 0
    let pool = Arm64TablePool(start: tablePool, end: tablePool + tablePoolSize)

    init(pageSize: UInt64, segments: [(dest: UInt64, pages: Int)], entriesPerListPage: Int? = nil, seed: UInt64 = 1)
        throws
    {
        self.pageSize = pageSize
        self.segments = segments
        let code = Arm64GuestCode.relocateKernel
        try mem.add(start: PhysAddr(Self.control), size: .kib(64), label: "control")
        #expect(mem.write(PhysAddr(Self.control), code.bytes))
        try mem.add(start: PhysAddr(Self.zeroPage), size: .kib(64), label: "zero page")
        try mem.add(start: PhysAddr(Self.purgatory), size: .kib(64), label: "purgatory")
        try mem.add(start: PhysAddr(Self.dtb), size: .kib(4), label: "dtb")
        try mem.add(start: PhysAddr(Self.kernelEntry), size: .kib(64), label: "next kernel")
        try mem.add(start: PhysAddr(Self.tablePool), size: ByteCount(Self.tablePoolSize), label: "tables")

        // Sources: every other page from sourceBase, random bytes; destinations full of 0xee.
        var s = seed
        var src = Self.sourceBase
        let total = segments.reduce(0) { $0 + $1.pages }
        try mem.add(start: PhysAddr(src), size: ByteCount(UInt64(2 * total) * pageSize), label: "sources")
        for seg in segments {
            try mem.add(start: PhysAddr(seg.dest), size: ByteCount(UInt64(seg.pages) * pageSize), label: "dest")
            #expect(mem.write(PhysAddr(seg.dest), [UInt8](repeating: 0xee, count: seg.pages * Int(pageSize))))
            var pages: [UInt64] = []
            for _ in 0..<seg.pages {
                var bytes = [UInt8](repeating: 0, count: Int(pageSize))
                bytes.withUnsafeMutableBytes { raw in
                    for i in 0..<(Int(pageSize) / 8) {
                        s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                        raw.storeBytes(of: s, toByteOffset: i * 8, as: UInt64.self)
                    }
                }
                #expect(mem.write(PhysAddr(src), bytes))
                pages.append(src)
                src += 2 * pageSize
            }
            sources.append(pages)
        }

        // The list: DEST, SOURCE..., one flagless entry (skipped), ..., DONE; a link in the last slot
        // of each list page, the head an IND_INDIRECTION to the first.
        var entries: [UInt64] = []
        for (i, seg) in segments.enumerated() {
            entries.append(seg.dest | 0x1)
            for (j, p) in sources[i].enumerated() {
                entries.append(p | 0x8)
                if j == 0 { entries.append(0) }
            }
        }
        entries.append(0x4)
        let perPage = entriesPerListPage ?? Int(pageSize / 8) - 1
        let listPageCount = (entries.count + perPage - 1) / perPage
        try mem.add(start: PhysAddr(Self.listBase), size: ByteCount(UInt64(listPageCount) * pageSize), label: "list")
        for p in 0..<listPageCount {
            let page = Self.listBase + UInt64(p) * pageSize
            listPages.append(page)
            let chunk = entries[(p * perPage)..<min(entries.count, (p + 1) * perPage)]
            for (i, e) in chunk.enumerated() { _ = mem.write64(PhysAddr(page + UInt64(i) * 8), e) }
            if p + 1 < listPageCount {
                _ = mem.write64(PhysAddr(page + UInt64(perPage) * 8), (page + pageSize) | 0x2)
            }
        }
        head = Self.listBase | 0x2
    }

    /// Every destination holds its sources' bytes.
    func destinationsMatch() -> Bool {
        for (i, seg) in segments.enumerated() {
            for (j, src) in sources[i].enumerated() {
                let d = mem.read(PhysAddr(seg.dest + UInt64(j) * pageSize), count: Int(pageSize))
                let s = mem.read(PhysAddr(src), count: Int(pageSize))
                if d == nil || d != s { return false }
            }
        }
        return true
    }

    /// Physical ranges the relocation touches: list pages, sources, destinations.
    var touched: [AddressRange] {
        listPages.map { AddressRange(start: PhysAddr($0), size: ByteCount(pageSize))! }
            + sources.joined().map { AddressRange(start: PhysAddr($0), size: ByteCount(pageSize))! }
            + segments.map { AddressRange(start: PhysAddr($0.dest), size: ByteCount(UInt64($0.pages) * pageSize))! }
    }

    func allocator(_ g: Granule) -> () throws -> PhysAddr { pool.allocator(g) }

    func load(_ t: Arm64Tables) {
        for pa in t.pages.keys { _ = mem.write(pa, t.encodedPage(pa)) }
    }

    func setArguments(_ e: Arm64Engine, entry: UInt64, physOffset: UInt64 = 0, ttbr1: UInt64 = 0) {
        e.write(.x0, head)
        e.write(.x1, entry)
        e.write(.x2, Self.dtb)
        e.write(.x3, physOffset)
        e.write(.x4, ttbr1)
        e.write(.x5, Self.zeroPage)
        e.write(.x6, pageSize)
    }

    var mmuOffEntry: VirtAddr {
        VirtAddr(Self.control + Arm64GuestCode.RelocateKernel.arm64RelocateNewKernel)
    }
    var mmuOnEntry: VirtAddr {
        VirtAddr(Self.control + Arm64GuestCode.RelocateKernel.arm64RelocateNewKernelMmuOn)
    }

    /// An MMU-on engine: TTBR1 = the first kernel's linear map, TTBR0 = the identity map of the
    /// control page; returns it with the relocation tables' root (x4).
    func mmuOnEngine(
        granule: Granule, mappings: Arm64Mappings, variant: Arm64LinearMap.RelocationTables
    ) throws -> (Arm64Engine, Arm64Layout, Arm64Tables) {
        let layout = Arm64Layout(ram: [Self.ram], granule: granule)
        let first = try Arm64LinearMap.build(
            ram: [Self.ram], granule: granule, mappings: mappings, layout: layout, allocate: allocator(granule))
        let reloc: Arm64Tables
        switch variant {
        case .linearMapCopy: reloc = try Arm64LinearMap.copy(first, allocate: allocator(granule))
        case .relocatedOnly:
            reloc = try Arm64LinearMap.relocatedOnly(
                touched, granule: granule, layout: layout, allocate: allocator(granule))
        }
        let idmap = try Arm64LinearMap.identityMapPage(
            PhysAddr(Self.control), granule: granule, allocate: allocator(granule))
        for t in [first, reloc, idmap] { load(t) }
        let e = try Arm64Engine(memory: mem)
        e.enableMMU(
            tcr: first.tcr(idmapT0SZ: idmap.txsz), ttbr0: idmap.root.raw, ttbr1: first.root.raw,
            mair: Arm64Descriptor.mair)
        setArguments(e, entry: Self.kernelEntry, physOffset: layout.physToVirtOffset, ttbr1: reloc.root.raw)
        return (e, layout, reloc)
    }
}

@Suite struct Arm64RelocationTests {
    let segments: [(dest: UInt64, pages: Int)] = [(0x8000_0000, 5), (0x1_2000_0000, 3)]

    func expectHandOff(_ e: Arm64Engine, _ stop: StopReason<Arm64Walker.Fault>, entry: UInt64) {
        #expect(stop == .reached(pc: VirtAddr(entry)), "\(stop)")
        #expect(e.read(.x0) == Arm64KexecScene.dtb)
        #expect(e.read(.x1) == 0 && e.read(.x2) == 0 && e.read(.x3) == 0)
        #expect(e.read(.sctlrEL1) & 1 == 0, "SCTLR_EL1.M must be 0 at the entry")
    }

    @Test(arguments: [UInt64(4096), 16384, 65536])
    func mmuOff(pageSize: UInt64) throws {
        // Four entries per list page: the walk crosses IND_INDIRECTION links.
        let scene = try Arm64KexecScene(pageSize: pageSize, segments: segments, entriesPerListPage: 4)
        #expect(scene.listPages.count == 4)
        #expect(!scene.destinationsMatch())
        let e = try Arm64Engine(memory: scene.mem)
        #expect(e.read(.sctlrEL1) & 1 == 0)
        scene.setArguments(e, entry: Arm64KexecScene.kernelEntry)
        let stop = e.run(
            from: scene.mmuOffEntry, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 0,
            timeoutMicros: 10_000_000)
        expectHandOff(e, stop, entry: Arm64KexecScene.kernelEntry)
        #expect(scene.destinationsMatch())
    }

    static let mmuOnCases: [(Granule, Arm64Mappings, Arm64LinearMap.RelocationTables)] =
        Granule.allCases.flatMap { g in
            Arm64Mappings.allCases.map { (g, $0, Arm64LinearMap.RelocationTables.linearMapCopy) }
        } + Granule.allCases.map { ($0, .basePages, .relocatedOnly) }

    @Test(arguments: mmuOnCases)
    func mmuOn(granule: Granule, mappings: Arm64Mappings, variant: Arm64LinearMap.RelocationTables) throws {
        let scene = try Arm64KexecScene(pageSize: granule.size, segments: segments, entriesPerListPage: 4)
        let (e, layout, reloc) = try scene.mmuOnEngine(granule: granule, mappings: mappings, variant: variant)
        #expect(e.read(.sctlrEL1) & 1 == 1)
        // The relocation tables map a destination at its linear-map VA.
        let va = layout.va(PhysAddr(0x1_2000_0000))!
        #expect(va == VirtAddr(0xffff_0000_e000_0000))
        #expect(try reloc.translate(va).get().pa == PhysAddr(0x1_2000_0000))
        let stop = e.run(
            from: scene.mmuOnEntry, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 0, timeoutMicros: 10_000_000)
        expectHandOff(e, stop, entry: Arm64KexecScene.kernelEntry)
        #expect(scene.destinationsMatch(), "\(granule) \(mappings) \(variant)")
        // The routine switched TTBR1 to the relocation tables.
        #expect(e.read(.ttbr1EL1) == reloc.root.raw)
        #expect(e.read(.sctlrEL1) & ((1 << 2) | (1 << 12)) == 0, "caches off too")
    }

    /// A crash image: head == IND_DONE, nothing to copy; both variants go straight to the entry.
    @Test func doneHeadCopiesNothing() throws {
        for mmuOn in [false, true] {
            let scene = try Arm64KexecScene(pageSize: 4096, segments: segments)
            let e: Arm64Engine
            if mmuOn {
                e = try scene.mmuOnEngine(granule: .g4k, mappings: .blocks, variant: .linearMapCopy).0
            } else {
                e = try Arm64Engine(memory: scene.mem)
                scene.setArguments(e, entry: Arm64KexecScene.kernelEntry)
            }
            e.write(.x0, 0x4)
            let stop = e.run(
                from: mmuOn ? scene.mmuOnEntry : scene.mmuOffEntry, until: VirtAddr(Arm64KexecScene.kernelEntry),
                budget: 1000)
            expectHandOff(e, stop, entry: Arm64KexecScene.kernelEntry)
            #expect(scene.mem.read(PhysAddr(0x8000_0000), count: 4) == [0xee, 0xee, 0xee, 0xee])
        }
    }

    @Test func mmuOnWithoutTheDestinationMappedFaults() throws {
        let scene = try Arm64KexecScene(pageSize: 4096, segments: segments)
        let layout = Arm64Layout(ram: [Arm64KexecScene.ram], granule: .g4k)
        // Relocation tables that miss the second destination (above 4 GiB).
        let partial = try Arm64LinearMap.relocatedOnly(
            Array(scene.touched.dropLast()), granule: .g4k, layout: layout, allocate: scene.allocator(.g4k))
        scene.load(partial)
        let (e, _, _) = try scene.mmuOnEngine(granule: .g4k, mappings: .blocks, variant: .linearMapCopy)
        e.write(.x4, partial.root.raw)
        let stop = e.run(
            from: scene.mmuOnEntry, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 0,
            timeoutMicros: 10_000_000)
        guard case .translationFault(let f, let access, _) = stop else {
            Issue.record("expected a translation fault, got \(stop)")
            return
        }
        #expect(access == .write)
        #expect(f.va == layout.va(PhysAddr(0x1_2000_0000)))
        #expect(e.lastFault?.ttbr == 1 && e.lastFault?.reason == .invalid)
    }

    /// Copy speed, MMU off vs MMU on (4K granule, block linear-map copy), 32 MiB each.
    @Test func copySpeed() throws {
        let pages = 8192
        let seg: [(dest: UInt64, pages: Int)] = [(0x8000_0000, pages)]
        var rates: [String: Double] = [:]
        for mode in ["mmu-off", "mmu-on"] {
            let scene = try Arm64KexecScene(pageSize: 4096, segments: seg)
            let e: Arm64Engine
            let from: VirtAddr
            if mode == "mmu-off" {
                e = try Arm64Engine(memory: scene.mem)
                scene.setArguments(e, entry: Arm64KexecScene.kernelEntry)
                from = scene.mmuOffEntry
            } else {
                e = try scene.mmuOnEngine(granule: .g4k, mappings: .blocks, variant: .linearMapCopy).0
                from = scene.mmuOnEntry
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let stop = e.run(
                from: from, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 0, timeoutMicros: 60_000_000)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            expectHandOff(e, stop, entry: Arm64KexecScene.kernelEntry)
            #expect(scene.destinationsMatch())
            rates[mode] = Double(pages * 4096) / 1e6 / seconds
        }
        print(
            "arm64 relocation copy speed (32 MiB): mmu-off \(Int(rates["mmu-off"]!)) MB/s, "
                + "mmu-on \(Int(rates["mmu-on"]!)) MB/s")
        #expect(rates.values.allSatisfy { $0 > 5 })
    }
}

@Suite struct Arm64PurgatoryTests {
    let blob = Arm64GuestCode.purgatory
    typealias Layout = Arm64GuestCode.PurgatoryDataLayout

    /// Loads the purgatory at `Arm64KexecScene.purgatory` with its data patched: entry = the next
    /// kernel, dtb, the regions, and `digest`.
    func load(_ mem: GuestMemory, regions: [(UInt64, UInt64)], digest: [UInt8]) {
        var bytes = blob.bytes
        let data = Int(Arm64GuestCode.Purgatory.purgatoryData)
        func put(_ off: UInt64, _ v: UInt64) {
            for i in 0..<8 { bytes[data + Int(off) + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        put(Layout.entry, Arm64KexecScene.kernelEntry)
        put(Layout.dtb, Arm64KexecScene.dtb)
        put(Layout.regionCount, UInt64(regions.count))
        for (i, r) in regions.enumerated() {
            put(Layout.regions + UInt64(i) * Layout.regionStride, r.0)
            put(Layout.regions + UInt64(i) * Layout.regionStride + 8, r.1)
        }
        for (i, b) in digest.enumerated() { bytes[data + Int(Layout.digest) + i] = b }
        #expect(mem.write(PhysAddr(Arm64KexecScene.purgatory), bytes))
        #expect(
            mem.write(
                PhysAddr(Arm64KexecScene.purgatory + UInt64(blob.bytes.count)),
                [UInt8](repeating: 0, count: Int(blob.bssSize))))
    }

    var start: VirtAddr { VirtAddr(Arm64KexecScene.purgatory + Arm64GuestCode.Purgatory.purgatoryStart) }
    var spin: VirtAddr { VirtAddr(Arm64KexecScene.purgatory + Arm64GuestCode.Purgatory.sha256MismatchSpin) }

    func regionsAndDigest(_ scene: Arm64KexecScene) -> ([(UInt64, UInt64)], [UInt8]) {
        let regions = scene.segments.map { ($0.dest, UInt64($0.pages) * scene.pageSize) }
        var all: [UInt8] = []
        for src in scene.sources.joined() { all += scene.mem.read(PhysAddr(src), count: Int(scene.pageSize))! }
        return (regions, arm64TestSHA256(all))
    }

    @Test func sha256KnownAnswer() {
        let hex = arm64TestSHA256(Array("abc".utf8)).map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }
        #expect(hex.joined() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func goodDigestJumpsToTheKernel() throws {
        let scene = try Arm64KexecScene(pageSize: 4096, segments: [(0x8000_0000, 5), (0x1_2000_0000, 3)])
        // Destinations already in place (as after relocation): copy the sources there.
        for (i, seg) in scene.segments.enumerated() {
            for (j, src) in scene.sources[i].enumerated() {
                _ = scene.mem.write(PhysAddr(seg.dest + UInt64(j) * 4096), scene.mem.read(PhysAddr(src), count: 4096)!)
            }
        }
        let (regions, digest) = regionsAndDigest(scene)
        load(scene.mem, regions: regions, digest: digest)
        let e = try Arm64Engine(memory: scene.mem)
        try e.stop(at: spin, name: "sha256_mismatch_spin")
        e.write(.x0, Arm64KexecScene.dtb)
        let stop = e.run(
            from: start, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 0, timeoutMicros: 10_000_000)
        #expect(stop == .reached(pc: VirtAddr(Arm64KexecScene.kernelEntry)), "\(stop)")
        #expect(e.read(.x0) == Arm64KexecScene.dtb)
        #expect(e.read(.x1) == 0 && e.read(.x2) == 0 && e.read(.x3) == 0)
    }

    @Test func wrongDigestSpins() throws {
        let scene = try Arm64KexecScene(pageSize: 4096, segments: [(0x8000_0000, 2)])
        var (regions, digest) = regionsAndDigest(scene)
        digest[31] ^= 1  // the destinations hold 0xee anyway: the digest cannot match
        load(scene.mem, regions: regions, digest: digest)
        let e = try Arm64Engine(memory: scene.mem)
        try e.stop(at: spin, name: "sha256_mismatch_spin")
        let stop = e.run(
            from: start, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 0, timeoutMicros: 10_000_000)
        #expect(stop == .stoppedAt(pc: spin, name: "sha256_mismatch_spin"))
        // Without the named stop it is a hang: a branch-to-self that burns the budget.
        let e2 = try Arm64Engine(memory: scene.mem)
        let hang = e2.run(from: start, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 2_000_000)
        #expect(hang == .budgetExhausted(pc: spin, executed: 2_000_000))
        #expect(e2.sampleLoop(at: spin).hasPrefix("tight loop over 1 instruction"))
    }

    /// The whole arm64 path: MMU-on relocation through the linear-map copy, purgatory with the MMU
    /// off, the next kernel's entry with x0 = DTB.
    @Test func relocationThenPurgatory() throws {
        let scene = try Arm64KexecScene(pageSize: 4096, segments: [(0x8000_0000, 5), (0x1_2000_0000, 3)])
        let (regions, digest) = regionsAndDigest(scene)
        load(scene.mem, regions: regions, digest: digest)
        let (e, _, _) = try scene.mmuOnEngine(granule: .g4k, mappings: .blocks, variant: .linearMapCopy)
        e.write(.x1, start.raw)  // relocation enters the purgatory
        try e.stop(at: spin, name: "sha256_mismatch_spin")
        let stop = e.run(
            from: scene.mmuOnEntry, until: VirtAddr(Arm64KexecScene.kernelEntry), budget: 0, timeoutMicros: 10_000_000)
        #expect(stop == .reached(pc: VirtAddr(Arm64KexecScene.kernelEntry)), "\(stop)")
        #expect(scene.destinationsMatch())
        #expect(e.read(.x0) == Arm64KexecScene.dtb)
        #expect(e.read(.x1) == 0 && e.read(.x2) == 0 && e.read(.x3) == 0)
        #expect(e.read(.sctlrEL1) & 1 == 0)
    }
}
