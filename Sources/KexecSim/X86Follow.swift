import Emulator
import Foundation
import KexecModel

/// x86_64 `--follow`: the bzImage's decompressor runs on from its 64-bit entry (long mode, kexec's
/// identity map, rsi = boot_params), then the kernel it decompressed, in the follow machine of
/// X86FollowPlatform (16550 UART on 0x3f8, exceptions through the guest's IDT). Milestones of its
/// own: `decompressor-entered` (the hand-off), `handler` (the first exception delivered through
/// a present gate of the guest's IDT: in Debian's 6.1 bzImage the decompressor's stage-2 #PF
/// handler, so sev_enable and the relocation are behind it) and `kernel-proper` (the first
/// instruction fetched from the kernel's high mapping, 0xffffffff80000000 and up: the decompressed
/// kernel runs on its own page tables).
///
/// The machine's CPU description (`machine.cpu`) answers CPUID; an EFI-booted machine's system
/// table and config table array are put in its firmware memory (`X86EfiState.firmwareTables`)
/// before the kernel runs, where the hand-off left nothing.
extension X86RunBackend {
    static var followConsoleOption: String { "earlyprintk=serial,ttyS0,115200" }

    /// Non-canonical with 4- and 5-level paging: never executed.
    static let neverExecuted = VirtAddr(0x8000_0000_0000_0000)

    static func followNextKernel(_ e: X86Engine, plan: Plan, session: FollowSession, timeoutMicros: UInt64)
        -> FollowOutcome
    {
        let machine: X86FollowPlatform
        do {
            machine = try X86FollowPlatform(engine: e, console: session.console, cpu: plan.scenario.machine.cpu)
        } catch {
            return FollowOutcome(
                failure: FollowFailure(kind: .halt, summary: "follow machine: \(error)", evidence: []), evidence: [])
        }
        for (at, bytes) in X86EfiState.firmwareTables(plan.scenario.machine) {
            guard putFirmware(bytes, at: at, in: e.memory) else {
                return FollowOutcome(
                    failure: FollowFailure(
                        kind: .halt, summary: "the EFI table at \(hex(at.raw)) cannot be put in guest memory",
                        evidence: []),
                    evidence: [])
            }
        }
        session.mark("decompressor-entered")
        let pointerWatch = HandoffPointerWatch(plan: plan)
        e.fillObserver = { [unowned e, unowned session] va, access in
            pointerWatch?.observe(va, access, engine: e)
            if access == .fetch && va >= 0xffff_ffff_8000_0000 {
                session.mark("kernel-proper")
                if pointerWatch == nil { e.fillObserver = nil }
            }
        }
        let end = Runner.followToSpin(
            e, from: VirtAddr(plan.kernelEntry.raw), until: neverExecuted, timeoutMicros: timeoutMicros
        ) {
            let next = machine.handle($0, engine: e)
            if case .resume = next, !machine.delivered.isEmpty, !session.reached("handler"),
                session.markGoal(.handler)
            {
                return .end
            }
            return next
        }
        let stop = end.stop
        e.fillObserver = nil
        var ev = [
            FollowOutcome.exceptionsDelivered(machine.delivered, log: machine.log)
        ]
        if !machine.apic.touched.isEmpty {
            ev.append(
                Evidence(.localApic, "registers used: " + machine.apic.touched.map { hex($0) }.joined(separator: ", ")))
        }
        if !machine.interrupts.isEmpty || machine.clock.now > 0 {
            let vectors = machine.interrupts.sorted { $0.key < $1.key }
                .map { "vector \(hex(UInt64($0.key))) ×\($0.value)" }
            ev.append(
                Evidence(
                    .interrupts,
                    (vectors.isEmpty ? "none delivered" : vectors.joined(separator: ", "))
                        + "; virtual clock \(machine.clock.now) ns (\(machine.clock.tscReads) TSC reads, "
                        + "\(machine.clock.blocks) blocks clocked)"))
        }
        if let h = machine.halted {
            let why = e.read(.rflags) & 0x200 == 0 ? "IF clear" : "no timer armed"
            ev.append(
                Evidence(
                    .cpuHalted, "HLT before \(hex(h.raw)) with \(why): the CPU waits forever (\(machine.waits) HLTs)"))
        }
        if !machine.unclaimedPorts.accesses.isEmpty {
            ev.append(Evidence(.ioPorts, "unclaimed: " + machine.unclaimedPorts.accesses.joined(separator: ", ")))
        }
        if let c = machine.cpuid {
            ev.append(
                Evidence(
                    .cpuidLeaves,
                    "\(c.model.vendor.rawValue)\(c.model.sev ? " with SEV" : ""): "
                        + c.leavesAsked.map { hex(UInt64($0)) }.joined(separator: ", ")))
        }
        ev += pointerWatch?.evidence ?? []
        if session.goalReached || session.panicLine != nil { return FollowOutcome(failure: nil, evidence: ev) }
        ev.append(Evidence(.consoleTail, session.console.tail(5).joined(separator: " | ")))
        if !machine.recent.isEmpty { ev.append(Evidence(.lastExceptions, machine.recent.joined(separator: "; "))) }
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
            fev.append(Evidence(.policy, plan.policyLabel))
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
        case .timedOut(let pc) where end.spin != nil:
            return FollowOutcome(
                failure: FollowFailure(
                    kind: .hang, summary: "the next kernel spins forever at \(hex(pc.raw)) (\(phase))",
                    evidence: fev + [Evidence(.loop, end.spin ?? "")]), evidence: ev)
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

extension X86RunBackend {
    /// Writes firmware bytes the hand-off left nowhere: backs the pages they need (firmware memory
    /// is backed on demand, so they may be unbacked yet) and copies them. False when a page cannot
    /// be backed (it overlaps a block of another size) or the copy fails.
    static func putFirmware(_ bytes: [UInt8], at: PhysAddr, in mem: GuestMemory) -> Bool {
        guard !bytes.isEmpty else { return true }
        let first = at.raw & ~0xfff
        let last = (at.raw &+ UInt64(bytes.count) &- 1) & ~0xfff
        for page in stride(from: first, through: last, by: 0x1000) where !mem.isBacked(PhysAddr(page)) {
            guard (try? mem.add(start: PhysAddr(page), size: kexecPageSize, label: "firmware")) != nil else {
                return false
            }
        }
        // Page by page: each page may be a block of its own.
        var off = 0
        while off < bytes.count {
            let a = at.raw &+ UInt64(off)
            let n = min(bytes.count - off, Int(0x1000 - a & 0xfff))
            guard mem.write(PhysAddr(a), Array(bytes[off..<off + n])) else { return false }
            off += n
        }
        return true
    }
}
