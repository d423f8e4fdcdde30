// libFuzzer target: the fuzzed text is the rest of a scenario (kexec:, policy:, expect:, …) after a
// fixed small x86_64 machine; it is decoded and planned with Planner.plan (planning only: segment
// placement, sanity checks, kimage, page tables; no emulation).
//
// The planner generates every payload byte, so inputs asking for more than 48 MiB of payload are
// skipped (the machine has 94 MiB of RAM: kexec_load segments over half of it are rejected before
// any byte is generated; kexec_file_load payloads are the ones skipped).
//
// Checked beyond "does not crash": a planned load has page-aligned, disjoint segments; kexec_file_load
// puts them in usable RAM, a crash load inside the crashkernel ranges; a rejection carries a check.
import KexecModel
import KexecSim
import Kimage

private let machine = """
    name: fuzz
    machine:
      arch: x86_64
      memory:
        - { range: 0x0-0x9ffff, type: usable }
        - { range: 0xa0000-0xfffff, type: reserved }
        - { range: 0x100000-0x3ffffff, type: usable }
        - { range: 0x4000000-0x40fffff, type: acpi }
        - { range: 0x4100000-0x5ffffff, type: usable }
        - { range: 0xfec00000-0xffffffff, type: reserved }
      crashkernel_ranges: [0x5000000-0x5ffffff]

    """

private let maxPayload: UInt64 = 48 << 20

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPlan(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let scenario: Scenario
    do throws(InputError) {
        scenario = try FixtureDecoder.decode(yaml: machine + text, file: "fuzz.yaml", baseDirectory: "")
    } catch {
        return 0
    }
    guard let req = scenario.kexec else { return 0 }
    var payload: UInt64 = 0
    switch req.syscall {
    case .kexecFileLoad:
        for p in [req.kernel, req.initrd] { payload = payload &+ (p?.size?.raw ?? 0) }
    case .kexecLoad:
        for s in req.segments { payload = payload &+ s.bufsz.raw }
    }
    // &+ may wrap: a wrapped sum is below the cap only when some single size is huge, so check each too.
    let sizes = [req.kernel?.size?.raw ?? 0, req.initrd?.size?.raw ?? 0] + req.segments.map(\.bufsz.raw)
    if req.syscall == .kexecFileLoad, payload > maxPayload || sizes.contains(where: { $0 > maxPayload }) { return 0 }

    let outcome: PlanOutcome
    do throws(PlanError) {
        outcome = try Planner.plan(scenario)
    } catch {
        precondition(!error.description.isEmpty, "empty plan error")
        return 0
    }
    switch outcome {
    case .rejected(let r, _):
        precondition(!r.check.isEmpty, "a rejection without a check: \(r)")
    case .planned(let plan):
        let segs = plan.segments
        let crash = scenario.machine.crashkernelRanges
        for (i, s) in segs.enumerated() {
            // kexec_load takes a segment of memsz 0 (it loads nothing): it has no range.
            guard let r = s.range else {
                precondition(s.memsz.raw == 0 && req.syscall == .kexecLoad, "segment \(s.name) without a range")
                continue
            }
            precondition(s.mem.isAligned(kexecPageSize) && s.memsz.raw % kexecPageSize.raw == 0, "unaligned \(s.name)")
            precondition(s.bufsz <= s.memsz, "bufsz > memsz planned for \(s.name)")
            for t in segs[(i + 1)...] {
                precondition(!(t.range.map(r.overlaps) ?? false), "\(s.name) overlaps \(t.name)")
            }
            if req.type == .crash { precondition(crash.contains { $0.contains(r) }, "\(s.name) outside crashkernel") }
            if req.syscall == .kexecFileLoad && req.type == .normal {
                precondition(scenario.machine.memory.usable.covers(r), "\(s.name) \(r) outside usable RAM")
            }
        }
    }
    return 0
}
