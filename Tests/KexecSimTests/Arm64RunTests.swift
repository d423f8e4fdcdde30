import KexecModel
import KexecSim
import Testing

/// arm64 through the emulator: MMU off and on land the same bytes; faults and stamps are named.
@Suite(.serialized) struct Arm64RunTests {
    func ev(_ r: RunResult) -> [String: String] { r.verdict.evidenceByName }

    @Test func mmuOffAndOnLandTheSameBytes() throws {
        let off = try Runner.run(try fixture("arm64-basic.yaml"))
        let on = try Runner.run(try fixture("arm64-mmu-on.yaml"))
        #expect(off.verdict.kind == .landed && on.verdict.kind == .landed)
        #expect(ev(off)["sha256"] == ev(on)["sha256"])
        #expect(ev(off)["segments"] == ev(on)["segments"])
        #expect(ev(on)["relocation"] == "mmu-on" && ev(off)["relocation"] == "mmu-off")
        #expect(ev(on)["x1_x2_x3"] == "0 0 0")
        // The linear map of 4 GiB with 4 KiB blocks: a level-0 table, one level-1 table (1 GiB blocks).
        #expect(ev(on)["linear_map_tables"]?.hasPrefix("2 pages") == true)
        #expect(ev(off)["linear_map_tables"] == nil)
        // Instruction counts of both relocations: the MMU-on one adds the TTBR1 switch, the
        // clean to PoC and turning the MMU off, a few thousand instructions over 2.6 million.
        func count(_ r: RunResult) -> Int? {
            ev(r)["relocation_instructions"]?.split(separator: " ").first.flatMap { Int($0) }
        }
        let nOff = try #require(count(off))
        let nOn = try #require(count(on))
        #expect(nOff > 2_000_000 && nOn > nOff && nOn - nOff < 100_000)
    }

    /// No purgatory on arm64 kexec_file_load: the stamped Image is entered, a corruption naming it.
    @Test func stampedCrashKernelIsNamed() throws {
        let r = try Runner.run(try fixture("arm64-crash-stamped.yaml"))
        #expect(r.verdict.kind == .corruption)
        #expect(ev(r)["segment"] == "kernel")
        // image_load: the synthetic Image bottom-up at crashk_res's start.
        #expect(ev(r)["address"] == "0xe0004242")
        #expect(ev(r)["offset"] == "0x4242")
        #expect(ev(r)["rule.purgatory"]?.hasPrefix("none: kexec_file_load enters the Image") == true)
    }

    @Test func protectionBlocksTheStampAndCostsBasePages() throws {
        let r = try Runner.run(try fixture("arm64-crash-protected.yaml"))
        #expect(r.verdict.kind == .landed)
        // 4 GiB at 1 GiB with 4k blocks: L0 + L1 = 2 pages. Unmapping 256 MiB at 0xe0000000 splits
        // GiB 3 into 2 MiB blocks (one L2 page) and the 128 2 MiB chunks of the region into base
        // pages (128 L3 pages): 131.
        #expect(
            ev(r)["first_kernel_linear_map"]
                == "131 pages (524KiB), base pages over the crashkernel region; 2 pages (8KiB) with blocks")
        #expect(
            ev(r)["crashkernel_protection"]
                == "unmapped: arch_kexec_protect_crashkres made the loaded crash segments invalid in the first "
                + "kernel's linear map; stamps into them cannot happen")
        #expect(ev(r)["stamps_blocked"] == "1")
    }

    @Test func destinationOutsideTheLinearMapCopyFaults() throws {
        let r = try Runner.run(try fixture("arm64-outside-linear-map.yaml"))
        #expect(r.verdict.kind == .pageFault)
        #expect(ev(r)["physical"] == "0x100000000")
        #expect(ev(r)["level"] == "L1")
        #expect(ev(r)["routine"]?.hasPrefix("relocate_kernel") == true)
    }

    /// The first kernel writes a page of its own memory while the crash image is relocated: the
    /// page was snapshotted as memory that must not change, so the run is a stray write naming it.
    @Test func firstKernelWriteDuringACrashLoadIsAStrayWrite() throws {
        let r = try Runner.run(try fixture("arm64-crash-first-kernel-write.yaml"))
        #expect(r.verdict.kind == .strayWrite)
        #expect(r.verdict.address == 0x8000_1000)
        #expect(ev(r)["page"] == "0x80001000")
        #expect(ev(r)["what"] == "first-kernel memory")
        #expect(ev(r)["first_differing_byte"] == "0x80001234")
        #expect(ev(r)["region"] == "usable [0x0000000040000000-0x000000013fffffff]")
        // Debian's config by default: rodata=full, so the first kernel's linear map is base pages.
        #expect(r.policy == "mmu-off 4k base-pages")
        #expect(r.matches == true)
    }

    /// arm64 plans go through the same Planner as x86_64: the DTB is the entry argument.
    @Test func planOfAnArm64FixtureNamesTheDTB() throws {
        guard case .planned(let p) = try Planner.plan(try fixture("arm64-basic.yaml")) else {
            Issue.record("arm64-basic.yaml was not planned")
            return
        }
        #expect(p.segments.map(\.name) == ["kernel", "initrd", "dtb"])
        // load_other_segments: the DTB top-down on a 2 MiB boundary.
        #expect(p.entryArgument.raw == 0x1_3fe0_0000)
        #expect(p.purgatoryEntry == nil && p.kimage.startAddress == p.kernelEntry)
        #expect(p.policyLabel == "mmu-off 4k blocks")
        #expect(p.arm64?.tables.isEmpty == true)
    }

    /// A crash load on a machine without a crashkernel reservation: the kernel's EADDRNOTAVAIL, and
    /// words that say why, on both architectures.
    @Test func crashLoadWithoutReservationSaysSo() throws {
        for name in ["arm64-kdump-crashkernel.yaml", "x86_64-real-epyc-1tib-kdump.yaml"] {
            var sc = try fixture(name)
            sc.machine.crashkernel = nil
            sc.machine.crashkernelRanges = []
            let r = try Runner.run(sc)
            #expect(r.verdict.kind == .rejected, "\(name)")
            #expect(r.verdict.errno == "EADDRNOTAVAIL")
            #expect(ev(r)["check"] == "kexec_locate_mem_hole")
            #expect(
                ev(r)["detail"]?.hasPrefix(
                    "a crash load goes into the crashkernel reservation (crashk_res), and this machine has none")
                    == true)
        }
    }

    /// next_kernel_touches on arm64: the probe reads with the MMU off, as the next kernel starts;
    /// RAM is readable, an address where no memory or device is stops the machine.
    @Test func nextKernelTouchesRunOnArm64() throws {
        var sc = try fixture("arm64-basic.yaml")
        sc.nextKernelTouches = [PhysAddr(0x4000_0000), PhysAddr(0x1_0000_0008)]
        let ok = try Runner.run(sc)
        #expect(ok.verdict.kind == .landed)
        #expect(
            ev(ok)["next_kernel_touches"]
                == "0x40000000 with the MMU off (usable [0x0000000040000000-0x000000013fffffff]); "
                + "0x100000008 with the MMU off (usable [0x0000000040000000-0x000000013fffffff])")
        sc.nextKernelTouches = [PhysAddr(0x4000_0000), PhysAddr(0x2_0000_0000)]
        let hole = try Runner.run(sc)
        #expect(hole.verdict.kind == .halt)
        #expect(hole.verdict.address == 0x2_0000_0000)
        #expect(
            hole.verdict.summary
                == "the next kernel's read of 0x200000000 reaches 0x200000000, where no memory or device is")
    }
}
