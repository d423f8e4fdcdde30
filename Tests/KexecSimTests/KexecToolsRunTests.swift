import KexecModel
import KexecSim
import Testing

/// kexec-tools loads through the emulator on both architectures: our purgatory runs inside
/// kexec-tools' purgatory segment, from its entry; an intact load lands, a stamped one spins there.
@Suite(.serialized) struct KexecToolsRunTests {
    func ev(_ r: RunResult) -> [String: String] { r.verdict.evidenceByName }

    @Test func x86KexecLoadLands() throws {
        let r = try Runner.run(try fixture("x86_64-kexec-tools-load.yaml"))
        #expect(r.verdict.kind == .landed && r.matches == true)
        #expect(
            ev(r)["segments"]
                == "rng_seed@0x100000+4KiB kernel@0x13f800000+6MiB initrd@0x13fef1000+1MiB "
                + "boot_params@0x13fff1000+24KiB purgatory@0x13fff7000+36KiB")
        #expect(ev(r)["entry"] == "0x13f800200" && ev(r)["rsi"] == "0x13fff1000")
        #expect(ev(r)["loader"] == "kexec-tools 2.0.25 (Debian 12) bzImage64, kexec_load")
        #expect(ev(r)["rule.kexec_tools_setup_data"]?.hasPrefix("SETUP_RNG_SEED: bottom-up from 1 MiB") == true)
    }

    @Test func x86StampedCrashLoadHangsInItsPurgatory() throws {
        let r = try Runner.run(try fixture("x86_64-kexec-tools-stamped.yaml"))
        #expect(r.verdict.kind == .hang && r.matches == true)
        // kexec-tools' purgatory segment at 0xbef54000, entered at +0x760 where ours starts.
        #expect(ev(r)["pc"] == "0xbef547b0")
        #expect(ev(r)["routine"] == "purgatory: sha256_mismatch_spin")
        #expect(ev(r)["stamped_segment"] == "kernel")
        #expect(ev(r)["first_differing_address"] == "0xbe804242")
        #expect(ev(r)["offset_in_segment"] == "0x4242")
    }

    @Test func arm64KexecLoadLands() throws {
        let r = try Runner.run(try fixture("arm64-kexec-tools-load.yaml"))
        #expect(r.verdict.kind == .landed && r.matches == true)
        #expect(
            ev(r)["segments"]
                == "kernel@0x43000000+8MiB initrd@0x43800000+2MiB dtb@0x43a00000+4KiB purgatory@0x43a01000+16KiB")
        #expect(ev(r)["entry"] == "0x43000000" && ev(r)["x0_dtb"] == "0x43a00000")
        #expect(ev(r)["x1_x2_x3"] == "0 0 0")
    }

    @Test func arm64StampedCrashLoadHangsInItsPurgatory() throws {
        let r = try Runner.run(try fixture("arm64-kexec-tools-stamped.yaml"))
        #expect(r.verdict.kind == .hang && r.matches == true)
        // kexec-tools' purgatory segment at 0xe0501000, entered at +0x6a0 where ours starts.
        #expect(ev(r)["pc"] == "0xe05016d0")
        #expect(ev(r)["routine"] == "purgatory: sha256_mismatch_spin")
        #expect(ev(r)["stamped_segment"] == "kernel")
        #expect(ev(r)["first_differing_address"] == "0xe0004242")
    }
}
