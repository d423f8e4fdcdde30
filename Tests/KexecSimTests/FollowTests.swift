import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

func followFixture(_ name: String) throws -> Scenario {
    try FixtureDecoder.load(path: repoRoot + "/Fixtures/follow/" + name)
}

/// `--follow`: the real next kernel runs on past the hand-off. Debian's arm64 Image (from
/// scripts/fetch-debian-kernel; skipped without it) to its banner and its memory lines; the
/// synthetic cases without it.
@Suite(.serialized) struct FollowTests {
    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func arm64DebianImagePrintsItsBanner() throws {
        let r = try Runner.run(try followFixture("arm64-follow-debian.yaml"), options: RunOptions(follow: .banner))
        let ev = r.verdict.evidenceByName
        #expect(r.verdict.kind == .landed, "\(r.verdict.summary)")
        #expect(r.verdict.followedTo == .banner)
        #expect(ev["milestones"] == "image-entered, mmu-on, banner")
        #expect(ev["milestone.banner"]?.contains("] Linux version 6.1.0-") == true)
        #expect(ev["follow_stop"] == "reached the goal (banner)")
        let console = ev["console"] ?? ""
        #expect(console.contains("Machine model: linux,dummy-virt") == false || console.contains("Linux version"))
        #expect(console.hasPrefix("[    0.000000] Booting Linux on physical CPU 0x0000000000"))
    }

    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func arm64DebianImageMemoryLinesAgreeWithTheDTB() throws {
        let r = try Runner.run(try followFixture("arm64-follow-debian.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.followedTo == .memory)
        #expect(ev["milestones"] == "image-entered, mmu-on, banner, memory")
        #expect(ev["next_kernel_memory"] == "[0x0000000040000000-0x00000000bfffffff]")
        #expect(ev["handed_memory"] == "[0x0000000040000000-0x00000000bfffffff]")
        #expect(ev["next_kernel_total"] == "2097152K")
        #expect(ev["memory_check"] == "agrees")
        #expect(ev["firmware_calls"] == "version, migrateInfoType, features, features, features, features")
        #expect(ev["exceptions_delivered"] == "none")
        let console = ev["console"] ?? ""
        #expect(console.contains("earlycon: pl11 at MMIO 0x0000000009000000 (options '')"))
        #expect(console.contains("psci: PSCIv1.0 detected in firmware."))
        #expect(console.contains("Kernel command line: console=ttyAMA0 earlycon=pl011,0x9000000"))
        #expect(console.contains("  DMA      [mem 0x0000000040000000-0x00000000bfffffff]"))
    }

    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func arm64CrashKernelSeesExactlyTheCrashkernelRegion() throws {
        let r = try Runner.run(try followFixture("arm64-follow-debian-kdump.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(ev["next_kernel_memory"] == "[0x00000000b0000000-0x00000000bfffffff]")
        #expect(ev["handed_memory"] == "[0x00000000b0000000-0x00000000bfffffff]")
        #expect(ev["next_kernel_total"] == "262144K")
        #expect(ev["memory_check"] == "agrees")
    }

    /// A crash kernel handed less memory than the tool says it handed: the check names the
    /// difference and the verdict is memory-mismatch.
    @Test func memoryLinesThatDifferAreAMismatch() throws {
        let lines = [
            "[    0.000000] Early memory node ranges",
            "[    0.000000]   node   0: [mem 0x0000000040000000-0x000000007fffffff]",
            "[    0.000000] Initmem setup node 0 [mem 0x0000000040000000-0x000000007fffffff]",
            "[    0.000000] Memory: 98324K/1048576K available (13248K kernel code)",
        ]
        #expect(FollowMemoryLines.nodeRanges(lines).map(\.description) == ["[0x0000000040000000-0x000000007fffffff]"])
        #expect(FollowMemoryLines.totalKiB(lines) == 1_048_576)
        let e820 = [
            "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
            "[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
            "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable",
        ]
        #expect(
            FollowMemoryLines.e820Usable(e820).map(\.description) == [
                "[0x0000000000000000-0x000000000009fbff]", "[0x0000000000100000-0x00000000bfffffff]",
            ])
        let handed = [AddressRange(first: PhysAddr(0x4000_0000), last: PhysAddr(0xbfff_ffff))!]
        let c = FollowMemoryLines.compare(
            kernel: FollowMemoryLines.nodeRanges(lines), handed: handed, totalKiB: 1_048_576)
        #expect(!c.matches)
        #expect(
            c.summary
                == "it lacks [0x0000000080000000-0x00000000bfffffff] it was given; Memory: total 1048576K, handed 2097152K"
        )
    }

    @Test func followNeedsARealKernelFile() throws {
        var sc = try fixture("arm64-basic.yaml")
        sc.follow = .banner
        #expect(throws: PlanError.self) { try Runner.run(sc) }
    }

    /// Fixtures/images/arm64-tiny.Image parks in a WFE loop once it has checked the DTB: it never
    /// prints a banner, and the follow run ends at its time limit as `hang`, never hanging itself.
    @Test func imageThatNeverPrintsEndsAsHangAtTheTimeLimit() throws {
        let r = try Runner.run(
            try fixture("arm64-image-file.yaml"), options: RunOptions(follow: .banner, followTimeoutSeconds: 0.5))
        let ev = r.verdict.evidenceByName
        #expect(r.verdict.kind == .hang, "\(r.verdict.summary)")
        #expect(r.verdict.followedTo == nil)
        #expect(ev["milestones"] == "image-entered")
        #expect(ev["console"] == "")
    }
}

/// x86_64 to its memory lines, under 6.12's rules (issue 15's scenario 1): the decompression of
/// Debian's xz payload now takes about 8 s of emulation (13 s in a debug build under load), so the
/// run is part of the suite whenever scripts/fetch-debian-kernel has run.
@Suite struct X86FollowTests {
    @Test(.enabled(if: DebianKernel.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel"))
    func x86DebianBzImageRunsToItsMemoryLines() throws {
        let r = try Runner.run(try followFixture("x86_64-follow-debian.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(ev["milestones"] == "decompressor-entered, handler, kernel-proper, banner, memory")
        let usable =
            "[0x0000000000000000-0x000000000009fbff] [0x0000000000100000-0x00000000bffdefff] [0x0000000100000000-0x000000013fffffff]"
        #expect(ev["next_kernel_memory"] == usable)
        #expect(ev["handed_memory"] == usable)
        #expect(ev["memory_check"] == "agrees")
        #expect(ev["milestone.memory"]?.contains("] Memory: 3209852K/4193780K available (") == true)
        #expect(ev["local_apic"]?.hasPrefix("registers used: 0x20, 0x30") == true)
        #expect(ev["milestone.banner"]?.contains("] Linux version 6.1.0-") == true)
        #expect(ev["exceptions_delivered"]?.contains("#PF page fault; first: #PF at 0x0 ") == true)
        #expect(ev["console"]?.contains("KASLR disabled: 'nokaslr' on cmdline.") == true)
        #expect(ev["kernel"] == "6.12")
    }
}

/// x86_64 to /init (about 13 s in a release build): Debian's bzImage with the x86_64 test initrd
/// runs past the timer calibration (TSC calibrated against PIT channel 2, jiffies from IRQ0 through
/// the 8259A at vector 0x30), into user space, where /init reports and halts the machine.
@Suite struct X86FollowInitTests {
    @Test(.enabled(if: DebianKernel.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel"))
    func x86DebianBzImageReachesInitAndHalts() throws {
        let r = try Runner.run(try followFixture("x86_64-follow-debian-init.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.followedTo == .initProcess)
        #expect(ev["milestones"] == "decompressor-entered, handler, kernel-proper, banner, memory, init")
        #expect(ev["milestone.init"]?.hasSuffix("] kexec-sim: /init reached") == true)
        #expect(ev["init_cmdline"] == "console=ttyS0 nokaslr earlyprintk=serial,ttyS0,115200")
        #expect(ev["init_vmcore"] == "absent (errno 2)")
        #expect(ev["interrupts"]?.hasPrefix("vector 0x30 ×") == true)
        let console = ev["console"] ?? ""
        #expect(console.contains("Calibrating delay loop (skipped), value calculated using timer frequency"))
        #expect(!console.contains("tsc: Unable to calibrate against PIT"))
        #expect(!console.contains("Using NULL legacy PIC"))
        #expect(console.contains("] Run /init as init process"))
        #expect(console.contains("] kexec-sim: /init done"))
        #expect(console.contains("] reboot: System halted"))
        // reboot(POWER_OFF) without ACPI: kernel_halt → stop_this_cpu, HLT with IF clear.
        #expect(ev["cpu_halted"]?.contains(" with IF clear: the CPU waits forever") == true)
    }
}

/// Issue 15, scenarios 2 and 3: Debian's arm64 Image loaded by kexec-tools' `kexec -l` / `-p`
/// with the built-in test initrd, followed to its /init (about 10 s each in a debug build).
@Suite(.serialized) struct FollowInitTests {
    @Test func testInitrdHoldsDevNodesAndTheInitELF() throws {
        let sc = try followFixture("arm64-follow-debian-init.yaml")
        #expect(sc.kexec?.initrd == PayloadSpec(builtin: .testInit))
        let bytes = TestInitrd.archive(.testInit).bytes
        // The first entry is /dev (ino 1, mode 040755), /init's ELF is in it, the trailer ends it.
        #expect(Array(bytes.prefix(22)) == Array("07070100000001000041ED".utf8))
        #expect(bytes.count % 4 == 0)
        #expect(Array(bytes.suffix(14)) == Array("TRAILER!!!".utf8) + [0, 0, 0, 0])
        let elf: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]
        #expect(bytes.indices.contains { bytes[$0...].starts(with: elf) })
    }

    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func arm64KexecLoadReachesInitWithItsCommandLine() throws {
        let r = try Runner.run(try followFixture("arm64-follow-debian-init.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.followedTo == .initProcess)
        #expect(ev["milestones"] == "image-entered, mmu-on, banner, memory, init")
        #expect(ev["milestone.init"]?.hasSuffix("] kexec-sim: /init reached") == true)
        #expect(ev["init_cmdline"] == "console=ttyAMA0 earlycon=pl011,0x9000000")
        #expect(ev["init_vmcore"] == "absent (errno 2)")
        #expect(
            ev["init_vmcore_why"]
                == "not a crash kernel: no ELF core header was handed over, so vmcore_init creates no /proc/vmcore")
        #expect(ev["next_kernel_zones"] == "DMA [mem 0x0000000040000000-0x00000000bfffffff]; DMA32 empty; Normal empty")
        #expect(ev["next_kernel_memory"] == "[0x0000000040000000-0x00000000bfffffff]")
        #expect(ev["memory_check"] == "agrees")
        #expect(ev["firmware_calls"]?.hasSuffix("systemOff") == true)
        #expect(ev["follow_stop"] == "reached the goal (init)")
        // The virtual clock moves only with the guest: the same counts on every run.
        #expect(
            ev["interrupts"]
                == "5 IRQs delivered (acknowledged: 5 × ID 27), 0 WFIs (12 WFI sites found); "
                + "virtual timer at 1053952 ticks after 16468 counter reads")
        #expect(
            ev["gic_registers"]
                == "GICC_APR w, GICC_CTLR r, GICC_CTLR w, GICC_EOIR w, GICC_IAR r, GICC_IIDR r, GICC_PMR w, "
                + "GICD_CTLR w, GICD_ICACTIVER w, GICD_ICENABLER w, GICD_ICFGR r, GICD_ICFGR w, GICD_IPRIORITYR w, "
                + "GICD_ISENABLER w, GICD_ITARGETSR r, GICD_ITARGETSR w, GICD_TYPER r")
        let console = ev["console"] ?? ""
        #expect(console.contains("kexec-sim: /init done"))
        #expect(console.contains("reboot: Power down"))
    }

    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func arm64CrashKernelReachesInitAndSaysWhyThereIsNoVmcore() throws {
        let r = try Runner.run(try followFixture("arm64-follow-debian-kdump-init.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(ev["milestones"] == "image-entered, mmu-on, banner, memory, init")
        #expect(ev["next_kernel_memory"] == "[0x00000000b0000000-0x00000000bfffffff]")
        #expect(ev["next_kernel_total"] == "262144K")
        #expect(ev["init_cmdline"] == "console=ttyAMA0 earlycon=pl011,0x9000000")
        #expect(ev["init_vmcore"] == "absent (errno 2)")
        #expect((ev["console"] ?? "").contains("Kdump: vmcore not initialized"))
        #expect(
            ev["init_vmcore_why"]
                == "the crash kernel's vmcore_init failed: \"Warning: Core image elf header not found\" "
                + "(fs/proc/vmcore.c parse_crash_elf_headers, v6.1); the ELF core header segment at 0xbffff000 "
                + "holds zeros: the model places kexec-tools' header but does not write its contents")
    }
}
