import Emulator
import GuestCode
import KexecModel
import Kimage

/// What one architecture adds to the shared run pipeline (RunPipeline.swift): its engine, its
/// guest code, the CPU state at the call of the relocation routine, the hand-off rules at the next
/// kernel's entry, and the words for its faults and exceptions. Planning, layout, the phases,
/// verification and the evidence vocabulary exist once.
protocol RunBackend {
    associatedtype Arch: EngineArchitecture

    static var relocateKernel: GuestBlob { get }
    static var purgatory: GuestBlob { get }
    static var probe: GuestBlob { get }
    /// Offset of the purgatory's `sha256_mismatch_spin` from its load base.
    static var mismatchSpinOffset: UInt64 { get }
    /// Offsets of the purgatory's sha256_init, sha256_update and sha256_final from its load base.
    static var sha256Routines: NativePurgatorySha256<Arch>.Routines { get }
    /// Offset of `purgatory_computed_digest` (the digest purgatory_main computed) from the load base.
    static var computedDigestOffset: UInt64 { get }

    /// Sets the engine up as the first kernel leaves it at the call of the relocation routine, with
    /// `startAddress` as the routine's jump target; returns the PC to start at.
    static func prepare(_ e: Engine<Arch>, plan: Plan, startAddress: PhysAddr) -> VirtAddr

    /// The relocation routine's symbol at `pc`, when `pc` is in the control page (or its alias).
    static func relocationOffset(_ pc: UInt64, plan: Plan) -> UInt64?

    /// nil when the registers at the entry are the hand-off the next kernel expects; otherwise the
    /// summary and the evidence of what is wrong.
    static func handOffProblem(_ e: Engine<Arch>, plan: Plan) -> (summary: String, evidence: [Evidence])?

    /// The landed verdict's summary and hand-off evidence (entry, argument register, MMU state).
    static func landed(_ e: Engine<Arch>, plan: Plan) -> (summary: String, evidence: [Evidence])

    /// Evidence only this architecture has, for a landed run (arm64 table costs, protection).
    static func landedExtras(plan: Plan) -> [Evidence]

    /// The physical address behind a faulting VA (x86's identity map: the VA itself; arm64's
    /// linear map: VA + phys offset), and architecture detail for the evidence.
    static func faultDetail(_ f: Arch.Fault, plan: Plan) -> (physical: UInt64, evidence: [Evidence])

    /// What the hardware does with an exception kexec's path cannot handle, and the registers that say so.
    static func exceptionEvidence(_ e: Engine<Arch>) -> [Evidence]

    /// Offsets of the touch probe's entry and of its end (where the host stops it) in `probe`.
    static var touchProbeOffsets: (start: UInt64, done: UInt64) { get }

    /// The touch probe's arguments: the address of the list and how many addresses it holds.
    static func setTouchProbeArguments(_ e: Engine<Arch>, list: UInt64, count: Int)

    /// How many listed addresses the touch probe had not read when it stopped.
    static func touchesLeft(_ e: Engine<Arch>) -> Int

    /// `--follow`: the early-console option the next kernel's command line gets.
    static var followConsoleOption: String { get }

    /// `--follow`: runs the next kernel on from its entry (the engine as the hand-off left it) in
    /// the architecture's follow machine, feeding its console to `session`, for at most
    /// `timeoutMicros` of wall time (Follow.swift).
    static func followNextKernel(_ e: Engine<Arch>, plan: Plan, session: FollowSession, timeoutMicros: UInt64)
        -> FollowOutcome
}

/// x86_64: relocate_kernel entered at the control page's kernel-virtual alias with long mode and
/// paging on through the first kernel's tables (arch/x86/kernel/machine_kexec_64.c machine_kexec,
/// relocate_kernel_64.S); the next kernel is entered with rsi = boot_params.
enum X86RunBackend: RunBackend {
    typealias Arch = X86

