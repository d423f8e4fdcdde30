import Testing

@testable import KexecModel

private let cols = "|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"

@Suite("Importer: EFI memory map")
struct ImporterEfiTests {
    @Test func ovmfMemmap() throws {
        let m = try importLog(try logText("synthetic-ovmf-q35-efi-memmap.txt"))
        #expect(m.format == .efi)
        #expect(
            m.memory.regions == [
                reg(0x0, 0x9_ffff, .usable),
                reg(0x10_0000, 0x7f_ffff, .usable),
                reg(0x80_0000, 0x80_7fff, .nvs),
                reg(0x80_8000, 0x80_afff, .usable),
                reg(0x80_b000, 0x80_bfff, .nvs),
                reg(0x80_c000, 0x81_0fff, .usable),
                reg(0x81_1000, 0x8f_ffff, .nvs),
                reg(0x90_0000, 0x7d0b_ffff, .usable),
                reg(0x7d0c_0000, 0x7e6c_3fff, .reserved),
                reg(0x7e6c_4000, 0x7e6d_5fff, .acpi),
                reg(0x7e6d_6000, 0x7e6f_9fff, .nvs),
                reg(0x7e6f_a000, 0x7f8f_0fff, .usable),
                reg(0x7f8f_1000, 0x7ff7_7fff, .reserved),
                reg(0x7ff7_8000, 0x7fff_ffff, .nvs),
                reg(0xb000_0000, 0xbfff_ffff, .reserved),
                reg(0xffc0_0000, 0xffff_ffff, .reserved),
                reg(0x1_0000_0000, 0x1_7fff_ffff, .usable),
            ])
        // mem00 (Boot Code) and mem01 (Conventional) merged; mem08-mem13 too.
        #expect(m.sources[0].lines.map(\.number) == [3, 4])
        #expect(m.sources[7].lines.map(\.number) == [11, 12, 13, 14, 15, 16])
        #expect(m.sources[0].note == "EFI Boot Code; EFI Conventional")
        #expect(m.sources[8].note == "EFI Runtime Data [RUN]; EFI Runtime Code [RUN]; EFI Reserved")
        #expect(m.sources[14].note == "EFI MMIO [RUN]")
        #expect(m.notes == ["merged 11 EFI entries into the adjacent entry of the same type"])
        #expect(m.suggestedArch == nil)
        #expect(m.crashkernelRanges == [])
    }

    @Test func typesAndAttributes() throws {
        let m = try importLog(
            """
            efi: mem00: [Conventional|   |  |  |SP|  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000100000000-0x00000001ffffffff] (4096MB)
            efi: mem01: [Conventional|   |  |  |SP|  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000200000000-0x00000002ffffffff] (4096MB)
            efi: mem02: [Conventional|   |MR|  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000300000000-0x00000003ffffffff] (4096MB)
            efi: mem03: [Conventional|   |HP|  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000400000000-0x00000004ffffffff] (4096MB)
            efi: mem04: [Persistent  |   |  |  |  |NV|  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000500000000-0x00000005ffffffff] (4096MB)
            efi: mem05: [Unusable    \(cols) range=[0x0000000600000000-0x00000006000fffff] (1MB)
            efi: mem06: [MMIO Port   |RUN|  |  |  |  |  |  |  |  |   |  |  |  |UC] range=[0x0000000700000000-0x00000007000fffff] (1MB)
            efi: mem07: [PAL Code    \(cols) range=[0x0000000800000000-0x00000008000fffff] (1MB)
            efi: mem08: [Unaccepted  \(cols) range=[0x0000000900000000-0x00000009000fffff] (1MB)
            efi: mem09: [type=20     \(cols) range=[0x0000000a00000000-0x0000000a000fffff] (1MB)
            efi: mem10: [Conventional|attr=0x8000000000040008] range=[0x0000000b00000000-0x0000000b000fffff] (1MB)
            efi: mem11: [Reserved    \(cols) range=[0x0000000c00000000-0x0000000bffffffff] (invalid)
            efi: mem12: [Loader Code \(cols) range=[0x0000000000000000-0x0000000000000fff] (0MB)
            efi: mem13: [ACPI Reclaim\(cols) range=[0x0000000000001000-0x0000000000001fff] (0MB)
            """, .efi)
        #expect(
            m.memory.regions == [
                reg(0x0, 0xfff, .usable),
                reg(0x1000, 0x1fff, .acpi),
                // Soft-reserved entries never merge (e820_nomerge).
                reg(0x1_0000_0000, 0x1_ffff_ffff, .softReserved),
                reg(0x2_0000_0000, 0x2_ffff_ffff, .softReserved),
                reg(0x3_0000_0000, 0x4_ffff_ffff, .usable),
                reg(0x5_0000_0000, 0x5_ffff_ffff, .persistent),
                reg(0x6_0000_0000, 0x6_000f_ffff, .unusable),
                reg(0x7_0000_0000, 0x7_000f_ffff, .reserved),
                reg(0x8_0000_0000, 0x8_000f_ffff, .reserved),
                reg(0x9_0000_0000, 0x9_000f_ffff, .usable),
                reg(0xb_0000_0000, 0xb_000f_ffff, .softReserved),
            ])
        #expect(m.sources[2].note == "EFI Conventional [SP]")
        #expect(m.sources[4].note == "EFI Conventional [MR]; EFI Conventional [HP]")
        #expect(m.sources[5].note == "EFI Persistent [NV]")
        #expect(m.sources[7].note == "EFI MMIO Port [RUN]")
        #expect(m.sources[10].note == "EFI Conventional [RUN SP attr=0x8000000000040008]")
        #expect(
            m.notes == [
                "merged 1 EFI entries into the adjacent entry of the same type",
                "dropped 1 entry the kernel marked (invalid): line 12",
                "skipped EFI types the kernel does not put in its memory map: line 10 (type=20)",
            ])
    }

    @Test func arm64Format() throws {
        let m = try importLog(
            """
            [    0.000000] efi: Processing EFI memory map:
            [    0.000000] efi:   0x000009000000-0x000009000fff [MMIO        |RUN|  |  |  |  |  |  |  |  |   |  |  |  |UC]
            [    0.000000] efi:   0x000040000000-0x00004000ffff [Conventional\(cols)*
            [    0.000000] efi:   0x000040010000-0x00004003ffff [Loader Data \(cols)*
            [    0.000000] efi:   0x000040040000-0x00004004ffff [Runtime Code|RUN|  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]
            [    0.000000] crashkernel reserved: 0x00000000dfe00000 - 0x00000000efe00000 (256 MB)
            """)
        #expect(m.format == .efi)
        #expect(m.suggestedArch == .arm64)
        #expect(
            m.memory.regions == [
                reg(0x900_0000, 0x900_0fff, .reserved), reg(0x4000_0000, 0x4003_ffff, .usable),
                reg(0x4004_0000, 0x4004_ffff, .reserved),
            ])
        #expect(m.crashkernelRanges == [rng(0xdfe0_0000, 0xefdf_ffff)])
    }

    @Test func oldFormat() throws {
        let m = try importLog(
            """
            efi: mem00: type=7, attr=0xf, range=[0x0000000000000000-0x00000000000a0000) (0MB)
            efi: mem01: type=5, attr=0x800000000000000f, range=[0x00000000000a0000-0x0000000000100000) (0MB)
            """)
        #expect(m.memory.regions == [reg(0, 0x9_ffff, .usable), reg(0xa_0000, 0xf_ffff, .reserved)])
        #expect(m.sources[1].note == "EFI Runtime Code [RUN]")
    }

    @Test func malformedLines() throws {
        let good = "efi: mem00: [Conventional\(cols) range=[0x0000000000000000-0x0000000000000fff] (0MB)"
        let cases: [(String, String)] = [
            (
                "efi: mem01: [Bogus Type  \(cols) range=[0x0000000000001000-0x0000000000001fff] (0MB)",
                "unknown EFI memory type \"Bogus Type\""
            ),
            (
                "efi: mem01: [Conventional\(cols) range=[0x0000000000100000-0x00000000001fffff] (2MB)",
                "the size 2MB does not match the range (1MB)"
            ),
            ("efi: mem01: [Conventional\(cols) range=[0x0000000000002000-0x0000000000001fff] (0MB)", "inverted range"),
            (
                "efi: mem01: [Conventional\(cols) rng=[0x0000000000001000-0x0000000000001fff] (0MB)",
                "expected \" range=["
            ),
            (
                "efi: mem01: Conventional range=[0x0000000000001000-0x0000000000001fff] (0MB)",
                "expected \"[type|attributes]\""
            ),
            (
                "efi: mem01: [Conventional|attr=0xzz] range=[0x0000000000001000-0x0000000000001fff] (0MB)",
                "malformed EFI attributes"
            ),
            ("efi: mem01: [Conventional\(cols) range=[0x0000000000001000-0x0000000000001fff]", "expected \"] (NMB)\""),
            (
                "efi: mem01: type=7, attr=0xf, range=[0x0000000000001000-0x0000000000000fff) (0MB)",
                "is not above the start"
            ),
        ]
        for (bad, expected) in cases {
            let e = try #require(importError(good + "\n" + bad + "\n", .efi), "\(bad)")
            #expect(e.line == 2, "\(bad)")
            #expect(e.message.contains(expected), "\(bad): \(e.message)")
        }
        // Two valid entries that overlap.
        let e = importError(
            good + "\nefi: mem01: [Conventional\(cols) range=[0x0000000000000000-0x0000000000001fff] (0MB)\n", .efi)
        #expect(e?.line == 2)
        #expect(e?.message.contains("overlaps") == true)
        #expect(
            importError("efi: EFI v2.7 by EDK II\n", .efi)?.message.hasPrefix("no EFI memory map entries found") == true
        )
    }
}
