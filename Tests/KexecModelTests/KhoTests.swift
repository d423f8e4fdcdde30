import Foundation
import Testing

@testable import KexecModel

/// `machine.kho`: decoding, the errors that name their field, kho_scratch= parsing, the scratch
/// areas kho_reserve_scratch gives, the version rules, and the KHO lines an imported log holds.
@Suite struct KhoTests {
    static let memory = """
          memory:
            - { range: 0x0000000000000000-0x000000000009ffff, type: usable }
            - { range: 0x0000000000100000-0x00000000bfffffff, type: usable }
            - { range: 0x00000000c0000000-0x00000000ffffffff, type: reserved }
            - { range: 0x0000000100000000-0x00000001ffffffff, type: usable }
        """

    static func yaml(kernel: String = "6.18", extra: String = "", kho: String) -> String {
        """
        name: kho
        machine:
          arch: x86_64
          kernel: "\(kernel)"
        \(memory)
        \(extra)
          kho:
        \(kho)
        """
    }

    static func decode(_ y: String) throws -> Scenario {
        try FixtureDecoder.decode(yaml: y, file: "kho.yaml", baseDirectory: "")
    }

    static func error(_ y: String) -> InputError? {
        do throws(InputError) {
            _ = try FixtureDecoder.decode(yaml: y, file: "kho.yaml", baseDirectory: "")
            return nil
        } catch {
            return error
        }
    }

