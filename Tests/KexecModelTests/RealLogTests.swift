import Foundation
import Testing

@testable import KexecModel

/// The real boot-log excerpts in Fixtures/logs (each names its public source on line 1), imported
/// as the kernel's printk lines say: region counts, edges, crashkernel ranges and notes.
@Suite("Real boot logs")
struct RealLogTests {
    static let real = [
        "qemu-q35-kvm-128g-dmesg.txt", "thinkpad-t14-gen1-linux-7.1-dmesg.txt", "hpe-uv-4tib-dmesg.txt",
        "supermicro-epyc-1tib-crashkernel-dmesg.txt", "hp-server-memmap-pmem-iomem.txt",
        "pmem-docs-memmap-type12-dmesg.txt", "rpi4-4gb-memblock.txt", "nuvoton-npcm8xx-bmc-memblock.txt",
    ]

    func usable(_ m: ImportedMachine) -> [Region] { m.memory.regions.filter { $0.type == .usable } }

    @Test(arguments: real) func firstLineNamesThePublicSource(_ name: String) throws {
        let first = try #require(try logText(name).split(separator: "\n").first)
        #expect(first.hasPrefix("# source: https://"))
    }

    @Test func qemuGuestWith128GiB() throws {
        let m = try importLog(try logText("qemu-q35-kvm-128g-dmesg.txt"))
        #expect(m.format == .e820)
        #expect(m.memory.regions.count == 11)
        #expect(
            m.memory.regions.suffix(2) == [
                reg(0x1_0000_0000, 0x20_7fff_ffff, .usable), reg(0xfd_0000_0000, 0xff_ffff_ffff, .reserved),
            ])
        // 639 KiB + (0x7ffdc000 - 0x100000) + 128 GiB - 2 GiB... every usable byte of the three ranges.
        #expect(m.memory.totalRAM.raw == 0x9_fc00 + (0x7ffd_c000 - 0x10_0000) + (0x20_8000_0000 - 0x1_0000_0000))
    }

    /// Linux 7.x prints "System RAM" / "device reserved" and "[gap …]" lines.
    @Test func thinkpadOnLinux71() throws {
        let m = try importLog(try logText("thinkpad-t14-gen1-linux-7.1-dmesg.txt"))
        #expect(m.format == .e820)
        #expect(m.memory.regions.count == 13)
        // "e820: update [mem 0x00000000-0x00000fff] System RAM ==> device reserved" splits the first entry.
        #expect(m.memory.regions.prefix(2) == [reg(0, 0xfff, .reserved), reg(0x1000, 0x9_efff, .usable)])
        #expect(m.memory.regions.contains(reg(0xa050_3000, 0xa059_3fff, .reserved)))
        #expect(m.memory.regions.last == reg(0x1_0000_0000, 0x8_4c7f_ffff, .usable))
        // The gaps describe no memory.
        #expect(m.memory.region(containing: PhysAddr(0xaf80_0000)) == nil)
        #expect(m.memory.region(containing: PhysAddr(0xfed8_0000)) == nil)
    }

    @Test func hpeUVWith4TiB() throws {
        let m = try importLog(try logText("hpe-uv-4tib-dmesg.txt"))
        #expect(m.notes == ["line 59: the reserve setup_data map replaces the BIOS-e820 map from line 4"])
        #expect(m.memory.regions.count == 52)
        // 16 node chunks of RAM at 4 GiB steps above 4 GiB, each followed by a 4 GiB reserved hole.
        let high = usable(m).filter { $0.range.first.raw >= 0x1_0000_0000 }
        #expect(high.count == 16)
        #expect(high.last?.range == rng(0x3c0_8000_0000, 0x3ff_7fff_ffff))
        #expect(m.memory.regions.contains(reg(0x3f_8000_0000, 0x40_7fff_ffff, .reserved)))
        #expect(m.memory.totalRAM.raw > 4000 << 30 && m.memory.totalRAM.raw < 4 << 40)
    }

    /// Quoted in a mail reply: every line starts with "> ".
    @Test func epycWith1TiBAndCrashkernel() throws {
        let m = try importLog(try logText("supermicro-epyc-1tib-crashkernel-dmesg.txt"))
        #expect(m.format == .e820)
        #expect(m.memory.regions.count == 64)
        // "Reserving 256MB of memory at 624MB for crashkernel".
        #expect(m.crashkernelRanges == [rng(0x2700_0000, 0x36ff_ffff)])
        #expect(usable(m).last?.range == rng(0xe0_3000_0000, 0x100_2ff7_ffff))
    }

    @Test func legacyPmemInIomem() throws {
        let m = try importLog(try logText("hp-server-memmap-pmem-iomem.txt"))
        #expect(m.format == .iomem)
        #expect(
            m.memory.regions.filter { $0.type == .persistent }.map(\.range) == [
                rng(0x1_0000_0000, 0x1_55df_ffff), rng(0x1_5982_c000, 0x1_ffff_ffff),
            ])
        // The first kernel sits between the two halves of the pmem range (the bug of that thread).
        #expect(m.memory.regions.contains(reg(0x1_55e0_0000, 0x1_5982_bfff, .usable)))
        #expect(m.crashkernelRanges == [rng(0x6900_0000, 0x78ff_ffff), rng(0x8_5800_0000, 0x8_77ff_ffff)])
    }

    @Test func memmapUserMapWithType12() throws {
        let m = try importLog(try logText("pmem-docs-memmap-type12-dmesg.txt"))
        #expect(m.notes == ["line 11: the user map replaces the BIOS-e820 map from line 3"])
        #expect(m.memory.regions.last == reg(0x1_0000_0000, 0x3_ffff_ffff, .persistent))
        #expect(usable(m).last?.range == rng(0x10_0000, 0xbffd_ffff))
    }

    @Test func raspberryPi4() throws {
        let m = try importLog(try logText("rpi4-4gb-memblock.txt"))
        #expect(m.format == .memblock)
        #expect(m.suggestedArch == .arm64)
        #expect(m.memory.regions == [reg(0, 0x3b3f_ffff, .usable), reg(0x4000_0000, 0xfbff_ffff, .usable)])
        #expect(m.crashkernelRanges.isEmpty)
    }

    @Test func nuvotonBMCWithCrashkernel() throws {
        let m = try importLog(try logText("nuvoton-npcm8xx-bmc-memblock.txt"))
        #expect(m.memory.regions == [reg(0, 0x35fb_ffff, .usable)])
        // "crashkernel reserved: 0x0000000031e00000 - 0x0000000035e00000 (64 MB)": the end is exclusive.
        #expect(m.crashkernelRanges == [rng(0x31e0_0000, 0x35df_ffff)])
    }

    /// The 7.x table format and mail quoting, line by line.
    @Test func newE820FormatAndQuotedLines() throws {
        let m = try importLog(
            """
            > [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009efff]  System RAM
            >> [    0.000000] BIOS-e820: [mem 0x000000000009f000-0x00000000000fffff]  device reserved
            > [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff]  System RAM
            > [    0.000000] BIOS-e820: [mem 0x0000000080000000-0x00000000bfffffff]  persistent RAM (type 12)
            > [    0.000000] BIOS-e820: [gap 0x00000000c0000000-0x00000000ffffffff]
            > [    0.000012] e820: update [mem 0x00010000-0x00011fff] System RAM ==> device reserved
            """)
        #expect(
            m.memory.regions == [
                reg(0, 0xffff, .usable), reg(0x1_0000, 0x1_1fff, .reserved), reg(0x1_2000, 0x9_efff, .usable),
                reg(0x9_f000, 0xf_ffff, .reserved), reg(0x10_0000, 0x7fff_ffff, .usable),
                reg(0x8000_0000, 0xbfff_ffff, .persistent),
            ])
    }
}
