import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

func fixture(_ name: String) throws -> Scenario {
    try FixtureDecoder.load(path: repoRoot + "/Fixtures/scenarios/" + name)
}

/// Every shipped scenario, through the emulator, against its `expect:`.
@Suite(.serialized) struct ShippedScenarioTests {
    static let names = try! FileManager.default.contentsOfDirectory(atPath: repoRoot + "/Fixtures/scenarios")
        .filter { $0.hasSuffix(".yaml") }.sorted()

    @Test(arguments: names)
    func verdictMatchesExpectation(_ name: String) throws {
        let sc = try fixture(name)
        let r = try Runner.run(sc)
        #expect(r.matches == true, "\(name): \(r.verdict.kind.rawValue) — \(r.verdict.summary)")
    }

    @Test func basicLandsWithExactLayout() throws {
        let r = try Runner.run(try fixture("x86_64-basic.yaml"))
        #expect(r.verdict.kind == .landed)
        let ev = r.verdict.evidenceByName
        // Newest kernel (v6.8+ reverse walk): top-down in the 4..5 GiB range. Purgatory (the real
        // one's 20 KiB) at the very top, boot_params below it, the kernel (init_size estimate 4 x
        // 12 MiB) 2 MiB aligned below those, the initrd below the kernel.
        #expect(
            ev["segments"]
                == "purgatory@0x13fffb000+20KiB boot_params@0x13fff9000+8KiB kernel@0x13ce00000+48MiB initrd@0x13ae00000+32MiB"
        )
        #expect(ev["entry"] == "0x13ce00200")
        #expect(ev["rsi"] == "0x13fff9000")
        #expect(r.engine.hasPrefix("Unicorn 2.1"))
    }

    @Test func unmappedDestinationFaultsInSwapPages() throws {
        let r = try Runner.run(try fixture("x86_64-destination-not-mapped.yaml"))
        #expect(r.verdict.kind == .pageFault)
        #expect(r.verdict.address == 0x1_0000_0000)
        let ev = r.verdict.evidenceByName
        #expect(ev["level"] == "pud")
        // 6.18 copies source → destination: the first touch of the destination is the store.
        #expect(ev["access"] == "write")
        #expect(ev["routine"]?.hasPrefix("relocate_kernel: swap_pages") == true)
        #expect(ev["region"] == "usable [0x0000000100000000-0x000000013fffffff]")
        #expect(ev["policy"] == "ram-2m")
    }

    @Test func overlappingSegmentsAreEINVAL() throws {
        let r = try Runner.run(try fixture("x86_64-overlapping-segments.yaml"))
        #expect(r.verdict.kind == .rejected)
        #expect(r.verdict.errno == "EINVAL")
    }
}

@Suite struct DamageTests {
    /// Flip one byte of one source page after planning: purgatory's digest check catches it.
    @Test func flippedSourceByteIsCaughtByPurgatory() throws {
        let sc = TestMachines.basic(
            kernel: .mib(2), initrd: .kib(256),
            inject: [.flipSourceByte(segment: "initrd", offset: ByteCount(0x2_0001))])
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .hang)
        let ev = r.verdict.evidenceByName
        #expect(ev["stamped_segment"] == "initrd")
        #expect(ev["offset_in_segment"] == "0x20001")
        #expect(ev["routine"] == "purgatory: sha256_mismatch_spin")
    }

    @Test func wrongDigestHangsWithoutAnyDifferingSegment() throws {
        let r = try Runner.run(TestMachines.basic(kernel: .mib(1), initrd: nil, inject: [.wrongDigest]))
        #expect(r.verdict.kind == .hang)
        let ev = r.verdict.evidenceByName
        #expect(ev["cause"] == "the digest stored in purgatory does not match the segments")
        #expect(ev["stamped_segment"] == nil)
    }

    @Test func placementOrdersDiffer() throws {
        guard
            case .planned(let td) = try Planner.plan(
                TestMachines.basic(kernel: .mib(2), initrd: .mib(1), placement: .topDown)),
            case .planned(let bu) = try Planner.plan(
                TestMachines.basic(kernel: .mib(2), initrd: .mib(1), placement: .bottomUp))
        else {
            Issue.record("planning failed")
            return
        }
        // Top-down: the kernel (memsz 8 MiB, the 4 x size init_size estimate) first tries
        // 0x17f800000, which overlaps purgatory, so it steps down a page and re-aligns to
        // 0x17f600000; the 1 MiB initrd then fits in the gap between the kernel and boot_params.
        // Bottom-up: purgatory and boot_params from 0x3000 (MIN_PURGATORY_ADDR, MIN_BOOTPARAM_ADDR),
        // the kernel at pref_address 16 MiB (v6.9+ buf_min), the initrd right above it.
        #expect(td.segments.map(\.mem.raw) == [0x1_7fff_b000, 0x1_7fff_9000, 0x1_7f60_0000, 0x1_7fef_9000])
        #expect(bu.segments.map(\.mem.raw) == [0x3000, 0x8000, 0x100_0000, 0x180_0000])
    }
}
