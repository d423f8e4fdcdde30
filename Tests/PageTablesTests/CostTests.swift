import KexecModel
import PageTables
import Testing

@Suite struct CostTests {
    @Test func twentyFourTiBFlat() {
        let reqs = [request(0, 24 * TiB - 1)]
        // 2 MiB leaves: one pmd page per GiB = 24 * 1024 = 24,576 pmd pages (96 MiB of tables);
        // one pud page per 512 GiB = 24,576 / 512 = 48; one pgd.
        let c2 = X86IdentityMap.cost(requests: reqs, policy: .ram2m, platform: .generic, levels: 4)
        #expect(c2 == TableCost(policy: "ram-2m", pgd: 1, p4d: 0, pud: 48, pmd: 24_576, pte: 0, transition: 0))
        #expect(c2.pages == 24_625)
        #expect(c2.bytes == 24_625 * 4096)
        // 1 GiB leaves: the 48 pud pages (192 KiB) and the pgd.
        let c1 = X86IdentityMap.cost(requests: reqs, policy: .ram1g, platform: .generic, levels: 4)
        #expect(c1 == TableCost(policy: "ram-1g", pgd: 1, p4d: 0, pud: 48, pmd: 0, pte: 0, transition: 0))
        #expect(c1.bytes == 49 * 4096)
        // 5-level: one more page, the p4d.
        let c5 = X86IdentityMap.cost(requests: reqs, policy: .ram2m, platform: .generic, levels: 5)
        #expect(c5.p4d == 1)
        #expect(c5.pages == c2.pages + 1)
    }

    @Test func twentyFourTiBMachine() throws {
        // RAM: the low 2 GiB (less the hole) and 24 TiB - 2 GiB from 4 GiB up: GiBs 0, 1 and 4 ..< 24,578.
        let m = try machine([
            (0, 0x9_ffff, .usable), (0x10_0000, 0x7fff_ffff, .usable),
            (0x1_0000_0000, 0x1_0000_0000 + 24 * TiB - 2 * GiB - 1, .usable),
        ])
        #expect(m.memory.totalRAM.raw == 24 * TiB - 0x6_0000)
        let reqs = ramRequests(m)
        let c = X86IdentityMap.cost(
            requests: reqs, policy: .ram2m, platform: .generic, levels: 4, transition: transitionVA)
        // pmd: 2 + 24,574 GiBs = 24,576. pud: GiB 24,577 lies in the 49th 512-GiB slot (index 48), so 49.
        // transition: pud, pmd and pte under pgd[511].
        #expect(c == TableCost(policy: "ram-2m", pgd: 1, p4d: 0, pud: 49, pmd: 24_576, pte: 0, transition: 3))
        let uv = X86IdentityMap.cost(requests: reqs, policy: .gbpagesExceptUV, platform: .uv, levels: 4)
        // Exact rule: every GiB is whole inside a request, so no pmd page at all.
        #expect(uv.pmd == 0)
        #expect(uv.pud == 49)
    }

    /// The estimate must equal what build allocates, for every policy, platform and depth.
    @Test(arguments: IdentityMapPolicy.allCases)
    func costMatchesBuild(policy: IdentityMapPolicy) throws {
        let cases: [[IdentityMapRequest]] = [
            ramRequests(try fourGiBMachine()),
            [],
            [request(0x5000_0000, 0x5000_0fff), request(GiB, 2 * GiB - 1), request(0x10_0000, 0x9fff_ffff)],
            [request(GiB, 2 * GiB - 1), request(0x5000_0000, 0x5000_0fff), request(0, 0xf_ffff, .firstMiB)],
            [request(511 * GiB + 0x1000, 513 * GiB + 0x1000), request(20 * TiB, 20 * TiB + 3 * GiB - 1)],
            [request(0x7fff_ffe0_0000, 0x8000_001f_ffff), request(0xf_ffff_ffe0_0000, 0xffff_ffff_ffff_ffff)],
            [request(300 * TiB, 300 * TiB + 0x1fff), request(0, 0xfff)],
        ]
        for (i, reqs) in cases.enumerated() {
            for levels in [4, 5] {
                for platform in Platform.allCases {
                    for gbpages in [true, false] {
                        let built = try build(
                            reqs, policy, platform: platform, levels: levels, gbpages: gbpages, transition: true)
                        let estimate = X86IdentityMap.cost(
                            requests: reqs, policy: policy, platform: platform, levels: levels,
                            gbpagesSupported: gbpages, transition: transitionVA)
                        #expect(estimate == built.cost, "case \(i), \(levels)-level, \(platform), gbpages \(gbpages)")
                    }
                }
            }
        }
    }

    @Test func costOfTheWholeSpaceDoesNotTrap() {
        let all = [request(0, 0xffff_ffff_ffff_ffff)]
        // 4-level identity maps stop at 2^47 = 128 TiB: 256 pgd entries, 131,072 GiBs.
        let c = X86IdentityMap.cost(
            requests: all, policy: .ram2m, platform: .generic, levels: 4, transition: transitionVA)
        #expect(c == TableCost(policy: "ram-2m", pgd: 1, p4d: 0, pud: 256, pmd: 131_072, pte: 0, transition: 3))
        let c5 = X86IdentityMap.cost(requests: all, policy: .ram1g, platform: .generic, levels: 5)
        // 2^52: 16 pgd entries (p4d pages), 8,192 pud pages.
        #expect(c5 == TableCost(policy: "ram-1g", pgd: 1, p4d: 16, pud: 8192, pmd: 0, pte: 0, transition: 0))
    }
}
