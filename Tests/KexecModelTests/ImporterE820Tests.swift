import Testing

@testable import KexecModel

@Suite("Importer: dmesg e820")
struct ImporterE820Tests {
    @Test func qemuQ35Log() throws {
        let m = try importLog(try logText("synthetic-qemu-q35-4g-dmesg.txt"))
        #expect(m.format == .e820)
        #expect(m.suggestedArch == .x86_64)
        #expect(
            m.memory.regions == [
                reg(0x0, 0xfff, .reserved),
                reg(0x1000, 0x9_fbff, .usable),
                reg(0x9_fc00, 0x9_ffff, .reserved),
                reg(0xf_0000, 0xf_ffff, .reserved),
                reg(0x10_0000, 0x2a1_f017, .usable),
                reg(0x2a1_f018, 0x2a1_f057, .usable),
                reg(0x2a1_f058, 0x7ffd_efff, .usable),
                reg(0x7ffd_f000, 0x7fff_ffff, .reserved),
                reg(0xb000_0000, 0xbfff_ffff, .reserved),
                reg(0xfed1_c000, 0xfed1_ffff, .reserved),
                reg(0xfeff_c000, 0xfeff_ffff, .reserved),
                reg(0xfffc_0000, 0xffff_ffff, .reserved),
                reg(0x1_0000_0000, 0x1_7fff_ffff, .usable),
            ])
        // The reserve setup_data table (lines 18-29) replaced the BIOS-e820 one; line 37 split the first entry.
        #expect(m.sourceLines.map(\.number) == [37, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29])
        #expect(m.sources[1].lines.map(\.number) == [18, 37])
        #expect(m.sources[0].lines[0].message == "e820: update [mem 0x00000000-0x00000fff] usable ==> reserved")
        #expect(m.memory.regions[0].source == SourceLocation(file: "log.txt", line: 37, field: "e820"))
        #expect(m.notes == ["line 18: the reserve setup_data map replaces the BIOS-e820 map from line 4"])
        #expect(m.crashkernelRanges == [rng(0x6f00_0000, 0x7eff_ffff)])
        #expect(m.crashkernelLines.map(\.number) == [52])
        #expect(m.memory.totalRAM == ByteCount(0xfff7_dc00))

