import Foundation
import KexecModel
import Kimage
import Testing

@testable import KexecSim

/// Kexec HandOver through the emulator: segments in scratch at exact addresses, the handover read
/// back from guest memory, preserved pages hashed and compared, the KFENCE bug and the
/// scratch-overlap check by version.
@Suite(.serialized) struct KhoRunTests {
    static func planned(_ sc: Scenario) throws -> Plan {
        guard case .planned(let p) = try Planner.plan(sc) else {
            Issue.record("\(sc.name) was refused")
            throw CancellationError()
        }
        return p
    }

    static func le64(_ b: [UInt8], _ o: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) }
    }

    @Test func x86LandsWithSegmentsInScratchAndSetupData() throws {
        let sc = try fixture("x86_64-kho-memfd-3-nodes.yaml")
        let p = try Self.planned(sc)
        let kho = try #require(p.kho)
        #expect(
            KhoScratchLayout.describe(kho.scratch)
                == "lowmem 0xbc000000+64MiB, global 0x32fe00000+256MiB, node0 0x138000000+128MiB, "
                + "node1 0x238000000+128MiB, node2 0x327e00000+128MiB")
        // kho_fill_kimage's segment first (top of lowmem, 64 KiB aligned), then the bzImage loader's.
        #expect(p.segments.map(\.name) == ["kho_scratch", "purgatory", "boot_params", "kernel", "initrd"])
        #expect(p.segments.map(\.mem.raw) == [0xbfff_0000, 0xbfff_b000, 0xbfff_9000, 0xbfc0_0000, 0xbfef_0000])
        #expect(p.segments[0].bufsz.raw == 0x50 && p.segments[0].bytes == kho.scratchArray)
        // boot_params: ALIGN(4096 + 21 + 30, 16) + 112 = 0x10b0 holds setup_data { next 0, type 10,
        // len 32 } and kho_data { fdt 0x33fffd000, 4096, scratch 0xbfff0000, 0x50 }; hdr.setup_data
        // points at it; the segment's bufsz has room for it (0x10e0 + 48).
        let bp = p.segments[2]
        #expect(bp.bufsz.raw == 0x10e0 + 0x30)
        #expect(Self.le64(bp.bytes, 0x250) == 0xbfff_a0b0)
        #expect(Array(bp.bytes[0x10b0..<0x10c0]) == [0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 32, 0, 0, 0])
        #expect(
            [0x10c0, 0x10c8, 0x10d0, 0x10d8].map { Self.le64(bp.bytes, $0) } == [
                0x3_3fff_d000, 0x1000, 0xbfff_0000, 0x50,
            ])
        // The KHO FDT page: kho-v2 and the radix tree's root, in first-kernel memory outside scratch.
        #expect(kho.fdt == PhysAddr(0x3_3fff_d000) && kho.mapRoot == PhysAddr(0x3_3fff_e000))
        let fdt = try Fdt.decode(kho.objects[0].bytes)
        #expect(fdt.root.property("compatible")?.stringValue == "kho-v2")
        #expect(fdt.root.property("preserved-memory-map")?.value == [0x00, 0xe0, 0xff, 0x3f, 0x03, 0, 0, 0])
        #expect(kho.blocks.count == 5)

        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed)
        let ev = r.verdict.evidenceByName
        #expect(
            ev["segments"]
                == "kho_scratch@0xbfff0000+4KiB purgatory@0xbfffb000+20KiB boot_params@0xbfff9000+8KiB "
                + "kernel@0xbfc00000+2MiB initrd@0xbfef0000+1MiB")
        #expect(
            ev["kho_handover"]
                == "setup_data at 0xbfffa0b0: type SETUP_KEXEC_KHO (10), len 32, fdt_addr 0x33fffd000, fdt_size 0x1000, "
                + "scratch_addr 0xbfff0000, scratch_size 0x50 (hdr.setup_data at boot_params 0xbfff9000 + 0x250)")
        #expect(ev["kho_fdt"] == "0x33fffd000: compatible \"kho-v2\", preserved-memory-map = 0x33fffe000")
        #expect(
            ev["kho_scratch"]?.hasPrefix("5 areas read back from the segment at 0xbfff0000: lowmem 0xbc000000+64MiB")
                == true)
        #expect(ev["kho_preserved"]?.hasPrefix("4 ranges (1542 pages) unchanged (sha256 before and after)") == true)
        #expect(ev["rule.placement_walk"]?.hasPrefix("KHO: scratch areas only") == true)
    }

    @Test func arm64LandsWithChosenProperties() throws {
        let sc = try fixture("arm64-kho-memfd-3-nodes.yaml")
        let p = try Self.planned(sc)
        #expect(p.segments.map(\.name) == ["kho_scratch", "kernel", "initrd", "dtb"])
        #expect(p.segments.map(\.mem.raw) == [0xffdf_0000, 0xfde0_0000, 0xfe00_0000, 0xffc0_0000])
        let dtb = try #require(p.segments.first { $0.role == .dtb })
        let chosen = try #require(try Fdt.decode(dtb.bytes).root.child("chosen"))
        #expect(
            chosen.property("linux,kho-fdt")?.value
                == [0, 0, 0, 1, 0x3f, 0xff, 0xd0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0])
        #expect(
            chosen.property("linux,kho-scratch")?.value
                == [0, 0, 0, 0, 0xff, 0xdf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50])
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed)
        let ev = r.verdict.evidenceByName
        #expect(
            ev["kho_handover"]
                == "/chosen of the DTB at 0xffc00000: linux,kho-fdt = <0x13fffd000 0x1000>, "
                + "linux,kho-scratch = <0xffdf0000 0x50>")
        #expect(ev["kho_fdt"] == "0x13fffd000: compatible \"kho-v2\", preserved-memory-map = 0x13fffe000")
        #expect(ev["rule.kho_handover"]?.hasPrefix("/chosen linux,kho-fdt") == true)
    }

    /// The October 2025 bug: 6.17.8's kzalloc'ed bitmap sits in the KFENCE pool in scratch and the
    /// kernel segment overwrites it; 6.18 (buddy allocator) lands the same load.
    @Test func kfencePoolMetadataByVersion() throws {
        let r = try Runner.run(try fixture("x86_64-kho-kfence-6.17.8.yaml"))
        #expect(r.verdict.kind == .strayWrite && r.verdict.address == 0xbfc0_2000)
        let ev = r.verdict.evidenceByName
        #expect(
            ev["what"]
                == "KHO metadata: preserved-memory bitmap (order 10, from 0x0), kzalloc'ed and served by KFENCE from "
                + "its pool [0x00000000bfc00000-0x00000000bfdfffff]")
        #expect(ev["preserved_range"] == "[0x0000000180000000-0x00000001803fffff]")
        #expect(ev["owner"]?.hasSuffix("describing \"memfd session 1\"") == true)
        #expect(ev["rule.kho_metadata"]?.hasPrefix("kzalloc (slab)") == true)
        #expect(ev["rule.kho_abi"]?.contains("512-byte bitmaps") == true)
        let plan = try Self.planned(try fixture("x86_64-kho-kfence-6.17.8.yaml"))
        // Two bitmaps and two chunks: KFENCE objects 0..3 at pool + 2, 4, 6, 8 pages.
        #expect(plan.kho?.kfenceObjects == 4)
        #expect(
            plan.kho?.objects.dropFirst().map(\.pa.raw).sorted() == [
                0xbfc0_2000, 0xbfc0_4000, 0xbfc0_6000, 0xbfc0_8000,
            ])

        let fixed = try Runner.run(try fixture("x86_64-kho-kfence-6.18.yaml"))
        #expect(fixed.verdict.kind == .landed)
        #expect(fixed.verdict.evidenceByName["rule.kho_metadata"]?.hasPrefix("get_zeroed_page") == true)
        #expect(fixed.verdict.evidenceByName["kho_fdt"]?.contains("\"kho-v1\"") == true)
    }

    /// Preserved memory in scratch: 6.18's check refuses it; without the check (6.16, the
    /// injection, or a kernel built without CONFIG_KEXEC_HANDOVER_DEBUG) the segment overwrites it.
    @Test func preservedInScratch() throws {
        let refused = try Runner.run(try fixture("x86_64-kho-preserved-in-scratch-6.18.yaml"))
        #expect(refused.verdict.kind == .rejected && refused.verdict.errno == "EINVAL")
        #expect(
            refused.verdict.evidenceByName["check"]
                == "kho_preserve_pages (kho_scratch_overlap, CONFIG_KEXEC_HANDOVER_DEBUG)")
        #expect(
            refused.verdict.evidenceByName["detail"]?.hasPrefix(
                "memory preserved by \"memfd session 2\" [0x00000000bfc40000-0x00000000bfc7ffff] overlaps KHO scratch "
                    + "area lowmem 0xbc000000+64MiB") == true)

        var injected = try fixture("x86_64-kho-preserved-in-scratch-6.18.yaml")
        injected.kexec?.inject = [.khoBeforeScratchCheck]
        var unchecked = try fixture("x86_64-kho-preserved-in-scratch-6.18.yaml")
        unchecked.machine.kho?.debugChecks = false
        for sc in [try fixture("x86_64-kho-preserved-in-scratch-6.16.yaml"), injected, unchecked] {
            let r = try Runner.run(sc)
            #expect(r.verdict.kind == .strayWrite && r.verdict.address == 0xbfc4_0000, "\(sc.file)")
            let ev = r.verdict.evidenceByName
            #expect(ev["what"] == "KHO preserved memory of \"memfd session 2\"")
            #expect(ev["preserved_range"] == "[0x00000000bfc40000-0x00000000bfc7ffff]")
            #expect(ev["owner"] == "memfd session 2")
            #expect(ev["first_differing_byte"] == "0xbfc40000")
        }
    }

    @Test func tooLargeForScratchNamesTheAreas() throws {
        let r = try Runner.run(try fixture("x86_64-kho-too-large-for-scratch.yaml"))
        #expect(r.verdict.kind == .rejected && r.verdict.errno == "EADDRNOTAVAIL")
        let ev = r.verdict.evidenceByName
        #expect(ev["check"] == "kho_locate_mem_hole")
        #expect(
            ev["detail"]
                == "no top-down hole of 64MiB aligned to 2MiB for kernel in [0x1000000, 0xffffffffffffffff]; with KHO a "
                + "normal image goes into the scratch areas only: lowmem 0xbf000000+16MiB, global 0x23de00000+32MiB, "
                + "node0 0x23ce00000+16MiB")
    }

    /// A first kernel that writes into a preserved page during the run: the sha256 comparison finds
    /// the page, and the evidence names the owner and the byte.
    @Test func firstKernelWriteIntoPreservedMemory() throws {
        var sc = try fixture("x86_64-kho-memfd-3-nodes.yaml")
        sc.kexec?.inject = [.firstKernelWrite(PhysAddr(0x1_c000_1010))]
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .strayWrite && r.verdict.address == 0x1_c000_1000)
        let ev = r.verdict.evidenceByName
        #expect(ev["owner"] == "memfd session 2")
        #expect(ev["preserved_range"] == "[0x00000001c0000000-0x00000001c01fffff]")
        #expect(ev["first_differing_byte"] == "0x1c0001010")
    }

    /// kexec_load hands nothing over (kho_fill_kimage is kexec_file_load's) and places nothing in
    /// scratch: a user segment over preserved memory overwrites it, and the run names the owner.
    /// Crash images get the scratch segment, in crashk_res.
    @Test func kexecLoadAndCrashImages() throws {
        var sc = try fixture("x86_64-kho-memfd-3-nodes.yaml")
        sc.kexec = KexecRequest(
            syscall: .kexecLoad,
            segments: [SegmentSpec(name: "kernel", mem: PhysAddr(0x1_2010_0000), memsz: .mib(1), bufsz: .mib(1))])
        let p = try Self.planned(sc)
        #expect(!p.segments.contains { $0.role == .khoScratch })
        #expect(p.rules.first { $0.name == "kho_handover" }?.choice.hasPrefix("none: kexec_load") == true)
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .strayWrite && r.verdict.address == 0x1_2010_0000)
        #expect(r.verdict.evidenceByName["owner"] == "memfd session 1")

        var crash = try fixture("x86_64-kho-memfd-3-nodes.yaml")
        crash.machine.crashkernelRanges = [AddressRange(start: PhysAddr(0x1_0000_0000), size: .mib(256))!]
        crash.kexec?.type = .crash
        let c = try Self.planned(crash)
        let seg = try #require(c.segments.first { $0.role == .khoScratch })
        #expect(seg.mem == PhysAddr(0x1_0fff_0000))
        #expect(c.rules.first { $0.name == "placement_walk" }?.choice.hasPrefix("crash image") == true)
    }

    /// Three loads, each from the kernel the previous one started: the later ones reuse the
    /// scratch they were handed (the same array, the same areas); a step that fails names itself.
    @Test func chainOfThree() throws {
        let sc = try fixture("x86_64-kho-chain-3.yaml")
        #expect(sc.chain.count == 2)
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed)
        let ev = r.verdict.evidenceByName
        #expect(
            ev["chain"]
                == "3 loads, 2 preserved ranges (528 pages) intact after each; 1: landed (kho_scratch@0xbfff0000+4KiB "
                + "purgatory@0xbfffb000+20KiB boot_params@0xbfff9000+8KiB kernel@0xbfc00000+2MiB initrd@0xbfef0000+1MiB); "
                + "2: landed (kho_scratch@0xbfff0000+4KiB purgatory@0xbfffb000+20KiB boot_params@0xbfff9000+8KiB "
                + "kernel@0xbfa00000+4MiB); 3: landed (kho_scratch@0xbfff0000+4KiB purgatory@0xbfffb000+20KiB "
                + "boot_params@0xbfff9000+8KiB kernel@0xbfc00000+2MiB initrd@0xbff70000+512KiB)")
        #expect(
            ev["kho_scratch"]
                == "4 areas read back from the segment at 0xbfff0000: lowmem 0xbc000000+64MiB, global "
                + "0x237e00000+128MiB, node0 0x13c000000+64MiB, node1 0x233e00000+64MiB")
        // The step-2 kernel is a KHO boot: its scratch is the handed-over array.
        var second = sc
        second.kexec = sc.chain[0]
        second.chain = []
        second.machine.kho?.scratch = .handedOver(
            try KhoScratchLayout.areas(for: sc.machine).get(),
            array: AddressRange(start: PhysAddr(0xbfff_0000), size: ByteCount(0x40))!)
        #expect(
            try Self.planned(second).segments.map(\.mem.raw) == [0xbfff_0000, 0xbfff_b000, 0xbfff_9000, 0xbfa0_0000])

        var failing = sc
        failing.chain[0].kernel = PayloadSpec(size: .mib(1), initSize: .mib(256))
        let f = try Runner.run(failing)
        #expect(f.verdict.kind == .rejected && f.verdict.errno == "EADDRNOTAVAIL")
        #expect(f.verdict.evidenceByName["chain_step"] == "step 2 of 3")
        #expect(f.verdict.summary.hasPrefix("step 2 of 3: the kernel refuses the load"))
        #expect(f.verdict.evidenceByName["chain"]?.hasPrefix("1: landed") == true)
    }

    /// `render` draws a KHO lane: the non-empty scratch areas and the preserved ranges, titled.
    @Test func renderDrawsScratchAndPreserved() throws {
        let svg = LayoutRenderer.svg(plan: try Self.planned(try fixture("x86_64-kho-memfd-3-nodes.yaml")), result: nil)
        #expect(svg.components(separatedBy: "class=\"kho-scratch\"").count - 1 == 5)
        #expect(svg.components(separatedBy: "class=\"kho-preserved\"").count - 1 == 4)
        #expect(svg.contains("<title>KHO scratch lowmem 0xbc000000+64MiB</title>"))
        #expect(svg.contains("<title>preserved by \"memfd session 3\" [0x00000002c0003000-0x00000002c0007fff]</title>"))
        #expect(svg.contains("KHO scratch / preserved"))
    }

    @Test func kernelOverrideBelow616IsAnInputError() throws {
        var sc = try fixture("x86_64-kho-memfd-3-nodes.yaml")
        sc.machine.kernel = KernelVersion(6, 12)
        #expect {
            _ = try Planner.plan(sc)
        } throws: { e in
            guard case .input(let ie) = e as? PlanError else { return false }
            return ie.field == "machine.kho"
                && ie.message == "Kexec HandOver (KHO) is in mainline from v6.16; the kernel is 6.12"
        }
    }
}
