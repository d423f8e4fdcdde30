import Foundation
import KexecModel
import KexecSim
import Testing

/// The `run-*` files of Tests/KexecModelTests/Malformed: fixtures that decode but ask for a load the
/// kernel refuses, each with the exact `rejected` verdict Runner.run gives (errno, check, detail), and
/// the valid neighbours of those limits.
private let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("KexecModelTests/Malformed").path

struct MalformedRun: Sendable, CustomTestStringConvertible {
    var name: String
    var verdict: VerdictKind
    var errno: String?
    var check: String?
    var detail: String?
    var testDescription: String { name }

    static func rejected(_ name: String, _ errno: String, _ check: String, _ detail: String) -> MalformedRun {
        MalformedRun(name: name, verdict: .rejected, errno: errno, check: check, detail: detail)
    }
    static func landed(_ name: String) -> MalformedRun { MalformedRun(name: name, verdict: .landed) }
}

// swift-format-ignore
let malformedRuns: [MalformedRun] = [
    .rejected("run-17-segments.yaml", "EINVAL", "kexec_load", "17 segments; KEXEC_SEGMENT_MAX is 16"),
    // kexec-tools adds purgatory as one more segment: 16 in the fixture are 17 for the kernel.
    .rejected("run-16-segments.yaml", "EINVAL", "kexec_load", "17 segments; KEXEC_SEGMENT_MAX is 16"),
    .landed("run-15-segments.yaml"),
    .rejected("run-bufsz-over-memsz.yaml", "EINVAL", "sanity_check_segment_list", "segment0: bufsz 8KiB > memsz 4KiB"),
    .rejected("run-past-destination-limit.yaml", "EADDRNOTAVAIL", "sanity_check_segment_list",
              "segment0: end 0x400000001000 is past KEXEC_DESTINATION_MEMORY_LIMIT 0x3fffffffffff"),
    .rejected("run-misaligned-mem.yaml", "EADDRNOTAVAIL", "sanity_check_segment_list",
              "segment0: mem 0x1000800 or end 0x1001800 is not aligned to PAGE_SIZE 4KiB"),
    .rejected("run-misaligned-end.yaml", "EADDRNOTAVAIL", "sanity_check_segment_list",
              "segment0: mem 0x1000000 or end 0x1001800 is not aligned to PAGE_SIZE 4KiB"),
    .rejected("run-segment-wraps.yaml", "EADDRNOTAVAIL", "sanity_check_segment_list",
              "segment0: mem + memsz wraps past 2^64"),
    .rejected("run-overlapping-segments.yaml", "EINVAL", "sanity_check_segment_list",
              "segments segment0 [0x1000000, 0x1800000) and segment1 [0x1600000, 0x1a00000) overlap"),
    .rejected("run-segment-over-half-ram.yaml", "EINVAL", "sanity_check_segment_list",
              "segment0: 281600 pages is more than half of RAM (262096 pages)"),
    .rejected("run-crash-load-outside-crashkernel.yaml", "EADDRNOTAVAIL", "sanity_check_segment_list",
              "segment0 [0x1000000, +4KiB) is not inside the crashkernel region"),
    .rejected("run-crash-without-crashkernel.yaml", "EADDRNOTAVAIL", "kexec_locate_mem_hole",
              "a crash load goes into the crashkernel reservation (crashk_res), and this machine has none: its first "
                + "kernel booted without crashkernel= (set machine.crashkernel, or import a log whose kernel reserved it)"),
    .rejected("run-kernel-larger-than-ram.yaml", "EADDRNOTAVAIL", "kexec_locate_mem_hole",
              "no top-down hole of 12GiB aligned to 2MiB for kernel in [0x1000000, 0xffffffffffffffff]"),
    .rejected("run-initrd-larger-than-free-ram.yaml", "EADDRNOTAVAIL", "kexec_locate_mem_hole",
              "no top-down hole of 2.0GiB aligned to 4KiB for initrd in [0x1000000, 0xffffffffffffffff]"),
    // Found by fuzz-plan: a kexec_load segment of memsz 0 loads nothing, as in the kernel.
    .landed("run-zero-memsz-segment.yaml"),
]

@Suite("Malformed runs")
struct MalformedRunTests {
    @Test(arguments: malformedRuns)
    func verdict(_ c: MalformedRun) throws {
        let scenario = try FixtureDecoder.load(path: corpus + "/" + c.name)
        let r = try Runner.run(scenario, options: RunOptions(timeoutSeconds: 10))
        #expect(r.verdict.kind == c.verdict, "\(r.verdict.summary)")
        #expect(r.verdict.errno == c.errno)
        let evidence = r.verdict.evidenceByName
        if c.verdict == .rejected {
            #expect(evidence["errno"] == c.errno)
            #expect(evidence["check"] == c.check)
            // Segments from the fixture are named with their line: "segment0 (<path>/<file>:10)".
            let where_ = " (" + corpus + "/" + c.name + ":"
            var detail = evidence["detail"] ?? ""
            while let r = detail.range(of: where_) {
                let close = detail[r.upperBound...].firstIndex(of: ")") ?? detail.endIndex
                detail.removeSubrange(r.lowerBound..<detail.index(after: close))
            }
            #expect(detail == c.detail)
            if c.detail?.hasPrefix("segment") == true { #expect(evidence["detail"]?.contains(where_) == true) }
        }
    }

    /// Every run-* file of the corpus is here.
    @Test func everyRunFileIsListed() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus).filter { $0.hasPrefix("run-") }
        #expect(Set(files) == Set(malformedRuns.map(\.name)))
    }
}
