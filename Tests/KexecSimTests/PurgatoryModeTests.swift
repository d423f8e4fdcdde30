import Foundation
import KexecModel
import KexecSim
import Testing

/// Purgatory's sha256 served on the host (`native`, the default) against the same sha256 run
/// instruction by instruction (`emulated`): the same verdict, address, fault evidence and the same
/// digest purgatory computed, on every shipped scenario.
@Suite struct PurgatoryModeTests {
    static let names = ShippedScenarioTests.names

    /// The scenario with synthetic payloads capped (kernel 2 MiB, initrd 1 MiB) so that the
    /// emulated sha256 (about 10 MB/s) keeps the suite fast; images from files and kexec_load
    /// segments are left as they are. Full-size runs of both modes: scripts/purgatory-modes.
    static func capped(_ sc: Scenario) -> Scenario {
        var sc = sc
        guard var k = sc.kexec, k.syscall == .kexecFileLoad else { return sc }
        func cap(_ p: PayloadSpec?, _ limit: UInt64) -> PayloadSpec? {
            guard var p, p.file == nil, let s = p.size, s.raw > limit else { return p }
            p.size = ByteCount(limit)
            p.initSize = nil
            return p
        }
        k.kernel = cap(k.kernel, 2 << 20)
        k.initrd = cap(k.initrd, 1 << 20)
        sc.kexec = k
        return sc
    }

    /// What must not depend on the mode: the verdict, its address, the digest purgatory computed
    /// and where a fault happened (not the PC: the native mode stops at sha256_update's entry).
    static func outcome(_ r: RunResult) -> [String] {
        let ev = r.verdict.evidenceByName
        let keys = ["purgatory_digest", "access", "region", "level", "reason", "entry_address", "entry", "errno"]
        return [r.verdict.kind.rawValue, r.verdict.address.map { hex($0) } ?? "-"]
            + keys.map { "\($0)=\(ev[$0] ?? "-")" }
    }

    @Test(arguments: names)
    func bothModesAgree(_ name: String) throws {
        let sc = Self.capped(try fixture(name))
        // Every shipped runaway ends by its instruction budget or an exactly caught spin; the wall
        // clock is only a backstop, generous so that a loaded machine cannot change a verdict.
        let native = try Runner.run(sc, options: RunOptions(timeoutSeconds: 300, purgatory: .native))
        let emulated = try Runner.run(sc, options: RunOptions(timeoutSeconds: 300, purgatory: .emulated))
        #expect(Self.outcome(native) == Self.outcome(emulated), "\(name)")
        let hasPurgatory = native.verdict.evidenceByName["purgatory"] != nil
        if hasPurgatory {
            #expect(native.verdict.evidenceByName["purgatory"]?.hasPrefix("native") == true)
            #expect(emulated.verdict.evidenceByName["purgatory"]?.hasPrefix("emulated") == true)
        }
        if native.verdict.kind == .landed && hasPurgatory {
            // A landed run passed the comparison: purgatory computed the digest of the segments.
            #expect(native.verdict.evidenceByName["purgatory_digest"] == native.verdict.evidenceByName["sha256"])
        }
    }

    /// The fault inside the digest loop, full size: both modes stop on the first unmapped byte of
    /// the kernel segment with the same missing table level.
    @Test func faultInsideTheDigestLoop() throws {
        let sc = try fixture("x86_64-crash-segments-unmapped.yaml")
        for mode in PurgatoryMode.allCases {
            let r = try Runner.run(sc, options: RunOptions(purgatory: mode))
            let ev = r.verdict.evidenceByName
            #expect(r.verdict.kind == .pageFault, "\(mode)")
            #expect(r.verdict.address == 0x2_0120_0000, "\(mode)")
            #expect(ev["access"] == "read")
            #expect(ev["level"] == "pmd")
            #expect(ev["reason"] == "not present")
            #expect(ev["routine"]?.hasPrefix("purgatory: sha256_update") == true, "\(mode): \(ev["routine"] ?? "-")")
            #expect(ev["purgatory"]?.hasPrefix(mode.rawValue) == true)
            #expect(ev["purgatory_digest"] == nil)
        }
    }

    /// A digest mismatch: both modes compute the same wrong-for-the-stored-value digest, the one
    /// of the segments as they are in memory, and spin.
    @Test func mismatchDigestIsTheSegmentsDigest() throws {
        let sc = Self.capped(try fixture("x86_64-wrong-digest.yaml"))
        let n = try Runner.run(sc, options: RunOptions(purgatory: .native))
        let e = try Runner.run(sc, options: RunOptions(purgatory: .emulated))
        #expect(n.verdict.kind == .hang)
        #expect(n.verdict.evidenceByName["purgatory_digest"] == n.verdict.evidenceByName["segments_digest"])
        #expect(e.verdict.evidenceByName["purgatory_digest"] == n.verdict.evidenceByName["purgatory_digest"])
        #expect(n.verdict.evidenceByName["stored_digest"] != n.verdict.evidenceByName["purgatory_digest"])
    }

    @Test func fixtureKeySelectsTheMode() throws {
        let y = """
            name: emulated purgatory
            purgatory: emulated
            machine:
              arch: x86_64
              memory:
                - { range: 0x0000000000100000-0x000000003fffffff, type: usable }
            kexec:
              kernel: { size: 512KiB }
              initrd: { size: 64KiB }
            expect: { verdict: landed }
            """
        let sc = try FixtureDecoder.decode(yaml: y, file: "t.yaml", baseDirectory: ".")
        #expect(sc.purgatory == .emulated)
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .landed)
        #expect(r.verdict.evidenceByName["purgatory"]?.hasPrefix("emulated") == true)
        // The option wins over the fixture.
        let n = try Runner.run(sc, options: RunOptions(purgatory: .native))
        #expect(n.verdict.evidenceByName["purgatory"]?.hasPrefix("native") == true)
        #expect(n.verdict.evidenceByName["purgatory_digest"] == r.verdict.evidenceByName["purgatory_digest"])
    }

    @Test func unknownModeIsAnInputError() throws {
        let y = """
            name: bad
            purgatory: fast
            machine:
              arch: x86_64
              memory:
                - { range: 0x0000000000100000-0x000000003fffffff, type: usable }
            """
        #expect {
            try FixtureDecoder.decode(yaml: y, file: "t.yaml", baseDirectory: ".")
        } throws: { e in
            let s = "\(e)"
            return s.contains("t.yaml") && s.contains("purgatory") && s.contains("native, emulated")
        }
    }
}