    static var relocateKernel: GuestBlob { X86_64GuestCode.relocateKernel }
    static var purgatory: GuestBlob { X86_64GuestCode.purgatory }
    static var probe: GuestBlob { X86_64GuestCode.probe }
    static var mismatchSpinOffset: UInt64 { X86_64GuestCode.Purgatory.sha256MismatchSpin }
    static var sha256Routines: NativePurgatorySha256<X86>.Routines {
        typealias P = X86_64GuestCode.Purgatory
        return .init(initial: P.sha256Init, update: P.sha256Update, final: P.sha256Final)
    }
    static var computedDigestOffset: UInt64 { X86_64GuestCode.Purgatory.purgatoryComputedDigest }

    static func prepare(_ e: X86Engine, plan: Plan, startAddress: PhysAddr) -> VirtAddr {
        guard let x = plan.x86 else { return VirtAddr(0) }
        // CPU state at the call of relocate_kernel: long mode, paging on through the first
        // kernel's tables, WP set, running at the control page's alias.
        e.enterLongMode(cr3: x.firstKernelTables.root, fiveLevel: plan.scenario.machine.paging == .fiveLevel)
        e.write(.cr0, 0x8005_0033)
        e.write(.rdi, plan.kimage.head)
        e.write(.rsi, x.controlVA.raw + X86_64GuestCode.pageListOffset)
        e.write(.rdx, startAddress.raw)
        e.write(.rcx, 0)
        e.write(.rsp, 0)
        // swap_pages of the running kernel: the 3-way swap before v6.14, one copy since.
        let swaps = X86RelocationRule.of(plan.scenario.machine.kernelVersion).swapsAlways
        return VirtAddr(x.controlVA.raw + (swaps ? X86_64GuestCode.RelocateKernel.relocateKernelSwap : 0))
    }

    static func relocationOffset(_ pc: UInt64, plan: Plan) -> UInt64? {
        let cpa = plan.kimage.controlPage.raw
        if let cva = plan.x86?.controlVA.raw, pc >= cva && pc - cva < 0x1000 { return pc - cva }
        if pc >= cpa && pc - cpa < 0x1000 { return pc - cpa }
        return nil
    }

    static func handOffProblem(_ e: X86Engine, plan: Plan) -> (summary: String, evidence: [Evidence])? {
        let rip = e.read(.rip)
        let rsi = e.read(.rsi)
        guard rip != plan.kernelEntry.raw || rsi != plan.expectedHandOffArgument.raw else { return nil }
        return (
            "reached the entry with wrong hand-off registers: rip \(hex(rip)) rsi \(hex(rsi))",
            [
                Evidence(.rip, hex(rip)), Evidence(.rsi, hex(rsi)), Evidence(.expectedRip, hex(plan.kernelEntry.raw)),
                Evidence(.expectedRsi, hex(plan.entryArgument.raw)),
            ]
        )
    }

    static func landed(_ e: X86Engine, plan: Plan) -> (summary: String, evidence: [Evidence]) {
        let rip = e.read(.rip)
        let rsi = e.read(.rsi)
        return (
            "every destination byte matches, entry \(hex(rip)) with rsi = boot_params \(hex(rsi)), nothing else changed",
            [Evidence(.entry, hex(rip)), Evidence(.rsi, hex(rsi))]
        )
    }

    static func landedExtras(plan: Plan) -> [Evidence] { [] }

    static func faultDetail(_ f: X86Walker.Fault, plan: Plan) -> (physical: UInt64, evidence: [Evidence]) {
        (
            f.va.raw,
            [Evidence(.entryAddress, f.entryAddress.map { hex($0.raw) } ?? "-"), Evidence(.entry, hex(f.entry))]
        )
    }

    static func exceptionEvidence(_ e: X86Engine) -> [Evidence] {
        [
            Evidence(
                .onHardware,
                "machine_kexec loaded an empty IDT: the exception cannot be delivered, the CPU triple-faults "
                    + "and resets (the machine reboots into its firmware instead of the new kernel)"
            )
        ]
    }

    static var touchProbeOffsets: (start: UInt64, done: UInt64) {
        (X86_64GuestCode.Probe.touchProbe, X86_64GuestCode.Probe.touchProbeDone)
    }

    static func setTouchProbeArguments(_ e: X86Engine, list: UInt64, count: Int) {
        e.write(.rsi, list)
        e.write(.rcx, UInt64(count))
    }

    static func touchesLeft(_ e: X86Engine) -> Int { Int(e.read(.rcx)) }
}
