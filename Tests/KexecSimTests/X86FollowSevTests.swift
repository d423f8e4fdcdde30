import Foundation
import KexecModel
import KexecSim
import Testing

/// Seed 004 from the real decompressor: Debian's bzImage followed on an EFI-booted machine whose
/// config table array shares a GiB with RAM (Fixtures/follow/x86_64-follow-*-6.1.*.yaml). Each run
/// stops at the first exception the decompressor handles itself (`handler`), well before its xz
/// decompression, or at the triple fault.
@Suite(.serialized) struct X86FollowSevTests {

    @Test(.enabled(if: DebianKernel.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel"))
    func sevProbeFaultsOnTheConfigTableUnder6_1_79() throws {
        let r = try Runner.run(try followFixture("x86_64-follow-sev-6.1.79.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.kind == .pageFault)
        #expect(r.verdict.address == 0xbf80_0000)
        #expect(ev["phase"] == "decompressor")
        #expect(ev["address"] == "0xbf800000")
        #expect(ev["region"] == "reserved [0x00000000bf000000-0x00000000bfffffff]")
        #expect(ev["level"] == "pmd")
        #expect(ev["reason"] == "not present")
        #expect(ev["milestones"] == "decompressor-entered")
        #expect(ev["exceptions_delivered"] == "none")
        #expect(ev["cpuid_leaves"] == "amd with SEV: 0x80000000, 0x8000001f")
        #expect(ev["handler"]?.hasPrefix("none usable (IDT base ") == true)
        #expect(ev["on_hardware"] == "triple fault: the CPU resets and the machine reboots into its firmware")
        #expect(ev["rule.efi_config_table"]?.hasPrefix("not mapped") == true)
        #expect(ev["rule.identity_map"]?.hasPrefix("exact gbpages") == true)
        let what = ev["what"] ?? ""
        #expect(what.hasPrefix("#PF at 0xbf800000 (vector 14) at RIP "))
        #expect(what.contains("the IDT gate of vector 14 is not a present 64-bit gate"))
        #expect(
            what.hasSuffix(
                "the IDT gate of vector 8 is not a present 64-bit gate (00000000000000000000000000000000) → triple fault, the CPU resets"
            ))
    }

    /// 6.1.78 (full gbpages: the 1 GiB leaf covers the table by accident) and 6.1.192 (exact
    /// gbpages, the table mapped by map_efi_systab): the probe reads the table and finds no CC
    /// blob; the decompressor reaches its own #PF handler, whose first fault is the EFI system
    /// table's page (its own identity map does not have it yet).
    @Test(
        .enabled(if: DebianKernel.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel"),
        arguments: ["6.1.78", "6.1.192"])
    func sevProbeReadsTheTableAndGoesOn(kernel: String) throws {
        let sc = try followFixture("x86_64-follow-sev-6.1.79.yaml").overridingKernel(KernelVersion(kernel)!)
        let r = try Runner.run(sc)
        let ev = r.verdict.evidenceByName
        #expect(r.verdict.kind == .landed, "\(r.verdict.summary)")
        #expect(r.verdict.followedTo == .handler)
        #expect(ev["milestones"] == "decompressor-entered, handler")
        #expect(ev["cpuid_leaves"]?.hasPrefix("amd with SEV: 0x80000000, 0x8000001f") == true)
        #expect(ev["exceptions_delivered"]?.hasPrefix("1 #PF page fault; first: #PF at 0xbf7ff000 (RIP ") == true)
        #expect(ev["follow_stop"] == "reached the goal (handler)")
    }

    @Test(.enabled(if: DebianKernel.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel"))
    func intelCpuNeverProbesUnder6_1_79() throws {
        let r = try Runner.run(try followFixture("x86_64-follow-intel-6.1.79.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.followedTo == .handler)
        // Only 0x80000000 (max 0x80000008): sev_check_cpu_support returns before leaf 0x8000001f.
        #expect(ev["cpuid_leaves"]?.hasPrefix("intel: 0x80000000, 0x0") == true)
        #expect(ev["rule.efi_config_table"]?.hasPrefix("not mapped") == true)
    }
}

/// The EFI state in boot_params and firmware memory, without a kernel.
@Suite struct X86EfiStateTests {
    /// Seed 004's machine from the follow fixture, with a synthetic kernel in place of the fetched
    /// vmlinuz (only the machine is used here, so the test needs no download).
    func machine() throws -> Machine {
        let path = repoRoot + "/Fixtures/follow/x86_64-follow-sev-6.1.79.yaml"
        let yaml = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "kernel: { file: ../../.kernels/vmlinuz }", with: "kernel: { size: 8M }")
        #expect(!yaml.contains(".kernels/vmlinuz"))
        return try FixtureDecoder.decode(yaml: yaml, file: path, baseDirectory: repoRoot + "/Fixtures/follow").machine
    }

    @Test func bootParamsGetEfiInfoAndSetupData() throws {
        let m = try machine()
        var bp = [UInt8](repeating: 0, count: 0x1000) + Array("console=ttyS0".utf8) + [0]
        let off = X86FileLoadRules.efiSetupDataOffset(cmdlineLength: 14)
        #expect(off == 0x1030)  // ALIGN(4096 + 14 + 30, 16)
        X86EfiState.apply(to: &bp, machine: m, loadAddress: PhysAddr(0x98000), mapOffset: off, setupDataOffset: off)
        func le(_ o: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(bp[o + $1]) << (8 * UInt64($1)) } }
        #expect(bp.count == off + 112)
        #expect(le(0x1c0, 4) == 0x3436_4c45)  // "EL64"
        #expect(le(0x1c4, 4) == 0xbf7f_f018)
        #expect(le(0x1d8, 4) == 0)
        #expect(le(0x1c8, 4) == 48 && le(0x1cc, 4) == 1)
        #expect(le(0x250, 8) == 0x98000 + 0x1030)
        #expect(le(off, 8) == 0)  // end of the chain
        #expect(le(off + 8, 4) == 4 && le(off + 12, 4) == 96)
        #expect(le(off + 32, 8) == 0xbf80_0000)
        #expect(le(off + 40, 8) == UInt64.max)
    }

    @Test func firmwareHoldsTheSystemTableAndTheArray() throws {
        let t = X86EfiState.firmwareTables(try machine())
        #expect(t.map(\.0) == [PhysAddr(0xbf7f_f018), PhysAddr(0xbf80_0000)])
        let st = t[0].1
        func le(_ o: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(st[o + $1]) << (8 * UInt64($1)) } }
        #expect(st.count == 120)
        #expect(le(0, 8) == 0x5453_5953_2049_4249)
        #expect(le(8, 4) == 0x2_0046)
        #expect(le(104, 4) == 12 && le(112, 8) == 0xbf80_0000)
        #expect(t[1].1 == [UInt8](repeating: 0, count: 12 * 24))
    }

    @Test func cpuFieldIsCheckedWhereItIsWritten() throws {
        let bad = """
            name: x
            machine:
              arch: x86_64
              cpu: { vendor: intel, sev: true }
              memory:
                - { range: 0x0-0x9fbff, type: usable }
            """
        #expect {
            try FixtureDecoder.decode(yaml: bad, file: "bad.yaml", baseDirectory: "")
        } throws: { ($0 as? InputError)?.description.contains("machine.cpu.sev") == true }
    }
}
