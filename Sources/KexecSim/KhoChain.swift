import KexecModel
import Kimage

/// A chain of Kexec HandOver loads (`kexec:` as a list): each load runs from the kernel the
/// previous one started. That kernel was booted through KHO, so it does not reserve scratch of its
/// own: it reuses the kho_scratch array it was handed (kho_populate marks those areas and
/// memblock-reserves the array's segment; kho_memory_init then skips kho_reserve_scratch), and it
/// preserves the same memory again for the next kernel (a LUO session restored and preserved once
/// more). Every step is run and verified like a single load: the preserved pages are hashed before
/// and compared after each, and the handover is read back each time. The verdict is the first
/// step's that does not land, else the last step's, with the chain in the evidence.
enum KhoChain {
    static func run(_ sc: Scenario, options: RunOptions) throws(PlanError) -> RunResult {
        let loads = [sc.kexec].compactMap { $0 } + sc.chain
        var step = sc
        step.chain = []
        var done: [String] = []
        var last: RunResult?
        for (i, load) in loads.enumerated() {
            step.kexec = load
            let label = "step \(i + 1) of \(loads.count)"
            var r: RunResult
            var next: KhoConfig.Scratch?
            switch try Planner.plan(step) {
            case .rejected(let rejection, let s):
                r = Runner.rejected(rejection, s)
            case .planned(let plan):
                r = Runner.execute(plan, options: options)
                if let k = plan.kho, let seg = plan.segments.first(where: { $0.role == .khoScratch }),
                    let array = AddressRange(start: seg.mem, size: seg.bufsz)
                {
                    next = .handedOver(k.scratch, array: array)
                }
            }
            r.scenario = sc
            guard r.verdict.kind == .landed else {
                r.verdict.summary = "\(label): " + r.verdict.summary
                r.verdict.evidence.insert(Evidence(.chainStep, label), at: 0)
                if !done.isEmpty { r.verdict.evidence.insert(Evidence(.chain, done.joined(separator: "; ")), at: 1) }
                return r
            }
            let segs = r.verdict.evidenceByName["segments"] ?? ""
            done.append("\(i + 1): landed (\(segs))")
            last = r
            // The decoder lets only kexec_file_load (which hands over) lead to a next step.
            if let next { step.machine.kho?.scratch = next }
        }
        guard var r = last else { throw .unsupported("\(sc.file): the chain has no load") }
        let pages = sc.machine.kho?.preserved.reduce(UInt64(0)) { $0 + $1.range.size.raw / 0x1000 } ?? 0
        r.verdict.summary =
            "all \(loads.count) loads of the chain landed, each with the preserved pages intact; last: "
            + r.verdict.summary
        r.verdict.evidence.insert(
            Evidence(
                .chain,
                "\(loads.count) loads, \(sc.machine.kho?.preserved.count ?? 0) preserved ranges (\(pages) pages) "
                    + "intact after each; " + done.joined(separator: "; ")), at: 0)
        return r
    }
}