        // crashkernel=256M reserved on the imported map lands where the log says the kernel put it.
        let spec = try #require(try Crashkernel.parse("256M", systemRAM: m.memory.totalRAM))
        #expect(try Crashkernel.reserve(spec, in: m.memory, arch: .x86_64) == m.crashkernelRanges)
    }

    @Test func prefixesAndTimestamps() throws {
        let plain = "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"
        let variants = [
            plain,
            "[    0.000000] " + plain,
            "<6>[    0.000000] " + plain,
            "[    0.000000] [    T0] " + plain,
            "kern  :info  : [    0.000000] " + plain,
            "[Mon May 20 10:00:00 2024] " + plain,
            "May 20 10:00:00 box kernel: " + plain,
            "2024-05-20T10:00:00+0000 box kernel: " + plain,
            "kernel: " + plain,
            "x86/e820: " + plain,
            plain + "\r",
        ]
        for v in variants {
            let m = try importLog(v)
            #expect(m.memory.regions == [reg(0, 0x9_fbff, .usable)], "\(v)")
        }
    }

    @Test func everyTypeString() throws {
        let m = try importLog(
            """
            BIOS-e820: [mem 0x0000000000000000-0x0000000000000fff] usable
            BIOS-e820: [mem 0x0000000000001000-0x0000000000001fff] reserved
            BIOS-e820: [mem 0x0000000000002000-0x0000000000002fff] ACPI data
            BIOS-e820: [mem 0x0000000000003000-0x0000000000003fff] ACPI NVS
            BIOS-e820: [mem 0x0000000000004000-0x0000000000004fff] unusable
            BIOS-e820: [mem 0x0000000000005000-0x0000000000005fff] persistent (type 7)
            BIOS-e820: [mem 0x0000000000006000-0x0000000000006fff] persistent (type 12)
            BIOS-e820: [mem 0x0000000000007000-0x0000000000007fff] soft reserved
            BIOS-e820: [mem 0x0000000000008000-0x0000000000008fff] type 20
            BIOS-e820: [mem 0x0000000000009000-0x0000000000009fff] type 13
            """)
        #expect(
            m.memory.regions.map(\.type) == [
                .usable, .reserved, .acpi, .nvs, .unusable, .persistent, .persistent, .softReserved, .reserved,
                .reserved,
            ])
        #expect(m.sources[5].note == "e820 type 7")
        #expect(m.sources[6].note == "e820 type 12")
        #expect(m.sources[8].note == "e820 type 20 (unknown to the kernel: reserved, never RAM)")
        #expect(m.sources[0].note == nil)
    }

    private let base = """
        BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable
        BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable
        BIOS-e820: [mem 0x00000000c0000000-0x00000000c00fffff] ACPI data

        """

    @Test func updateOnlyTouchesTheOldType() throws {
        let m = try importLog(base + "e820: update [mem 0x00000000-0xffffffff] usable ==> reserved\n")
        #expect(
            m.memory.regions == [
                reg(0, 0x9_ffff, .reserved), reg(0x10_0000, 0xbfff_ffff, .reserved),
                reg(0xc000_0000, 0xc00f_ffff, .acpi),
            ])
        #expect(m.sourceLines.map(\.number) == [4, 4, 3])
    }

    @Test func updateSplitsARange() throws {
        let m = try importLog(base + "e820: update [mem 0x10000000-0x1fffffff] usable ==> unusable\n")
        #expect(
            m.memory.regions == [
                reg(0, 0x9_ffff, .usable),
                reg(0x10_0000, 0xfff_ffff, .usable),
                reg(0x1000_0000, 0x1fff_ffff, .unusable),
                reg(0x2000_0000, 0xbfff_ffff, .usable),
                reg(0xc000_0000, 0xc00f_ffff, .acpi),
            ])
        #expect(m.sources.map { $0.lines.map(\.number) } == [[1], [2, 4], [4], [2, 4], [3]])
    }

    @Test func updatesAndRemovesApplyInOrder() throws {
        // Update then remove: the range becomes reserved, then the reserved part goes.
        let a = try importLog(
            base + "e820: update [mem 0x10000000-0x1fffffff] usable ==> reserved\n"
                + "e820: remove [mem 0x10000000-0x1fffffff] reserved\n")
        #expect(
            a.memory.regions == [
                reg(0, 0x9_ffff, .usable), reg(0x10_0000, 0xfff_ffff, .usable), reg(0x2000_0000, 0xbfff_ffff, .usable),
                reg(0xc000_0000, 0xc00f_ffff, .acpi),
            ])
        // Remove first: nothing reserved there yet; the update then makes it reserved.
        let b = try importLog(
            base + "e820: remove [mem 0x10000000-0x1fffffff] reserved\n"
                + "e820: update [mem 0x10000000-0x1fffffff] usable ==> reserved\n")
        #expect(b.memory.regions[2] == reg(0x1000_0000, 0x1fff_ffff, .reserved))
        #expect(b.memory.regions.count == 5)
        // A remove without a type takes every type; usable ==> usable changes nothing.
        let c = try importLog(
            base + "e820: update [mem 0x00001000-0x00001fff] usable ==> usable\n"
                + "e820: remove [mem 0xbff00000-0xc007ffff] \n")
        #expect(
            c.memory.regions == [
                reg(0, 0x9_ffff, .usable), reg(0x10_0000, 0xbfef_ffff, .usable), reg(0xc008_0000, 0xc00f_ffff, .acpi),
            ])
        // mem=3G, as the kernel prints it.
        let d = try importLog(base + "e820: remove [mem 0xc0000000-0xfffffffffffffffe] usable\n")
        #expect(
            d.memory.regions == [
                reg(0, 0x9_ffff, .usable), reg(0x10_0000, 0xbfff_ffff, .usable), reg(0xc000_0000, 0xc00f_ffff, .acpi),
            ])
    }

    @Test func efiRemoveTakesOnlyReserved() throws {
        let m = try importLog(
            """
            BIOS-e820: [mem 0x0000000000000000-0x000000007fffffff] usable
            BIOS-e820: [mem 0x00000000b0000000-0x00000000bfffffff] reserved
            BIOS-e820: [mem 0x00000000ffc00000-0x00000000ffffffff] reserved
            efi: Remove mem25: MMIO range=[0xb0000000-0xbfffffff] (256MB) from e820 map
            e820: remove [mem 0xb0000000-0xbfffffff] reserved
            efi: Not removing mem26: MMIO range=[0xffc00000-0xffffffff] (4096KB) from e820 map
            efi: Remove mem27: MMIO range=[0x70000000-0x7fffffff] (256MB) from e820 map
            """)
        #expect(m.memory.regions == [reg(0, 0x7fff_ffff, .usable), reg(0xffc0_0000, 0xffff_ffff, .reserved)])
    }

    @Test func laterTablesReplaceEarlierOnes() throws {
        let m = try importLog(
            """
            BIOS-provided physical RAM map:
            BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
            BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable
            e820: update [mem 0x00000000-0x00000fff] usable ==> reserved
            user-defined physical RAM map:
            user: [mem 0x0000000000000000-0x000000000009fbff] usable
            user: [mem 0x0000000000100000-0x000000003fffffff] usable
            modified physical RAM map:
            modified: [mem 0x0000000000000000-0x0000000000000fff] reserved
            modified: [mem 0x0000000000001000-0x000000000009fbff] usable
            modified: [mem 0x0000000000100000-0x000000003fffffff] usable
            """)
        #expect(
            m.memory.regions == [
                reg(0, 0xfff, .reserved), reg(0x1000, 0x9_fbff, .usable), reg(0x10_0000, 0x3fff_ffff, .usable),
            ])
        #expect(m.sourceLines.map(\.number) == [9, 10, 11])
        #expect(
            m.notes == [
                "line 6: the user map replaces the BIOS-e820 map from line 2",
                "line 9: the modified map replaces the user map from line 6",
            ])
    }

    @Test func overlappingEntriesLaterWins() throws {
        let m = try importLog(
            """
            BIOS-e820: [mem 0x0000000000000000-0x000000007fffffff] usable
            BIOS-e820: [mem 0x0000000010000000-0x000000001fffffff] reserved
            """)
        #expect(
            m.memory.regions == [
                reg(0, 0xfff_ffff, .usable), reg(0x1000_0000, 0x1fff_ffff, .reserved),
                reg(0x2000_0000, 0x7fff_ffff, .usable),
            ])
        #expect(m.notes == ["line 2: overlaps an earlier entry of the same table; the later line wins"])
    }

    @Test func kexecTableUpdateIsUndone() throws {
        let m = try importLog(
            base + """
                e820: update [mem 0x0009f000-0x0009ffff] usable ==> reserved
                update e820_table_kexec for e820__memblock_alloc_reserved()
                """)
        #expect(m.memory.regions[0] == reg(0, 0x9_ffff, .usable))
        #expect(m.notes == ["line 5: the e820 update at line 4 changed only the kexec table: ignored"])
    }

    @Test func oldFormatHasExclusiveEnds() throws {
        let m = try importLog(
            """
            BIOS-provided physical RAM map:
             BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)
             BIOS-e820: 000000000009fc00 - 00000000000a0000 (reserved)
             BIOS-e820: 0000000000100000 - 000000007fff0000 (usable)
             BIOS-e820: 000000007fff0000 - 000000007fff3000 (ACPI NVS)
             BIOS-e820: 000000007fff3000 - 0000000080000000 (ACPI data)
            """)
        #expect(
            m.memory.regions == [
                reg(0, 0x9_fbff, .usable), reg(0x9_fc00, 0x9_ffff, .reserved), reg(0x10_0000, 0x7ffe_ffff, .usable),
                reg(0x7fff_0000, 0x7fff_2fff, .nvs), reg(0x7fff_3000, 0x7fff_ffff, .acpi),
            ])
    }

    @Test func crashkernelLines() throws {
        let m = try importLog(
            base + """
                [    0.010000] Reserving 256MB of low memory at 2800MB for crashkernel (low RAM limit: 4096MB)
                [    0.010001] Reserving 1024MB of memory at 2048MB for crashkernel (System RAM: 3072MB)
                """)
        #expect(m.crashkernelRanges == [rng(0x8000_0000, 0xbfff_ffff), rng(0xaf00_0000, 0xbeff_ffff)])
        #expect(m.crashkernelLines.map(\.number) == [5, 4])
        let g = try importLog(
            base + """
                crashkernel low memory reserved: 0x00000000af000000 - 0x00000000bf000000 (256 MB)
                crashkernel reserved: 0x0000000100000000 - 0x0000000140000000 (1024 MB)
                """)
        #expect(g.crashkernelRanges == [rng(0xaf00_0000, 0xbeff_ffff), rng(0x1_0000_0000, 0x1_3fff_ffff)])
    }

    @Test func malformedLines() throws {
        let cases: [(String, String)] = [
            ("BIOS-e820: [mem 0x0000000000000000-0x00000000000zzfff] usable", "expected ']' after the [mem …] range"),
            ("BIOS-e820: [mem 0x0000000000002000-0x0000000000001fff] usable", "inverted range"),
            ("BIOS-e820: [mem 0x0000000000000000-0x0000000000000fff] bogus", "unknown e820 type \"bogus\""),
            ("BIOS-e820: [mem 0x0000000000000000-0x1ffffffffffffffff] usable", "does not fit in 64 bits"),
            ("BIOS-e820: [mem 0x0000000000000000 0x0000000000000fff] usable", "expected '-'"),
            ("BIOS-e820: [mem 0x0000000000000000-0x0000000000000fff] type x", "unknown e820 type \"type x\""),
            ("e820: update [mem 0x00000000-0x00000fff] usable => reserved", "expected \"<old type> ==> <new type>\""),
            ("e820: update [mem 0x00000000-0x00000fff] usable ==> weird", "unknown e820 type \"weird\""),
            ("e820: remove [mem 0x00000000-] usable", "expected the end address"),
            ("efi: Remove mem25: MMIO range=[0xb0000000-0xbfffffff] (255MB) from e820 map", "does not match the range"),
            ("Reserving 256MB of memory at xMB for crashkernel (System RAM: 4095MB)", "expected the base in MB"),
            ("crashkernel reserved: 0x1000000 - 0x2000000 (5 MB)", "the size 5 MB does not match the range"),
            ("crashkernel reserved: 0x2000000 - 0x1000000 (16 MB)", "is not above the start"),
        ]
        for (bad, expected) in cases {
            let text = "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\nsomething else\n" + bad + "\n"
            let e = try #require(importError(text, .e820), "\(bad)")
            #expect(e.line == 3, "\(bad)")
            #expect(e.text == bad)
            #expect(e.message.contains(expected), "\(bad): \(e.message)")
            #expect(e.description.hasPrefix("line 3: "))
        }
    }

    @Test func noTable() {
        let e = importError("hello\nworld\ne820: update [mem 0x00000000-0x00000fff] usable ==> reserved\n", .e820)
        #expect(
            e
                == ImportError(
                    line: nil, text: nil,
                    message: "no e820 table found (expected \"BIOS-e820: [mem 0x…-0x…] usable\" lines)"))
        #expect(importError("hello\n")?.message.hasPrefix("no memory map found") == true)
    }

    @Test func autoDetection() throws {
        #expect(BootLog.detect(try logText("synthetic-qemu-q35-4g-dmesg.txt")) == .e820)
        #expect(BootLog.detect(try logText("synthetic-server-16g-iomem.txt")) == .iomem)
        #expect(BootLog.detect(try logText("synthetic-ovmf-q35-efi-memmap.txt")) == .efi)
        #expect(BootLog.detect(try logText("synthetic-arm64-virt-memblock.txt")) == .memblock)
        #expect(BootLog.detect("Linux version 6.6\ncrashkernel reserved: 0x1 - 0x2 (0 MB)\n") == nil)
        // The first recognisable line decides: memblock lines before e820 ones.
        #expect(BootLog.detect("Zone ranges:\nBIOS-e820: [mem 0x0-0xfff] usable\n") == .memblock)
    }
}