    @Test func decodesParameterPreservedPoolAndChecks() throws {
        let sc = try Self.decode(
            Self.yaml(
                kho: """
                        param: "kho_scratch=64M,256M,0x8000000"
                        preserved:
                          - { range: 0x120000000+4MiB, owner: "memfd session 1" }
                          - { range: 0x1c0003000+0x5000, owner: "memfd session 2" }
                        kfence_pool: 0xbfc00000+2MiB
                        debug_checks: false
                    """))
        let kho = try #require(sc.machine.kho)
        #expect(kho.scratch == .parameter(.sizes(lowmem: .mib(64), global: .mib(256), perNode: .mib(128))))
        #expect(kho.preserved.map(\.owner) == ["memfd session 1", "memfd session 2"])
        #expect(
            kho.preserved.map(\.range.description) == [
                "[0x0000000120000000-0x00000001203fffff]", "[0x00000001c0003000-0x00000001c0007fff]",
            ])
        #expect(kho.preserved[1].source?.field == "machine.kho.preserved[1]")
        #expect(kho.kfencePool == AddressRange(start: PhysAddr(0xbfc0_0000), size: .mib(2)))
        #expect(kho.debugChecks == false)
        // Without scratch or param: kho_scratch=200%, and checks on.
        let d = try Self.decode(Self.yaml(extra: "  memblock_reserved: [0x1000000+32MiB]", kho: "    preserved: []"))
        #expect(d.machine.kho?.scratch == .parameter(.scale(200)))
        #expect(d.machine.kho?.debugChecks == true)
    }

    @Test func errorsNameTheField() {
        let old = Self.error(Self.yaml(kernel: "6.12", kho: "    param: \"kho_scratch=16M,16M,16M\""))
        #expect(old?.field == "machine.kho")
        #expect(old?.line == 11)
        #expect(old?.message.contains("mainline from v6.16; this machine's kernel is 6.12") == true)

        let cases: [(String, String, String)] = [
            (
                "    preserved: [{ range: 0x120000800+4KiB, owner: a }]", "machine.kho.preserved[0].range",
                "not page aligned"
            ),
            (
                "    preserved: [{ range: 0xc0000000+4KiB, owner: a }]", "machine.kho.preserved[0].range",
                "not inside usable RAM"
            ),
            (
                "    preserved: [{ range: 0x120000000+8KiB, owner: a }, { range: 0x120001000+4KiB, owner: b }]",
                "machine.kho.preserved[1].range", "overlaps [0x0000000120000000-0x0000000120001fff] preserved by \"a\""
            ),
            (
                "    preserved: [{ range: 0x120000000+8KiB }]", "machine.kho.preserved[0].owner",
                "missing required field"
            ),
            ("    param: \"kho_scratch=1,2\"", "machine.kho.param", "expected three sizes"),
            ("    param: \"kho_scratch=0,0,0\"", "machine.kho.param", "all three sizes are 0"),
            ("    param: \"kho_scratch=12%x\"", "machine.kho.param", "expected three sizes"),
            ("    param: \"scratch=1G,1G,1G\"", "machine.kho.param", "expected \"kho_scratch=N%\""),
            (
                "    param: \"kho_scratch=200%\"", "machine.kho.param",
                "scales the kernel's own memblock reservations (MEMBLOCK_RSRV_KERN), and this machine lists none"
            ),
            (
                "    param: \"kho_scratch=4G,1M,1M\"", "machine.kho.param",
                "no 2MiB-aligned free range of 4GiB for the lowmem scratch area below 0xffffffff"
            ),
            ("    scratch: [0xc0000000+2MiB]", "machine.kho.scratch[0]", "not inside usable RAM"),
            (
                "    scratch: [0x100000000+2MiB]\n    param: \"kho_scratch=1M,1M,1M\"", "machine.kho",
                "not both"
            ),
            ("    kfence_pool: 0x100000000+4KiB", "machine.kho.kfence_pool", "at least 4"),
            ("    scratch_areas: []", "machine.kho.scratch_areas", "unknown key"),
        ]
        for (body, field, text) in cases {
            let e = Self.error(Self.yaml(kho: body))
            #expect(e?.field == field, "\(body)")
            #expect(e?.message.contains(text) == true, "\(body): \(e?.message ?? "no error")")
        }
    }

    @Test func parameterParsesAsTheKernelDoes() {
        #expect(KhoScratchParameter.parse("200%") == .success(.scale(200)))
        #expect(KhoScratchParameter.parse("4294967295%") == .success(.scale(4_294_967_295)))
        #expect(
            KhoScratchParameter.parse("16M,0x20000000,1g")
                == .success(.sizes(lowmem: .mib(16), global: .mib(512), perNode: .gib(1))))
        #expect(
            KhoScratchParameter.parse("0,0,8k")
                == .success(.sizes(lowmem: ByteCount(0), global: ByteCount(0), perNode: .kib(8))))
        for bad in ["", "%", "4294967296%", "12345678901%", "1,2", "1,2,3x", "a,1,1", "0,0,0"] {
            guard case .failure = KhoScratchParameter.parse(bad) else {
                Issue.record("\"\(bad)\" parsed")
                continue
            }
        }
        #expect(
            KhoScratchParameter.sizes(lowmem: .mib(16), global: .gib(1), perNode: ByteCount(0)).description
                == "kho_scratch=16M,1G,0")
    }

    /// kho_scratch=200% of 48 MiB reserved below 4 GiB and 56 MiB in all: low = 96 MiB, global =
    /// round_up(112 − 96) = 16 MiB, the one node 112 MiB; placed top-down after the array's page.
    @Test func scaleSizesAndPlacesTheAreas() throws {
        let sc = try Self.decode(
            Self.yaml(
                extra: "  memblock_reserved: [0x1000000+32MiB, 0x7f000000+16MiB, 0x180000000+8MiB]",
                kho: "    param: \"kho_scratch=200%\""))
        let r = try KhoScratchLayout.reservation(for: sc.machine).get()
        #expect(r.array == AddressRange(start: PhysAddr(0x1_ffff_f000), size: ByteCount(48)))
        #expect(
            KhoScratchLayout.describe(r.areas)
                == "lowmem 0xba000000+96MiB, global 0x1fee00000+16MiB, node0 0x1f7e00000+112MiB")
        #expect(KhoScratchLayout.kernelReservedSize(sc.machine, limit: 0xffff_ffff) == 48 << 20)
        // A reservation crossing the limit counts up to limit − base (memblock_reserved_kern_size).
        var m = sc.machine
        m.earlyReservations.ranges = [AddressRange(start: PhysAddr(0xbff0_0000), size: .mib(2))!]
        #expect(KhoScratchLayout.kernelReservedSize(m, limit: 0xbfff_ffff) == 0xf_ffff)
    }

    /// Everything reserved below 4 GiB: global = round_up(all − low) wraps to 0, and a 0-byte area
    /// still gets an address (the top of the highest free range).
    @Test func globalAreaOfZeroBytes() throws {
        let sc = try Self.decode(
            Self.yaml(extra: "  memblock_reserved: [0x1000000+32MiB]", kho: "    param: \"kho_scratch=200%\""))
        let areas = try KhoScratchLayout.areas(for: sc.machine).get()
        #expect(areas[1] == KhoScratchArea(kind: .global, addr: PhysAddr(0x2_0000_0000), size: ByteCount(0)))
        #expect(areas[1].range == nil)
        #expect(areas.map(\.size) == [.mib(64), ByteCount(0), .mib(64)])
    }

    /// Three NUMA nodes: one area in each, inside the node; arm64's low limit is arm64_dma_phys_limit − 1.
    @Test func perNodeAreasAndArm64LowLimit() throws {
        let sc = try Self.decode(
            """
            name: kho nodes
            machine:
              arch: arm64
              kernel: "7.1"
              memory:
                - { range: 0x0000000040000000-0x000000013fffffff, type: usable }
              numa_nodes: [0x40000000-0x7fffffff, 0x80000000-0xbfffffff, 0xc0000000-0x13fffffff]
              kho: { param: "kho_scratch=32M,64M,32M" }
            """)
        #expect(KhoScratchLayout.lowLimit(sc.machine) == PhysAddr(0xffff_ffff))
        let areas = try KhoScratchLayout.areas(for: sc.machine).get()
        #expect(
            KhoScratchLayout.describe(areas)
                == "lowmem 0xfde00000+32MiB, global 0x13be00000+64MiB, node0 0x7e000000+32MiB, "
                + "node1 0xbe000000+32MiB, node2 0x139e00000+32MiB")
        #expect(KhoScratchLayout.areas(fromArray: KhoScratchLayout.arrayBytes(areas)) == areas)
        let e = Self.error(
            """
            name: bad nodes
            machine:
              arch: arm64
              memory: [{ range: 0x40000000-0x13fffffff, type: usable }]
              numa_nodes: [0x40000000-0x8fffffff, 0x80000000-0xbfffffff]
            """)
        #expect(e?.field == "machine.numa_nodes[1]")
    }

    @Test func chainsDecodeAndAreChecked() throws {
        let sc = try Self.decode(
            Self.yaml(kho: "    param: \"kho_scratch=16M,16M,16M\"")
                + "\nkexec:\n  - { kernel: { size: 1MiB } }\n  - { syscall: kexec_load, segments: [{ mem: 0x1000000, memsz: 4KiB }] }\n"
        )
        #expect(sc.kexec?.syscall == .kexecFileLoad)
        #expect(sc.chain.map(\.syscall) == [.kexecLoad])
        let mid = Self.error(
            Self.yaml(kho: "    param: \"kho_scratch=16M,16M,16M\"")
                + "\nkexec:\n  - { type: crash, kernel: { size: 1MiB } }\n  - { kernel: { size: 1MiB } }\n")
        #expect(mid?.field == "kexec[0]")
        #expect(mid?.message.contains("a chain goes on only through a normal kexec_file_load") == true)
        let noKho = Self.error(
            """
            name: no kho
            machine:
              arch: x86_64
            \(Self.memory)
            kexec:
              - { kernel: { size: 1MiB } }
            """)
        #expect(noKho?.field == "kexec")
        #expect(
            noKho?.message == "expected a mapping, found a list (a list of loads is a Kexec HandOver chain, "
                + "which needs machine.kho)")
    }

    @Test func rulesByVersion() {
        func rules(_ v: String) -> KhoRules { KhoRules(version: KernelVersion(v)!) }
        #expect(!rules("6.15").available && rules("6.16").available)
        #expect(rules("6.16").abi == .chunkList(bitmapBytes: 512))
        #expect(rules("6.17.8").abi == .chunkList(bitmapBytes: 512))
        #expect(rules("6.17.8").metadataAllocator == .slab && !rules("6.17.8").hasScratchOverlapCheck)
        #expect(rules("6.17.9").abi == .chunkList(bitmapBytes: 4096))
        #expect(rules("6.17.9").metadataAllocator == .buddy && rules("6.17.9").hasScratchOverlapCheck)
        #expect(rules("6.18").abi == .chunkList(bitmapBytes: 4096) && rules("6.18").abi.compatible == "kho-v1")
        #expect(rules("7.0").abi.compatible == "kho-v1")
        #expect(rules("7.1").abi == .radixTree && rules("7.1").abi.compatible == "kho-v2")
        let names = rules("6.16").applied(handover: true, scratchPlacement: false).map(\.name)
        #expect(names == ["kho_abi", "kho_metadata", "kho_scratch_overlap", "kho_scratch_segment"])
    }

    /// The lines a KHO boot prints, and the machine fixture `import` writes from them.
    @Test func importsScratchLines() throws {
        let log = """
            [    0.000000] Linux version 6.18.0 (b@h) (gcc 14) #1 SMP
            [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
            [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable
            [    0.000000] BIOS-e820: [mem 0x0000000100000000-0x000000023fffffff] usable
            [    0.000000] KHO: Marked 0x0x00000000bc000000+0x0x0000000004000000 as scratch
            [    0.000000] KHO: Marked 0x000000022de00000+0x0000000010000000 as scratch
            [    0.000000] KHO: found kexec handover data.
            """
        let m = try BootLog.parse(log, file: "kho.log")
        let k = try #require(m.kho)
        #expect(
            k.scratch.map(\.description) == [
                "[0x00000000bc000000-0x00000000bfffffff]", "[0x000000022de00000-0x000000023ddfffff]",
            ])
        #expect(k.handedOver)
        #expect(k.lines.map(\.number) == [5, 6, 7])
        let y = MachineFixtureWriter.yaml(m, name: "kho", arch: .x86_64, logFile: "kho.log")
        #expect(
            y.contains(
                "kho:\n  scratch:\n    - 0x00000000bc000000-0x00000000bfffffff\n    - 0x000000022de00000-0x000000023ddfffff\n"
            ))
        let back = try FixtureDecoder.decode(yaml: y, file: "m.yaml", baseDirectory: "")
        #expect(back.machine.kho?.scratch == .given(k.scratch))

        let sizes = try BootLog.parse(
            log.replacingOccurrences(of: "KHO: Marked", with: "X: Marked")
                + "\n[    0.000000] KHO: scratch areas: lowmem: 16MiB global: 64MiB pernode: 32MiB", file: "kho.log")
        #expect(sizes.kho?.parameter == .sizes(lowmem: .mib(16), global: .mib(64), perNode: .mib(32)))
        let scale = try BootLog.parse(log + "\n[    0.000000] KHO: scratch scale is 150%", file: "kho.log")
        #expect(scale.kho?.parameter == .scale(150))
        guard
            case .failure(let e) = Result(catching: { try BootLog.parse(log + "\n[ 0.0] KHO: Marked 0xzz as scratch") }),
            let ie = e as? ImportError
        else {
            Issue.record("a malformed Marked line imported")
            return
        }
        #expect(ie.line == 8)
    }

    /// A scenario whose memory is imported takes the log's scratch areas when `kho` gives none.
    @Test func importedScratchIsTheDefault() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kho-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
        [    0.000000] Linux version 6.18.0 (b@h) (gcc 14) #1 SMP
        [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable
        [    0.000000] BIOS-e820: [mem 0x0000000100000000-0x000000023fffffff] usable
        [    0.000000] KHO: Marked 0x0x00000000bc000000+0x0x0000000004000000 as scratch
        """.write(to: dir.appendingPathComponent("k.log"), atomically: true, encoding: .utf8)
        let sc = try FixtureDecoder.decode(
            yaml: """
                name: imported kho
                machine:
                  arch: x86_64
                  memory: { import: { format: e820, file: k.log } }
                  kho: { preserved: [{ range: 0x180000000+4KiB, owner: a }] }
                """, file: dir.appendingPathComponent("s.yaml").path, baseDirectory: dir.path)
        #expect(sc.machine.kho?.scratch == .given([AddressRange(start: PhysAddr(0xbc00_0000), size: .mib(64))!]))
    }
}
