import Emulator
import Foundation
import KexecModel
import Kimage

/// arm64 `--follow`: the Image runs on from its entry (MMU off, x0 = DTB) in the follow machine of
/// Arm64FollowPlatform (PL011 at the DTB's address, PSCI over HVC, exceptions through VBAR_EL1).
/// Milestones of its own: `image-entered` (the hand-off), `mmu-on` (the first TLB fill with
/// SCTLR_EL1.M set: the kernel's own tables are live).
extension Arm64RunBackend {
    static var followConsoleOption: String { DtbPlatform.virt().earlycon }

    /// An address the kernel never executes: the follow run's `until`.
    static let neverExecuted = VirtAddr(0xffff_ffff_ffff_fffc)

    static func followNextKernel(_ e: Arm64Engine, plan: Plan, session: FollowSession, timeoutMicros: UInt64)
        -> FollowOutcome
    {
        let platform = DtbPlatform.virt()
        let machine: Arm64FollowPlatform
        do {
            machine = try Arm64FollowPlatform(
                engine: e, uartBase: platform.uartBase,
                gic: .init(distributor: platform.gicDistributor, cpuInterface: platform.gicCpuInterface),
                conduit: Psci.Conduit(rawValue: platform.psciMethod) ?? .hvc, console: session.console)
        } catch {
            return FollowOutcome(
                failure: FollowFailure(kind: .halt, summary: "follow machine: \(error)", evidence: []), evidence: [])
        }
        session.mark("image-entered")
        let pointerWatch = HandoffPointerWatch(plan: plan)
        e.fillObserver = { [unowned e, unowned session] va, access in
            pointerWatch?.observe(va, access, engine: e)
            if !session.reached("mmu-on"), e.read(.sctlrEL1) & 1 != 0 {
                session.mark("mmu-on")
                if pointerWatch == nil { e.fillObserver = nil }
            }
        }
        let end = Runner.followToSpin(
            e, from: VirtAddr(plan.kernelEntry.raw), until: neverExecuted, timeoutMicros: timeoutMicros
        ) { machine.handle($0, engine: e) }
        let stop = end.stop
        e.fillObserver = nil
        var ev = [
            FollowOutcome.exceptionsDelivered(machine.delivered, log: machine.log),
            Evidence(
                .firmwareCalls, machine.firmwareCalls.isEmpty ? "none" : machine.firmwareCalls.joined(separator: ", ")),
            Evidence(.interrupts, interruptWords(machine)),
            Evidence(
                .gicRegisters,
                machine.gic.touched.isEmpty ? "none" : machine.gic.touched.sorted().joined(separator: ", ")),
        ]
        ev += pointerWatch?.evidence ?? []
        if session.goalReached || session.panicLine != nil { return FollowOutcome(failure: nil, evidence: ev) }
        ev.append(Evidence(.consoleTail, session.console.tail(5).joined(separator: " | ")))
        if session.console.text.isEmpty, let log = Arm64KernelLog.read(plan: plan, memory: e.memory) {
            ev.append(log.evidence)
        }
        var failed = failure(stop, spin: end.spin, machine: machine, engine: e, plan: plan)
        // A kernel that spins after reading a wrong hand-off pointer: the address is the pointer it read.
        if failed.kind == .hang, let w = pointerWatch, !w.addresses.isEmpty { failed.address = w.pointer.raw }
        return FollowOutcome(failure: failed, evidence: ev)
    }

    /// `interrupts`: IRQs taken by ID, WFIs, and the virtual clock (Arm64FollowPlatform).
    static func interruptWords(_ m: Arm64FollowPlatform) -> String {
        let ids = m.gic.acknowledged.sorted { $0.key < $1.key }.map { "\($0.value) × ID \($0.key)" }
        let acks = ids.isEmpty ? "none acknowledged" : "acknowledged: " + ids.joined(separator: ", ")
        return "\(m.interruptsDelivered) IRQs delivered (\(acks)), "
            + "\(m.waits) WFIs (\(m.waitAddresses.count) WFI sites found); virtual timer at \(m.timer.count) ticks after \(m.timer.reads) counter reads"
    }

