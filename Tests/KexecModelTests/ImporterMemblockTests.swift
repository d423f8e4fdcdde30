import Testing

@testable import KexecModel

@Suite("Importer: arm64 memblock")
struct ImporterMemblockTests {
    @Test func qemuVirt() throws {
        let m = try importLog(try logText("synthetic-arm64-virt-memblock.txt"))
        #expect(m.format == .memblock)
        #expect(m.suggestedArch == .arm64)
        #expect(
            m.memory.regions == [
                reg(0x4000_0000, 0x1_3c4d_ffff, .usable),
                reg(0x1_3c4e_0000, 0x1_3c59_ffff, .usable),
                reg(0x1_3c5a_0000, 0x1_3c5a_ffff, .usable),
                reg(0x1_3c5b_0000, 0x1_3ffb_ffff, .usable),
                reg(0x1_3ffc_0000, 0x1_3fff_ffff, .usable),
            ])
        #expect(m.sourceLines.map(\.number) == [17, 18, 19, 20, 21])
        #expect(m.sources[0].note == "memblock node 0")
        #expect(m.memory.totalRAM == .gib(4))
        #expect(m.crashkernelRanges == [rng(0xdfe0_0000, 0xefdf_ffff)])
        #expect(m.crashkernelLines.map(\.number) == [10])
        #expect(m.dmaZoneLimit == PhysAddr(1 << 32))
        #expect(m.notes.contains("zone DMA: [0x0000000040000000-0x00000000ffffffff]"))
        #expect(m.notes.contains("zone DMA32: empty"))
        #expect(m.notes.contains("line 22: Initmem setup node 0 [mem 0x0000000040000000-0x000000013fffffff]"))
    }

    @Test func dmaLimitFromDMA32WhenDMAIsEmpty() throws {
        let m = try importLog(
            """
            Zone ranges:
              DMA      empty
              DMA32    [mem 0x0000000080000000-0x00000000ffffffff]
              Normal   [mem 0x0000000100000000-0x000000017fffffff]
            Movable zone start for each node
            Early memory node ranges
              node   0: [mem 0x0000000080000000-0x00000000ffffffff]
              node   1: [mem 0x0000000100000000-0x000000017fffffff]
            """)
        #expect(m.dmaZoneLimit == PhysAddr(1 << 32))
        #expect(m.sources.map(\.note) == ["memblock node 0", "memblock node 1"])
        let n = try importLog("Early memory node ranges\n  node   0: [mem 0x0000000040000000-0x000000007fffffff]\n")
        #expect(n.dmaZoneLimit == nil)
        #expect(n.memory.regions == [reg(0x4000_0000, 0x7fff_ffff, .usable)])
    }

    @Test func malformedLines() throws {
        let cases: [(String, String)] = [
            ("  node   0: [mem 0x0000000080000000-]", "expected the end address"),
            ("  node   0: [mem 0x0000000080000000-0x00000000ffffffff] extra", "unexpected \" extra\""),
            ("  node   0: 0x0000000080000000-0x00000000ffffffff", "expected \"[mem 0x…-0x…]\""),
            ("  node   0: [mem 0x0000000040000000-0x000000004fffffff]", "overlaps"),
        ]
        for (bad, expected) in cases {
            let text =
                "Early memory node ranges\n  node   0: [mem 0x0000000040000000-0x000000007fffffff]\n" + bad + "\n"
            let e = try #require(importError(text, .memblock), "\(bad)")
            #expect(e.line == 3, "\(bad)")
            #expect(e.message.contains(expected), "\(bad): \(e.message)")
        }
        let z = importError("Zone ranges:\n  DMA      [mem 0x0000000040000000-0xzz]\n", .memblock)
        #expect(z?.line == 2)
        #expect(z?.message.hasPrefix("zone DMA: ") == true)
        #expect(
            importError("Zone ranges:\n  DMA      empty\n", .memblock)?.message.hasPrefix("no memblock node ranges")
                == true)
    }
}
