import Foundation
import KexecModel
import Kimage
import Testing

@testable import KexecSim

/// kexec-tools 2.0.25's own placement (`loader: kexec-tools`): its hole search, Debian's purgatory
/// footprint, the x86_64 setup_data and crash command line, the arm64 DTB edits, and the fixture
/// keys.
@Suite struct KexecToolsTests {
    static let x86Yaml = """
        name: t
        machine:
          arch: x86_64
          memory:
            - { range: 0x0-0x9fbff, type: usable }
            - { range: 0x100000-0xbfffffff, type: usable }
            - { range: 0x100000000-0x13fffffff, type: usable }
          crashkernel_ranges: [0xaf000000-0xbeffffff]
          acpi_rsdp: 0xf59b0
        kexec:
          syscall: kexec_load
          loader: kexec-tools
          kernel: { size: 3MiB, init_size: 6MiB }
          initrd: { size: 1MiB }
          cmdline: "console=ttyS0"
        """

    func decode(_ yaml: String) throws -> Scenario {
        try FixtureDecoder.decode(yaml: yaml, file: "t.yaml", baseDirectory: ".")
    }

    func planned(_ sc: Scenario) throws -> Plan {
        guard case .planned(let p) = try Planner.plan(sc) else { throw TruthError("\(sc.name): not planned") }
        return p
    }

    func layout(_ p: Plan) -> [String] {
        p.segments.map { "\($0.name)@0x\(String($0.mem.raw, radix: 16))+0x\(String($0.memsz.raw, radix: 16))" }
    }

    @Test func debianPurgatoryFootprintsFollowElfRelLoad() {
        let x = KexecToolsPurgatory.x86_64.footprint
        #expect(x.bufsz == 0x70e0 && x.memsz == 0x9000 && x.align == 0x1000)
        #expect(KexecToolsPurgatory.x86_64.entry == 0x760 && KexecToolsPurgatory.x86_64.blobOffset == 0x760)
        let a = KexecToolsPurgatory.arm64.footprint
        #expect(a.bufsz == 0x3558 && a.memsz == 0x3558 && a.align == 16)
        #expect(KexecToolsPurgatory.arm64.entry == 0x6a0 && KexecToolsPurgatory.arm64.blobOffset == 0x6a0)
    }

