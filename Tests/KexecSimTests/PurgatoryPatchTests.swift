import GuestCode
import KexecModel
import Kimage
import Testing

@testable import KexecSim

/// Planner.filledPurgatory: purgatory_data filled through GuestBlob.patchingPurgatoryData, its
/// errors as plan errors.
@Suite struct PurgatoryPatchTests {
    /// More digest regions than purgatory_data holds is a plan error, not a trap.
    @Test func moreThanSixteenRegionsIsAPlanError() throws {
        let digest = [UInt8](repeating: 0x5a, count: 32)
        let seventeen = (0..<17).map { PurgatoryRegion(start: UInt64($0) << 21, length: 0x1000) }
        for blob in [X86_64GuestCode.purgatory, Arm64GuestCode.purgatory] {
            do {
                _ = try Planner.filledPurgatory(
                    blob, entry: PhysAddr(0x100_0200), entryArg: PhysAddr(0x9000), regions: seventeen, digest: digest)
                Issue.record("\(blob.name): 17 regions were accepted")
            } catch {
                guard case .unsupported(let message) = error else {
                    Issue.record("\(blob.name): \(error)")
                    continue
                }
                #expect(message == "purgatory: purgatory_data holds at most 16 regions, 17 given")
            }
        }
        // Sixteen fit: nr_regions = 16, the last region at regions[15].
        let b = try Planner.filledPurgatory(
            X86_64GuestCode.purgatory, entry: PhysAddr(0x100_0200), entryArg: PhysAddr(0x9000),
            regions: Array(seventeen.prefix(16)), digest: digest)
        let base = Int(X86_64GuestCode.Purgatory.purgatoryData)
        func word(_ off: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[base + off + $1]) << (8 * UInt64($1)) } }
        #expect(word(0) == 0x100_0200)
        #expect(word(8) == 0x9000)
        #expect(word(16) == 16)
        #expect(word(24 + 15 * 16) == 15 << 21)
        #expect(word(32 + 15 * 16) == 0x1000)
        #expect(Array(b[base + 280..<base + 312]) == digest)
    }

    /// Through the planner, kexec_load's 16 user segments plus the purgatory are refused before
    /// purgatory_data is filled (the count check of the syscall), never a trap.
    @Test func sixteenUserSegmentsAndThePurgatoryAreRefused() throws {
        let segments = (0..<16).map {
            "    - { mem: 0x\(String(0x100_0000 + $0 * 0x10_0000, radix: 16)), memsz: 4KiB }"
        }
        let yaml = """
            name: sixteen segments
            machine: \(repoRoot)/Fixtures/machines/x86_64-4g.yaml
            kexec:
              syscall: kexec_load
              segments:
            \(segments.joined(separator: "\n"))
            expect: { verdict: rejected }

            """
        let sc = try FixtureDecoder.decode(yaml: yaml, file: "s.yaml", baseDirectory: ".")
        guard case .rejected(let r, _) = try Planner.plan(sc) else {
            Issue.record("planned")
            return
        }
        #expect(r.errno == .EINVAL)
        #expect(r.check == "kexec_load")
        #expect(r.detail == "17 segments; KEXEC_SEGMENT_MAX is 16")
    }
}
