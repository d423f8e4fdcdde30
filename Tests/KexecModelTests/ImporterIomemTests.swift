import Testing

@testable import KexecModel

@Suite("Importer: /proc/iomem")
struct ImporterIomemTests {
    @Test func server16G() throws {
        let m = try importLog(try logText("synthetic-server-16g-iomem.txt"))
        #expect(m.format == .iomem)
        #expect(
            m.memory.regions == [
                reg(0x0, 0xfff, .reserved),
                reg(0x1000, 0x9_ffff, .usable),
                reg(0xa_0000, 0xf_ffff, .reserved),
                reg(0x10_0000, 0x5c0b_5fff, .usable),
                reg(0x5c0b_6000, 0x5c0b_6fff, .nvs),
                reg(0x5c0b_7000, 0x5c0b_7fff, .reserved),
                reg(0x5c0b_8000, 0x6b8b_2fff, .usable),
                reg(0x6b8b_3000, 0x6cf8_dfff, .reserved),
                reg(0x6cf8_e000, 0x6d10_5fff, .acpi),
                reg(0x6d10_6000, 0x6d6c_6fff, .nvs),
                reg(0x6d6c_7000, 0x6e2f_efff, .reserved),
                reg(0x6e2f_f000, 0x6e2f_ffff, .usable),
                reg(0x6e30_0000, 0x6fff_ffff, .reserved),
                // e820 entries nested inside PCI windows and the local APIC still count.
                reg(0x8000_0000, 0x8fff_ffff, .reserved),
                reg(0xfe00_0000, 0xfe01_0fff, .reserved),
                reg(0xfee0_0000, 0xfee0_0fff, .reserved),
                reg(0xff00_0000, 0xffff_ffff, .reserved),
                reg(0x1_0000_0000, 0x4_7fff_ffff, .usable),
            ])
        #expect(m.sourceLines.map(\.number) == [1, 2, 3, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 22, 31, 37, 38, 41])
        #expect(m.sourceLines[13].text == "    80000000-8fffffff : Reserved")
        #expect(m.crashkernelRanges == [rng(0x4c00_0000, 0x5bff_ffff)])
        #expect(m.crashkernelLines.map(\.number) == [8])
        #expect(
            m.firstKernel == [
                rng(0x3_c6e0_0000, 0x3_c800_1f7f), rng(0x3_c820_0000, 0x3_c8cd_7fff), rng(0x3_c8e0_0000, 0x3_c925_d6ff),
                rng(0x3_c9ac_3000, 0x3_c9ff_ffff),
            ])
        #expect(
            m.notes == [
                "skipped 6 top-level device/bus ranges (not memory): PCI Bus 0000:00 (×3), IOAPIC 0, HPET 0, Local APIC",
                "ignored 6 resources nested inside memory ranges",
            ])
        #expect(m.suggestedArch == nil)
        #expect(m.memory.totalRAM.raw > 15 << 30)
    }

    @Test func everyMemoryName() throws {
        let m = try importLog(
            """
            00000000-00000fff : Reserved
            00001000-0009ffff : System RAM
            00100000-3fffffff : System RAM
            40000000-40ffffff : Persistent Memory (legacy)
              40000000-40ffffff : namespace0.0
            41000000-41ffffff : Persistent Memory
            42000000-42ffffff : Soft Reserved
              42000000-42ffffff : hmem.0
                42000000-42ffffff : dax0.0
                  42000000-42ffffff : System RAM (kmem)
            43000000-43ffffff : Unusable memory
            44000000-44ffffff : Unknown E820 type
            45000000-45ffffff : reserved
            46000000-47ffffff : RAM buffer
            48000000-48000fff : ACPI Tables
            48001000-48001fff : ACPI Non-volatile Storage
            """, .iomem)
        #expect(
            m.memory.regions.map(\.type) == [
                .reserved, .usable, .usable, .persistent, .persistent, .softReserved, .unusable, .reserved, .reserved,
                .acpi, .nvs,
            ])
        #expect(m.sources[3].note == "Persistent Memory (legacy)")
        #expect(m.sources[4].note == nil)
        #expect(m.sources[7].note == "Unknown E820 type")
        #expect(m.sources[8].note == "reserved")
        #expect(m.notes.contains("skipped 1 top-level device/bus range (not memory): RAM buffer"))
        #expect(m.notes.contains("ignored 4 resources nested inside memory ranges"))
    }

    @Test func malformedLines() throws {
        let cases: [(String, Int, String)] = [
            ("00000000-00000fff : Reserved\n  0000zz00-00000fff : Video ROM\n", 2, "expected '-' between"),
            ("00000000-00000fff : Reserved\n 00001000-0009ffff : System RAM\n", 2, "indentation of 1 spaces"),
            (
                "00000000-00000fff : Reserved\n    00000000-000000ff : deep\n", 2,
                "indented 2 levels under a resource 0 levels"
            ),
            ("  00000000-00000fff : Reserved\n", 1, "indented 1 level but no resource above encloses it"),
            ("00000000-00000fff : Reserved\n  00001000-00001fff : child\n", 2, "is not inside its parent"),
            ("00000000-00001fff : System RAM\n00001000-00002fff : Reserved\n", 2, "overlaps"),
            ("00002000-00001fff : System RAM\n", 1, "inverted range"),
            ("00000000-1ffffffffffffffff : System RAM\n", 1, "does not fit in 64 bits"),
        ]
        for (text, line, expected) in cases {
            let e = try #require(importError(text, .iomem), "\(text)")
            #expect(e.line == line, "\(text)")
            #expect(e.message.contains(expected), "\(text): \(e.message)")
        }
    }

    @Test func readWithoutRoot() {
        let e = importError(
            """
            00000000-00000000 : Reserved
            00000000-00000000 : System RAM
              00000000-00000000 : Kernel code
            """, .iomem)
        #expect(e?.message == "every address is 0: /proc/iomem was read without root (read it as root)")
    }

    @Test func noMemory() {
        let e = importError("fec00000-fec003ff : IOAPIC 0\n", .iomem)
        #expect(e?.message.hasPrefix("no memory ranges found") == true)
    }
}