    @Test func locateHoleTopDownTakesTheLastRangeBottomUpTheFirst() throws {
        var m = KexecToolsMemory(ranges: [
            .init(first: 0x1000, last: 0x9_ffff, isRAM: true), .init(first: 0xa_0000, last: 0xf_ffff, isRAM: false),
            .init(first: 0x10_0000, last: 0x3ff_ffff, isRAM: true),
            .init(first: 0x1_0000_0000, last: 0x1_03ff_ffff, isRAM: true),
        ])
        #expect(
            try m.addBuffer(
                .kernel, bufsz: 0x1000, memsz: 0x20_0000, align: 0x20_0000, min: 0, max: .max, bottomUp: false)
                == 0x1_03e0_0000)
        // The next top-down buffer goes right under it, in the same range.
        #expect(
            try m.addBuffer(.initrd, bufsz: 10, memsz: 10, align: 0, min: 0, max: .max, bottomUp: false)
                == 0x1_03df_f000)
        // Bottom-up: the first range from hole_min up, page aligned.
        #expect(
            try m.addBuffer(
                .setupData, bufsz: 0x70, memsz: 0x70, align: 4096, min: 0x10_0000, max: .max, bottomUp: true)
                == 0x10_0000)
        // hole_max keeps a top-down buffer below 4 GiB.
        #expect(
            try m.addBuffer(.dtb, bufsz: 1, memsz: 1, align: 0, min: 0, max: 0xffff_ffff, bottomUp: false) == 0x3ff_f000
        )
        // mem_min / mem_max narrow every search (a crash window).
        m.memMin = 0x200_0000
        m.memMax = 0x2ff_ffff
        #expect(
            try m.addBuffer(.backup, bufsz: 1, memsz: 1, align: 0, min: 0, max: .max, bottomUp: false) == 0x2ff_f000)
        #expect(throws: Rejection.self) {
            try m.addBuffer(.kernel, bufsz: 1, memsz: 0x200_0000, align: 0, min: 0, max: .max, bottomUp: false)
        }
        do {
            try m.addBuffer(.kernel, bufsz: 1, memsz: 0x200_0000, align: 0, min: 0, max: .max, bottomUp: false)
        } catch {
            #expect(error.errno == .EFAILED)
            #expect(error.detail == "Could not find a free area of memory of 0x2000000 bytes...")
        }
        #expect(m.sorted.map(\.role) == [.setupData, .backup, .dtb, .initrd, .kernel])
    }

    @Test func addSegmentNeedsOneRamRangeAndKeepsBufszWithinMemsz() throws {
        var m = KexecToolsMemory(ranges: [
            .init(first: 0x10_0000, last: 0x1f_ffff, isRAM: true),
            .init(first: 0x20_0000, last: 0x2f_ffff, isRAM: true),
        ])
        // Adjacent ranges do not merge (only when one's end equals the next one's start).
        #expect(throws: Rejection.self) { try m.addSegment(.kernel, bufsz: 1, base: 0x1f_f000, memsz: 0x2000) }
        try m.addSegment(.kernel, bufsz: 0x5000, base: 0x10_0000, memsz: 0x1001)
        #expect(m.segments == [.init(role: .kernel, mem: 0x10_0000, memsz: 0x2000, bufsz: 0x2000)])
        try m.addSegment(.initrd, bufsz: 1, base: 0x10_1000, memsz: 0x1000)
        #expect(throws: Rejection.self) { try m.sortSegments() }
    }

    @Test func x86SetupDataGoesBottomUpFromOneMiB() throws {
        var sc = try decode(Self.x86Yaml)
        sc.machine.efiRuntimeMapEntries = 6
        let p = try planned(sc)
        #expect(
            layout(p) == [
                "setup_data@0x100000+0x1000", "efi_memmap@0x101000+0x1000", "rng_seed@0x102000+0x1000",
                "kernel@0x13f800000+0x600000", "initrd@0x13fef1000+0x100000", "boot_params@0x13fff1000+0x6000",
                "purgatory@0x13fff7000+0x9000",
            ])
        #expect(p.segments.map(\.bufsz.raw) == [0x70, 0xf0, 0x30, 0x30_0000, 0x10_0000, 0x504e, 0x70e0])
        #expect(p.purgatoryEntry == PhysAddr(0x1_3fff_7760))
        #expect(p.kernelEntry == PhysAddr(0x1_3f80_0200) && p.entryArgument == PhysAddr(0x1_3fff_1000))
        // real_mode_data: the command line at max(setup part, 4 KiB), its pointer, the initrd.
        let rm = try #require(p.segments.first { $0.role == .bootParams }?.bytes)
        #expect(Array(rm[0x5000..<0x500e]) == Array("console=ttyS0".utf8) + [0])
        #expect(rm[0x228..<0x22c].elementsEqual([0x00, 0x60, 0xff, 0x3f]) && rm[0xc8] == 1)
        #expect(rm[0x218..<0x21c].elementsEqual([0x00, 0x10, 0xef, 0x3f]) && rm[0xc0] == 1)
    }

    @Test func x86CrashLoadFillsTheCrashWindowTopDown() throws {
        var sc = try decode(Self.x86Yaml)
        sc.kexec?.type = .crash
        sc.kexec?.rngSeed = false
        let p = try planned(sc)
        #expect(
            layout(p) == [
                "kernel@0xbe800000+0x600000", "initrd@0xbee4e000+0x100000", "boot_params@0xbef4e000+0x6000",
                "purgatory@0xbef54000+0x9000", "elfcorehdr@0xbef5d000+0x4000", "backup@0xbef61000+0x9f000",
            ])
        // The backup of [0x1000, 0x9fbff] (page 0 is the kernel's, "Reserved"), the ELF core header
        // for 1 CPU, vmcoreinfo, 5 crash ranges and the kernel text.
        #expect(p.segments.map(\.bufsz.raw) == [0x30_0000, 0x10_0000, 0x5074, 0x70e0, 0x400, 0x9_ec00])
        let line = try #require(p.imageInfo.first { $0.0 == "kexec_tools_command_line" }?.1)
        #expect(line == "console=ttyS0 acpi_rsdp=0xf59b0 elfcorehdr=3128692K")
        // Under EFI (a runtime map to pass on) kexec-tools leaves acpi_rsdp= out.
        sc.machine.efiRuntimeMapEntries = 6
        let efi = try planned(sc)
        #expect(efi.imageInfo.first { $0.0 == "kexec_tools_command_line" }?.1 == "console=ttyS0 elfcorehdr=3128692K")
        #expect(layout(efi).prefix(2) == ["setup_data@0xaf000000+0x1000", "efi_memmap@0xaf001000+0x1000"])
    }

    @Test func x86FailureIsKexecToolsOwn() throws {
        var sc = try decode(Self.x86Yaml)
        sc.kexec?.type = .crash
        sc.machine.crashkernelRanges = [AddressRange(first: PhysAddr(0xbe00_0000), last: PhysAddr(0xbeff_ffff))!]
        sc.kexec?.kernel = PayloadSpec(size: .mib(3), initSize: .mib(16))
        guard case .rejected(let r, _) = try Planner.plan(sc) else {
            Issue.record("a 16 MiB kernel fits no 16 MiB crashkernel next to the rest")
            return
        }
        #expect(r.errno == .EFAILED && r.check == "kexec-tools locate_hole")
        #expect(r.detail == "Could not find a free area of memory of 0x1000000 bytes...")
    }

    @Test func crashLoadWithoutCrashkernelStopsInKexecTools() throws {
        var sc = try decode(Self.x86Yaml)
        sc.kexec?.type = .crash
        sc.machine.crashkernelRanges = []
        guard case .rejected(let r, _) = try Planner.plan(sc) else {
            Issue.record("kexec -p without a crashkernel reservation loads nothing")
            return
        }
        #expect(r.errno == .EFAILED && r.check == "kexec-tools is_crashkernel_mem_reserved")
    }

    static let arm64Yaml = """
        name: t
        machine:
          arch: arm64
          memory: [{ range: 0x40000000-0x13fffffff, type: usable }]
          memblock_reserved: [0x40000000-0x400fffff, 0x40200000-0x42ffffff]
          crashkernel_ranges: [0x60000000-0x63ffffff, 0xe0000000-0xefffffff]
        kexec:
          syscall: kexec_load
          loader: kexec-tools
          kernel: { size: 4MiB, init_size: 5MiB }
          initrd: { size: 1MiB }
          cmdline: "console=ttyAMA0"
        """

    @Test func arm64NormalLoadAndItsDtb() throws {
        let p = try planned(try decode(Self.arm64Yaml))
        #expect(
            layout(p) == [
                "kernel@0x43000000+0x500000", "initrd@0x43500000+0x100000", "dtb@0x43600000+0x1000",
                "purgatory@0x43601000+0x4000",
            ])
        #expect(p.kernelEntry == PhysAddr(0x4300_0000) && p.entryArgument == PhysAddr(0x4360_0000))
        #expect(p.purgatoryEntry == PhysAddr(0x4360_16a0))
        let dtb = try #require(p.segments.first { $0.role == .dtb })
        #expect(dtb.bufsz.raw == UInt64(dtb.bytes.count))
        let chosen = try #require(try Fdt.decode(dtb.bytes).root.child("chosen"))
        #expect(chosen.property("bootargs")?.stringValue == "console=ttyAMA0")
        #expect(chosen.property("linux,initrd-start")?.u64Value == 0x4350_0000)
        #expect(chosen.property("linux,initrd-end")?.u64Value == 0x4360_0000)
        #expect(chosen.property("linux,elfcorehdr") == nil)
    }

    @Test func arm64CrashLoadAndItsDtb() throws {
        var sc = try decode(Self.arm64Yaml)
        sc.kexec?.type = .crash
        let p = try planned(sc)
        // The kernel at the (last) crash range's start; the ELF core header at its top.
        #expect(
            layout(p) == [
                "kernel@0xe0000000+0x500000", "initrd@0xe0500000+0x100000", "dtb@0xe0600000+0x1000",
                "purgatory@0xe0601000+0x4000", "elfcorehdr@0xeffff000+0x1000",
            ])
        #expect(p.segments.last?.bufsz.raw == 0x400)
        let dtb = try #require(p.segments.first { $0.role == .dtb })
        let chosen = try #require(try Fdt.decode(dtb.bytes).root.child("chosen"))
        #expect(chosen.property("linux,elfcorehdr")?.rangesValue?.map { [$0.0, $0.1] } == [[0xefff_f000, 0x400]])
        // Both crash ranges, the last (crashk_res) first.
        #expect(
            chosen.property("linux,usable-memory-range")?.rangesValue?.map { [$0.0, $0.1] }
                == [[0xe000_0000, 0x1000_0000], [0x6000_0000, 0x400_0000]])
    }

    @Test func libfdtReusesAStringThatEndsWithTheName() throws {
        var blob = try LibfdtBlob(
            Fdt(
                root: FdtNode(
                    "", properties: [.string("model", "m")],
                    children: [
                        FdtNode("chosen", properties: [.string("xlinux,initrd-end", "")])
                    ])
            ).encode())
        let strings = blob.strings.count
        try blob.setProperty(node: "chosen", "linux,initrd-end", [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(blob.strings.count == strings)
        try blob.setProperty(node: "chosen", "bootargs", Array("a".utf8) + [0])
        #expect(blob.strings.count == strings + 9)
        blob.pack()
        let packed = blob.totalSize
        #expect(packed == blob.packedBytes.count)
        try blob.deleteProperty(node: "chosen", "bootargs")
        #expect(blob.totalSize == packed && blob.packedBytes.count == packed - 16)
        // A missing /chosen is added.
        var bare = try LibfdtBlob(Fdt(root: FdtNode("")).encode())
        try bare.setProperty(node: "chosen", "bootargs", [0])
        #expect(try bare.value(node: "chosen", "bootargs") == [0])
    }

    @Test func fixtureKeysAreChecked() throws {
        func message(_ yaml: String) -> String? {
            do {
                _ = try decode(yaml)
                return nil
            } catch let e as InputError {
                return e.message
            } catch {
                return "\(error)"
            }
        }
        let base = Self.x86Yaml
        #expect(
            message(base + "\n  segments: [{ mem: 0x100000, memsz: 0x1000 }]")
                == "segments are chosen by kexec-tools (loader: kexec-tools); leave them out")
        #expect(
            message(base.replacingOccurrences(of: "syscall: kexec_load", with: "syscall: kexec_file_load"))
                == "kexec-tools places segments for kexec_load only (kexec_file_load: the kernel places them)")
        #expect(
            message(base.replacingOccurrences(of: "  loader: kexec-tools\n", with: "") + "\n  rng_seed: false")
                == "rng_seed is for loader: kexec-tools")
        #expect(
            message(base.replacingOccurrences(of: "init_size: 6MiB", with: "setup_size: 1000"))
                == "setup_size must be (setup_sects + 1) × 512 bytes with setup_sects 1 to 255, found 1000")
        let sc = try decode(base + "\n  rng_seed: false")
        #expect(sc.kexec?.loader == .kexecTools && sc.kexec?.rngSeed == false)
        #expect(sc.machine.acpiRsdp == PhysAddr(0xf59b0))
    }
}
