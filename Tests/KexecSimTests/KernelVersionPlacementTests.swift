import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

/// x86_64 kexec_file_load placement picked by the running kernel's version, and the `--kernel` /
/// `--kernels` plumbing.
@Suite struct KernelVersionPlacementTests {
    func planned(_ sc: Scenario) throws -> Plan {
        guard case .planned(let p) = try Planner.plan(sc) else { throw TruthError("\(sc.name) rejected") }
        return p
    }

    /// x86_64-basic.yaml (RAM 0-0x9fbff, 1 MiB-3 GiB, 4-5 GiB; 12 MiB kernel, 32 MiB initrd).
    @Test func basicUnder61WalksForwardAndUnder612InReverse() throws {
        let sc = try fixture("x86_64-basic.yaml")
        // 6.1: the first range that fits, top-down inside it: purgatory and boot_params under 640 KiB
        // (as Debian's 6.1 puts them at 0x9a000 / 0x98000), kernel and initrd below 3 GiB.
        let old = try planned(sc.overridingKernel(KernelVersion(6, 1, 192)))
        #expect(old.segments.map(\.mem.raw) == [0x9a000, 0x98000, 0xbce0_0000, 0xbae0_0000])
        #expect(old.segments.map(\.memsz.raw) == [0x5000, 0x2000, 0x300_0000, 0x200_0000])
        #expect(old.segments.map(\.bufsz.raw) == [0x4000, 0x10e0, 0xc0_0000, 0x200_0000])
        #expect(
            old.rules.map(\.name) == [
                "placement_walk", "top_down_start", "kernel_buf_min", "purgatory_size", "boot_params_size",
                "synthetic_kernel", "identity_map", "efi_config_table", "control_page", "relocation_copy",
                "kimage_alloc_page",
            ])
        #expect(old.rules[0].choice.hasPrefix("forward"))
        // 6.12: the top of RAM.
        let new = try planned(sc.overridingKernel(KernelVersion(6, 12)))
        #expect(new.segments.map(\.mem.raw) == [0x1_3fff_b000, 0x1_3fff_9000, 0x1_3ce0_0000, 0x1_3ae0_0000])
        #expect(new.rules[0].choice.hasPrefix("reverse"))
        #expect(new.scenario.machine.kernelVersion == KernelVersion(6, 12))
    }

    /// The segment sizes that changed before 6.1: purgatory 0x5000/0x6000 until sha256 was rolled
    /// up (v5.11), no RNG-seed setup_data in boot_params until v6.0. 5.14 (RHEL 9) and 5.15 sit
    /// between: 6.1's purgatory, 5.10's boot_params.
    @Test func sizesBetween510And61() throws {
        let sc = try fixture("x86_64-basic.yaml")
        func sizes(_ v: KernelVersion) throws -> (mem: [UInt64], memsz: [UInt64], bufsz: [UInt64], rules: [String]) {
            let p = try planned(sc.overridingKernel(v))
            let rules = p.rules.filter { ["purgatory_size", "boot_params_size"].contains($0.name) }.map(\.choice)
            return (p.segments.map(\.mem.raw), p.segments.map(\.memsz.raw), p.segments.map(\.bufsz.raw), rules)
        }
        // Debian 5.10.262 prints purgatory 0x99000 (bufsz 0x5000, memsz 0x6000), boot_params 0x97000.
        let v510 = try sizes(KernelVersion(5, 10, 262))
        #expect(v510.mem == [0x99000, 0x97000, 0xbce0_0000, 0xbae0_0000])
        #expect(v510.memsz == [0x6000, 0x2000, 0x300_0000, 0x200_0000])
        #expect(v510.bufsz == [0x5000, 0x10b0, 0xc0_0000, 0x200_0000])
        #expect(
            v510.rules == [
                "bufsz 0x5000, memsz 0x6000",
                "ALIGN(4096 + cmdline + 30, 16) + ALIGN(efi_map, 16) + 16 + 96 (no RNG seed)",
            ])
        for v in [KernelVersion(5, 11), KernelVersion(5, 14), KernelVersion(5, 15), KernelVersion(5, 19)] {
            let between = try sizes(v)
            #expect(between.mem == [0x9a000, 0x98000, 0xbce0_0000, 0xbae0_0000], "\(v)")
            #expect(between.bufsz == [0x4000, 0x10b0, 0xc0_0000, 0x200_0000], "\(v)")
        }
        let v60 = try sizes(KernelVersion(6, 0))
        #expect(v60.bufsz == [0x4000, 0x10e0, 0xc0_0000, 0x200_0000])
        #expect(v60.rules[0] == "bufsz 0x4000, memsz 0x5000")
    }

    /// An EFI boot's runtime map (`machine.efi.runtime_map_size`) is copied into boot_params.
    @Test func efiRuntimeMapGrowsBootParams() throws {
        var sc = try fixture("x86_64-basic.yaml").overridingKernel(KernelVersion(6, 1))
        sc.machine.efiRuntimeMapSize = ByteCount(0x120)
        // Debian 6.1 on OVMF (6 descriptors of 48 bytes) prints 0x1210 for a 45-byte command line,
        // 0x10f0 + 0x120; this fixture's 28-byte one gives 0x10e0 + 0x120.
        #expect(try planned(sc).segments.map(\.bufsz.raw)[1] == 0x1200)
    }

    /// A crash load: crashk_res only (the higher range of a `,high` pair), the elfcorehdr at its
    /// start, `elfcorehdr=0x… ` in front of the command line; CRASH_HOTPLUG's size from 6.6.
    @Test func crashLoadUsesCrashkResOnly() throws {
        let low = AddressRange(start: PhysAddr(0xaf00_0000), size: .mib(256))!
        let high = AddressRange(start: PhysAddr(0x2_2e00_0000), size: .mib(256))!
        let memory = try MemoryMap([
            Region(range: AddressRange(first: PhysAddr(0x1000), last: PhysAddr(0x9_fbff))!, type: .usable),
            Region(range: AddressRange(first: PhysAddr(0x10_0000), last: PhysAddr(0xbffd_ffff))!, type: .usable),
            Region(range: AddressRange(first: PhysAddr(0x1_0000_0000), last: PhysAddr(0x2_3fff_ffff))!, type: .usable),
        ])
        var m = Machine(arch: .x86_64, memory: memory, crashkernelRanges: [low, high])
        m.kernel = KernelVersion(6, 1)
        let req = KexecRequest(
            type: .crash, kernel: PayloadSpec(size: .mib(8), initSize: ByteCount(0x3f9_8000)),
            initrd: PayloadSpec(size: ByteCount(0xfb083)), cmdline: "console=ttyS0")
        let sc = Scenario(name: "crash", machine: m, kexec: req)
        let p = try planned(sc)
        // Debian 6.1 pc-8g-high: 0x22e000000+0x1000, 0x23dffa000, 0x23dff8000, 0x23a000000, 0x239f04000.
        #expect(
            p.segments.map(\.mem.raw) == [0x2_2e00_0000, 0x2_3dff_a000, 0x2_3dff_8000, 0x2_3a00_0000, 0x2_39f0_4000])
        #expect(p.segments[0].memsz.raw == 0x1000)
        let bp = try #require(p.segments.first { $0.role == .bootParams })
        let cmd = Array(bp.bytes[0x1000..<0x1000 + 34])
        #expect(String(decoding: cmd, as: UTF8.self) == "elfcorehdr=0x22e000000 console=tty")
        // 6.6+: the elfcorehdr segment has room for hotplug (memsz 0xe1000), purgatory at the very top.
        let q = try planned(sc.overridingKernel(KernelVersion(6, 12)))
        #expect(
            q.segments.map(\.mem.raw) == [0x2_2e00_0000, 0x2_3dff_b000, 0x2_3dff_9000, 0x2_3a00_0000, 0x2_39f0_4000])
        #expect(q.segments[0].memsz.raw == 0xe1000)
    }

    /// The placer's two version switches on their own.
    @Test func placerWalkAndTopDownStart() throws {
        let a = AddressRange(first: PhysAddr(0x1000), last: PhysAddr(0x9_ffff))!
        let b = AddressRange(first: PhysAddr(0x10_0000), last: PhysAddr(0x7fff_ffff))!
        let req = BufferRequest(name: "x", memsz: ByteCount(0x5000), align: ByteCount(0x1000), bufMin: PhysAddr(0))
        var forward = Placer(ranges: [a, b], order: .topDown, reverseWalk: false, topDownOffByOne: true)
        #expect(try forward.place(req).raw == 0x9_a000)
        var reverse = Placer(ranges: [a, b], order: .topDown, reverseWalk: true, topDownOffByOne: false)
        #expect(try reverse.place(req).raw == 0x7fff_b000)
        var offByOne = Placer(ranges: [a, b], order: .topDown, reverseWalk: true, topDownOffByOne: true)
        #expect(try offByOne.place(req).raw == 0x7fff_a000)
    }

    @Test func matrixKernelsLabelsEveryRow() throws {
        let files = [(path: TestPaths.repo + "/Fixtures/scenarios/x86_64-basic.yaml", fromDirectory: false)]
        let plain = MatrixPlanner.jobs(fixtures: files, base: TestPaths.repo)
        #expect(plain.map(\.policy) == ["ram-2m"])
        #expect(plain[0].kernel == nil)
        let v = [KernelVersion(6, 1), KernelVersion(6, 12)]
        let jobs = MatrixPlanner.jobs(fixtures: files, kernels: v, base: TestPaths.repo)
        #expect(jobs.map(\.policy) == ["ram-2m @6.1", "ram-2m @6.12"])
        #expect(
            jobs.map(\.shardKey) == [
                "Fixtures/scenarios/x86_64-basic.yaml|ram-2m @6.1", "Fixtures/scenarios/x86_64-basic.yaml|ram-2m @6.12",
            ])
        let args = MatrixWorker(executable: "/x", timeoutSeconds: 10).arguments(for: jobs[0])
        #expect(
            args == [
                "run", jobs[0].fixturePath, "--policy", "ram-2m", "--kernel", "6.1", "--json", "--timeout", "4.000",
            ])
        let one = MatrixPlanner.jobs(fixtures: files, kernel: KernelVersion(6, 8), base: TestPaths.repo)
        #expect(one.map(\.policy) == ["ram-2m"])
        #expect(one[0].kernel == KernelVersion(6, 8))
    }

    @Test func badKernelOptionIsAUsageError() throws {
        let cli = CLITests()
        let f = TestPaths.repo + "/Fixtures/scenarios/x86_64-basic.yaml"
        let r = try cli.run(["plan", f, "--kernel", "six"])
        #expect(r.status == 2)
        #expect(r.err.contains("--kernel: \"six\" is not a kernel version"))
        let old = try cli.run(["plan", f, "--kernel", "4.19"])
        #expect(old.status == 2)
        #expect(old.err.contains("--kernel: kernel 4.19 is older than any version kexec-sim models"))
        let m = try cli.run(["matrix", f, "--kernels", "6.1,,6.12"])
        #expect(m.status == 2)
        #expect(m.err.contains("--kernels:"))
        let ok = try cli.run(["plan", f, "--kernel", "6.1", "--json"])
        #expect(ok.status == 0)
        #expect(ok.out.contains("\"0x9a000\"") || ok.out.contains("0x9a000"))
    }
}
