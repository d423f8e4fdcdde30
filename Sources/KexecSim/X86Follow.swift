import Emulator
import Foundation
import KexecModel

/// x86_64 `--follow`: the bzImage's decompressor runs on from its 64-bit entry (long mode, kexec's
/// identity map, rsi = boot_params), then the kernel it decompressed, in the follow machine of
/// X86FollowPlatform (16550 UART on 0x3f8, exceptions through the guest's IDT). Milestones of its
/// own: `decompressor-entered` (the hand-off) and `kernel-proper` (the first instruction fetched
/// from the kernel's high mapping, 0xffffffff80000000 and up: the decompressed kernel runs on its
/// own page tables).
extension X86RunBackend {
    static var followConsoleOption: String { "earlyprintk=serial,ttyS0,115200" }

    /// Non-canonical with 4- and 5-level paging: never executed.
    static let neverExecuted = VirtAddr(0x8000_0000_0000_0000)

    static func followNextKernel(_ e: X86Engine, plan: Plan, session: FollowSession, timeoutMicros: UInt64)
        -> FollowOutcome
    {
        let machine: X86FollowPlatform
        do {
            machine = try X86FollowPlatform(engine: e, console: session.console)
        } catch {
            return FollowOutcome(
                failure: FollowFailure(kind: .halt, summary: "follow machine: \(error)", evidence: []), evidence: [])
        }
        session.mark("decompressor-entered")
        e.fillObserver = { [unowned e, unowned session] va, access in
            if access == .fetch && va >= 0xffff_ffff_8000_0000 {
                session.mark("kernel-proper")
                e.fillObserver = nil
            }
        }
        let stop = e.follow(from: VirtAddr(plan.kernelEntry.raw), until: neverExecuted, timeoutMicros: timeoutMicros) {
            machine.handle($0, engine: e)
        }
        e.fillObserver = nil
        var ev = [
            Evidence(
                .exceptionsDelivered,
                machine.delivered.isEmpty
                    ? "none"
                    : machine.delivered.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(
                        separator: ", ")
                        + (machine.log.isEmpty ? "" : "; first: " + machine.log.prefix(4).joined(separator: "; ")))
        ]
        if session.goalReached || session.panicLine != nil { return FollowOutcome(failure: nil, evidence: ev) }
        ev.append(Evidence(.consoleTail, session.console.tail(5).joined(separator: " | ")))
        let phase = session.reached("kernel-proper") ? "kernel" : "decompressor"
        if let chain = machine.tripleFault {
            let f = e.lastFault
            var fev = [
                Evidence(.phase, phase), Evidence(.pc, hex(stop.pc.raw)),
                Evidence(.what, chain.joined(separator: "; ")),
            ]
            if let f {
                fev += [
                    Evidence(.address, hex(f.va.raw)),
                    Evidence(.region, plan.scenario.machine.memory.describe(PhysAddr(f.va.raw))),
                    Evidence(.level, f.tableLevel?.description ?? "-"), Evidence(.reason, f.reasonText),
                ]
            }
            fev.append(
                Evidence(.handler, "none usable (IDT base \(hex(e.idtr.base)), limit \(hex(UInt64(e.idtr.limit))))"))
            fev.append(Evidence(.onHardware, "triple fault: the CPU resets and the machine reboots into its firmware"))
            return FollowOutcome(
                failure: FollowFailure(
                    kind: f == nil ? .halt : .pageFault,
                    summary: "triple fault in the \(phase): " + chain.joined(separator: "; "), evidence: fev,
                    address: f?.va.raw), evidence: ev)
        }
        let fev = [Evidence(.phase, phase), Evidence(.pc, hex(stop.pc.raw))]
        switch stop {
        case .unbackedAccess(let pa, let access, let pc):
            let region = plan.scenario.machine.memory.describe(pa)
            return FollowOutcome(
                failure: FollowFailure(
                    kind: .halt,
                    summary:
                        "\(access.rawValue) of \(hex(pa.raw)) in \(region) from \(hex(pc.raw)): nothing answers there",
                    evidence: fev + [Evidence(.address, hex(pa.raw)), Evidence(.region, region)], address: pa.raw),
                evidence: ev)
        case .timedOut(let pc), .budgetExhausted(let pc, _):
            return FollowOutcome(
                failure: FollowFailure(
                    kind: .hang, summary: "no progress to the goal within the follow time limit",
                    evidence: fev + [Evidence(.loop, e.sampleLoop(at: pc))]), evidence: ev)
        case .cpuException(_, _, let detail):
            return FollowOutcome(
                failure: FollowFailure(
                    kind: .halt, summary: "an exception the follow machine does not deliver: \(detail)",
                    evidence: fev + [Evidence(.detail, detail)]), evidence: ev)
        default:
            return FollowOutcome(
                failure: FollowFailure(kind: .halt, summary: "the follow run stopped at \(stop.pc)", evidence: fev),
                evidence: ev)
        }
    }
}
