import Foundation
import KexecModel
import KexecSim
import Testing

/// Issue 15, scenario 5: `inject: [{ handoff-pointer: A }]` hands the next kernel a boot_params
/// (x86_64 rsi) / DTB (arm64 x0) pointer that is not where they are. Without --follow the hand-off
/// check calls it `corruption`; with --follow the real kernel (Debian's, skipped when
/// scripts/fetch-debian-kernel has not run) shows where it reads it and how it dies.
@Suite struct FollowHandoffPointerTests {
    func decode(_ inject: String) throws -> Scenario {
        let yaml = """
            name: handoff pointer
            machine: ../machines/x86_64-4gib-box.yaml
            kexec:
              kernel: { size: 4MiB }
              inject:
                - \(inject)
            """
        return try FixtureDecoder.decode(
            yaml: yaml, file: "inline.yaml", baseDirectory: repoRoot + "/Fixtures/scenarios")
    }

    @Test func bothFormsDecode() throws {
        #expect(
            try decode("{ handoff-pointer: 0x48000000 }").kexec?.inject == [
                .handoffPointer(.address(PhysAddr(0x4800_0000)))
            ])
        #expect(
            try decode("{ handoff-pointer: { offset: 0x1000 } }").kexec?.inject == [
                .handoffPointer(.offset(ByteCount(0x1000)))
            ])
    }

    @Test func followTimeoutDecodesAndZeroIsRefused() throws {
        let base = "name: t\nmachine: ../machines/x86_64-4gib-box.yaml\nkexec: { kernel: { size: 4MiB } }\n"
        let dir = repoRoot + "/Fixtures/scenarios"
        let sc = try FixtureDecoder.decode(yaml: base + "follow_timeout: 20\n", file: "t.yaml", baseDirectory: dir)
        #expect(sc.followTimeoutSeconds == 20)
        do {
            _ = try FixtureDecoder.decode(yaml: base + "follow_timeout: 0\n", file: "t.yaml", baseDirectory: dir)
            Issue.record("decoded")
        } catch {
            #expect(error.file == "t.yaml")
            #expect(error.field == "follow_timeout")
            #expect(error.line == 4)
        }
    }

    @Test func badValueNamesTheField() throws {
        do {
            _ = try decode("{ handoff-pointer: { offest: 8 } }")
            Issue.record("decoded")
        } catch {
            #expect("\(error)".contains("inline.yaml"))
            #expect("\(error)".contains("handoff-pointer"))
        }
    }

    /// Without --follow: rsi is not boot_params at the entry, the hand-off is `corruption` with the
    /// pointer handed and the real one named.
    @Test func withoutFollowTheHandOffIsCorruption() throws {
        let sc = try decode("{ handoff-pointer: { offset: 0x1000 } }")
        let r = try Runner.run(sc)
        let ev = r.verdict.evidenceByName
        #expect(r.verdict.kind == .corruption, "\(r.verdict.summary)")
        #expect(ev["rsi"] == "0x13fffa000")
        #expect(ev["expected_rsi"] == "0x13fff9000")
        #expect(
            ev["handoff_pointer"]
                == "injected 0x13fffa000 (usable [0x0000000100000000-0x000000013fffffff]) instead of boot_params at 0x13fff9000"
        )
    }

    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func arm64ImageSpinsInSetupMachineFdtAndSaysWhere() throws {
        let r = try Runner.run(try followFixture("arm64-follow-wrong-dtb-pointer.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.kind == .hang)
        #expect(r.verdict.address == 0x4800_0000)
        #expect(
            r.verdict.summary
                == "after the hand-off: the next kernel spins forever at 0xffff800009663eb4 (kernel, MMU on (its own tables))"
        )
        #expect(ev["x0_dtb"] == "0x48000000")
        #expect(
            ev["handoff_pointer"]
                == "injected 0x48000000 (usable [0x0000000040000000-0x00000000bfffffff]) instead of the DTB at 0xbfe00000"
        )
        #expect(
            ev["handoff_pointer_read"]
                == "0x48000000: read via VA 0x42200000, then read via VA 0xfffffbfffdc00000; 3 TLB fills of its page")
        #expect(ev["loop"] == "tight loop over 2 instruction addresses in [0xffff800009663eb0, 0xffff800009663eb4]")
        #expect(ev["milestones"] == "image-entered, mmu-on")
        #expect(ev["console"] == "")
        let log = ev["kernel_log"] ?? ""
        #expect(log.contains("| Linux version 6.1.0-"))
        #expect(
            log.hasSuffix(
                "| Error: invalid device tree blob at physical address 0x0000000048000000 (virtual address "
                    + "0x0000000000000000) | The dtb must be 8-byte aligned and must not exceed 2 MB in size "
                    + "| Please check your bootloader."))
    }

    /// Fast (the decompressor dies in its first instructions), so in the normal suite.
    @Test(.enabled(if: DebianKernel.present, "no .kernels/vmlinuz: run scripts/fetch-debian-kernel"))
    func x86DecompressorTrustsZerosAndTripleFaults() throws {
        let r = try Runner.run(try followFixture("x86_64-follow-wrong-boot-params-pointer.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.kind == .pageFault)
        #expect(r.verdict.address == 0x2_fffb_f000)
        #expect(ev["rsi"] == "0x80000000")
        #expect(
            ev["handoff_pointer"]
                == "injected 0x80000000 (usable [0x0000000000100000-0x00000000bffdefff]) instead of boot_params at 0x13fff9000"
        )
        #expect(ev["handoff_pointer_read"] == "0x80000000: read via VA 0x80000000; 1 TLB fill of its page")
        #expect(ev["phase"] == "decompressor")
        #expect(ev["pc"] == "0x13c00025a")
        #expect(ev["region"] == "a hole (no region)")
        #expect(ev["on_hardware"] == "triple fault: the CPU resets and the machine reboots into its firmware")
        #expect(ev["milestones"] == "decompressor-entered")
    }
}
