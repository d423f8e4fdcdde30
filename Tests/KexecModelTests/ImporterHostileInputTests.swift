import Testing

@testable import KexecModel

/// A small deterministic generator (SplitMix64), so failures reproduce.
private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

@Suite("Importer: hostile input")
struct ImporterHostileInputTests {
    /// Mutated fixture logs: every importer returns or throws, never traps.
    @Test(arguments: [
        "synthetic-qemu-q35-4g-dmesg.txt", "synthetic-server-16g-iomem.txt", "synthetic-ovmf-q35-efi-memmap.txt",
        "synthetic-arm64-virt-memblock.txt",
    ])
    func mutatedLogs(_ name: String) throws {
        let original = Array(try logText(name).unicodeScalars)
        let alphabet = Array("0123456789abcdefxz-[]():|* =>\n\u{0}é٣".unicodeScalars)
        var g = SplitMix(state: 0x5eed ^ UInt64(original.count))
        for _ in 0..<40 {
            var s = original
            for _ in 0..<(1 + g.below(6)) {
                let i = g.below(s.count)
                switch g.below(3) {
                case 0: s[i] = alphabet[g.below(alphabet.count)]
                case 1: s.remove(at: i)
                default: s.insert(alphabet[g.below(alphabet.count)], at: i)
                }
            }
            let text = String(String.UnicodeScalarView(s))
            for format in ImportFormat.allCases {
                _ = try? BootLog.parse(text, format: format)
            }
        }
    }

    @Test func nastyLines() {
        let lines = [
            "BIOS-e820: [mem ", "BIOS-e820: [mem 0x-0x] usable",
            "BIOS-e820: [mem 0xffffffffffffffff-0xffffffffffffffff] usable",
            "BIOS-e820: [mem 0x0000000000000000-0xffffffffffffffff] usable",
            "e820: update [mem 0x0-0xffffffffffffffff] usable ==> reserved",
            "e820: remove [mem 0xffffffffffffffff-0xffffffffffffffff] usable",
            "efi: mem99999999999999999999999: [Conventional|] range=[0x0-0xfff] (0MB)",
            "efi: mem00: [type=-1|] range=[0x0-0xfff] (0MB)", "efi: mem00: [type=99999999999999999999|]",
            "efi: mem00: [", "efi: mem00: [|||||] range=[0x0-0xffffffffffffffff] (17592186044415MB)",
            "efi: mem00: type=99999999999999999999, attr=0x0, range=[0x0-0x1) (0MB)", "efi:   0x", "efi:   0x0-0x1 [",
            "ffffffffffffffff-ffffffffffffffff : System RAM", "0-ffffffffffffffff : Reserved",
            "  node 99999999999999999999: [mem 0x0-0x1]", "node 0: [mem 0xffffffffffffffff-0xffffffffffffffff]",
            "Reserving 99999999999999999999MB of memory at 1MB for crashkernel",
            "Reserving 17592186044416MB of memory at 17592186044415MB for crashkernel",
            "crashkernel reserved: 0xffffffffffffffff - 0xffffffffffffffff (0 MB)",
            "crashkernel reserved: 0x0 - 0xffffffffffffffff (17592186044415 MB)", "[", "<", "<>", "[]", " kernel: ",
            String(repeating: "[", count: 10000), String(repeating: " ", count: 10001) + "0-1 : Reserved",
        ]
        for l in lines {
            for format in ImportFormat.allCases {
                _ = try? BootLog.parse("BIOS-e820: [mem 0x0-0xfff] usable\n" + l + "\n", format: format)
                _ = try? BootLog.parse(l, format: format)
            }
        }
    }

    @Test func crashkernelNeverTraps() {
        let alphabet = Array("0123456789xXkKmMgGtTpPeE@,:- .hilowcma=crashkernel".utf8)
        var g = SplitMix(state: 42)
        let maps: [MemoryMap] = [
            try! MemoryMap([reg(0, 0x9_ffff, .usable), reg(0x10_0000, 0xbfff_ffff, .usable)]),
            try! MemoryMap([reg(0xffff_ffff_0000_0000, .max, .usable)]),
            try! MemoryMap([reg(0, .max, .usable)]),
        ]
        var emptyMessages = 0
        for _ in 0..<500 {
            let n = 1 + g.below(24)
            let s = String(decoding: (0..<n).map { _ in alphabet[g.below(alphabet.count)] }, as: UTF8.self)
            for m in maps {
                do throws(CrashkernelError) {
                    if let spec = try Crashkernel.parse(s, systemRAM: m.totalRAM) {
                        for arch in [CrashkernelArch.x86_64, .arm64(), .arm64(dmaLimit: PhysAddr(0))] {
                            _ = try? Crashkernel.reserve(spec, in: m, arch: arch)
                        }
                    }
                } catch {
                    if error.description.isEmpty { emptyMessages += 1 }
                }
            }
        }
        #expect(emptyMessages == 0)
        // Extremes.
        for s in ["16E", "15E", "0x8000000000000000@0x8000000000000000", "1E-:1E", "0-:1", "1,high 99999999999E,low"] {
            for m in maps { _ = try? Crashkernel.parse(s, systemRAM: m.totalRAM) }
        }
    }
}