    /// The words for a follow run that ended before its goal.
    static func failure(
        _ stop: StopReason<Arm64Walker.Fault>, spin: String? = nil, machine: Arm64FollowPlatform,
        engine e: Arm64Engine, plan: Plan
    )
        -> FollowFailure
    {
        let sctlr = e.read(.sctlrEL1)
        let phase = sctlr & 1 == 0 ? "Image, MMU off" : "kernel, MMU on (its own tables)"
        if let (exc, vector) = machine.recursive {
            let vbar = e.read(.vbarEL1)
            let addr = exc.faultAddress?.raw ?? stop.pc.raw
            var ev = [
                Evidence(.phase, phase), Evidence(.address, hex(addr)), Evidence(.pc, hex(stop.pc.raw)),
                Evidence(.what, exc.name), Evidence(.vbarEL1, hex(vbar)),
            ]
            if let f = e.lastFault {
                ev += [Evidence(.level, f.tableLevel?.description ?? "-"), Evidence(.reason, f.reasonText)]
                ev.append(Evidence(.region, plan.scenario.machine.memory.describe(PhysAddr(f.va.raw))))
            }
            ev.append(Evidence(.handler, "none usable: the vector at \(hex(vector.raw)) faults itself"))
            ev.append(
                Evidence(
                    .onHardware,
                    "the CPU takes the same exception at the same vector again and again (a recursive exception): "
                        + "the kernel never runs another instruction"))
            return FollowFailure(
                kind: .pageFault,
                summary:
                    "recursive \(exc.name) at \(hex(addr)) in the \(phase.split(separator: ",")[0]): the vector "
                    + "\(hex(vector.raw)) (VBAR_EL1 \(hex(vbar))) is not executable",
                evidence: ev, address: addr)
        }
        if let pc = machine.idleForever {
            return FollowFailure(
                kind: .hang,
                summary:
                    "the CPU waits for an interrupt (WFI at \(hex(pc.raw &- 4))) with no timer armed and none pending",
                evidence: [Evidence(.phase, phase), Evidence(.pc, hex(pc.raw &- 4))])
        }
        if let p = machine.power {
            return FollowFailure(
                kind: .halt, summary: "the next kernel called PSCI \(p.rawValue) before its banner",
                evidence: [Evidence(.phase, phase), Evidence(.pc, hex(stop.pc.raw))])
        }
        switch stop {
        case .unbackedAccess(let pa, let access, let pc):
            let region = plan.scenario.machine.memory.describe(pa)
            return FollowFailure(
                kind: .halt,
                summary:
                    "\(access.rawValue) of \(hex(pa.raw)) in \(region): nothing answers there in the follow machine "
                    + "(an external abort on hardware)",
                evidence: [
                    Evidence(.phase, phase), Evidence(.address, hex(pa.raw)), Evidence(.access, access.rawValue),
                    Evidence(.pc, hex(pc.raw)), Evidence(.region, region),
                ], address: pa.raw)
        case .timedOut(let pc) where spin != nil:
            return FollowFailure(
                kind: .hang, summary: "the next kernel spins forever at \(hex(pc.raw)) (\(phase))",
                evidence: [Evidence(.phase, phase), Evidence(.pc, hex(pc.raw)), Evidence(.loop, spin ?? "")])
        case .timedOut(let pc), .budgetExhausted(let pc, _):
            return FollowFailure(
                kind: .hang, summary: "no progress to the goal within the follow time limit",
                evidence: [Evidence(.phase, phase), Evidence(.pc, hex(pc.raw)), Evidence(.loop, e.sampleLoop(at: pc))])
        case .cpuException(let pc, _, let detail):
            return FollowFailure(
                kind: .halt, summary: "an exception the follow machine does not deliver: \(detail)",
                evidence: [Evidence(.phase, phase), Evidence(.pc, hex(pc.raw)), Evidence(.detail, detail)])
        default:
            return FollowFailure(
                kind: .halt, summary: "the follow run stopped at \(stop.pc)",
                evidence: [Evidence(.phase, phase), Evidence(.pc, hex(stop.pc.raw))])
        }
    }
}
