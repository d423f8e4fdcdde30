import Foundation
import KexecModel
import KexecSim
import Testing

/// Issue 17 with --follow: every KHO page (preserved data by sha256, metadata by copy) is compared
/// once more after the next kernel ran, at the milestone it stopped at.
@Suite struct KhoFollowTests {
    /// A KHO handover (three memfd sessions) into `kernel`, followed to `goal`.
    static func scenario(kernel: String, scratch: String, goal: String) throws -> Scenario {
        let yaml = """
            name: KHO followed
            machine:
              arch: arm64
              kernel: "7.1"
              memory:
                - { range: 0x0000000040000000-0x000000013fffffff, type: usable }
              numa_nodes: [0x40000000-0x7fffffff, 0x80000000-0xbfffffff, 0xc0000000-0x13fffffff]
              kho:
                param: "kho_scratch=\(scratch)"
                preserved:
                  - { range: 0x60000000+2MiB, owner: "memfd session 1" }
                  - { range: 0xa0001000+0x3000, owner: "memfd session 2" }
                  - { range: 0x100000000+1MiB, owner: "memfd session 3" }
            kexec:
              kernel: { file: \(kernel) }
              cmdline: "console=ttyAMA0 kho=on"
            follow: \(goal)
            """
        return try FixtureDecoder.decode(yaml: yaml, file: "kho.yaml", baseDirectory: repoRoot + "/Fixtures/follow")
    }

    /// The shipped tiny Image parks in a WFE loop at once: every KHO page is intact when the follow
    /// run ends, and the evidence says how many were compared.
    @Test func pagesIntactAfterATinyNextKernel() throws {
        let sc = try Self.scenario(kernel: "../images/arm64-tiny.Image", scratch: "32M,64M,32M", goal: "banner")
        let r = try Runner.run(sc, options: RunOptions(followTimeoutSeconds: 0.5))
        let ev = r.verdict.evidenceByName
        #expect(r.verdict.kind == .hang, "\(r.verdict.summary)")
        #expect(ev["milestones"] == "image-entered")
        #expect(
            ev["kho_after_follow"]
                == "preserved pages intact after next kernel: 771 pages (3 ranges) and 22 KHO metadata pages, "
                + "compared when it stopped (at image-entered)")
    }

    /// Debian's 6.1 Image knows nothing of KHO: its memblock allocations, top-down from the end of
    /// RAM, overwrite the first kernel's KHO metadata; the preserved data pages survive.
    @Test(.enabled(if: DebianKernel.arm64Present, "no .kernels/Image-arm64: run scripts/fetch-debian-kernel"))
    func debian61OverwritesTheKhoMetadata() throws {
        let r = try Runner.run(try followFixture("arm64-follow-kho-memfd.yaml"))
        let ev = r.verdict.evidenceByName
        #expect(r.matches == true, "\(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        #expect(r.verdict.kind == .strayWrite)
        #expect(r.verdict.address == 0x1_3ffe_9000)
        #expect(r.verdict.followedTo == .memory)
        #expect(
            r.verdict.summary
                == "preserved memory changed while the next kernel ran (to its memory): page 0x13ffe9000 "
                + "(KHO metadata: radix tree bitmap (level 0)) in usable [0x0000000040000000-0x000000013fffffff]")
        #expect(ev["phase"] == "next kernel (run to memory)")
        #expect(ev["preserved_range"] == "[0x0000000100000000-0x00000001000fffff]")
        #expect(
            ev["owner"] == "KHO's preserved-memory map (radix tree bitmap (level 0)), describing \"memfd session 3\"")
        #expect(
            ev["kho_after_follow"]?.hasPrefix(
                "22 of 793 KHO pages changed after next kernel (0 of 771 preserved pages, 22 of 22 metadata pages): "
                    + "0x13ffe9000, ") == true)
        // Before the next kernel ran, the relocation and the hand-off kept every page.
        #expect(ev["kho_preserved"]?.hasPrefix("4 ranges (772 pages) unchanged (sha256 before and after)") == true)
        #expect(ev["memory_check"] == "agrees")
        #expect(ev["milestones"] == "image-entered, mmu-on, banner, memory")
    }
}
