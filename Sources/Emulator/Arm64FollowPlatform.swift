import KexecModel

/// The machine an arm64 kernel finds after kexec when the run follows it: a PL011 UART at the
/// DTB's address collecting the early console, PSCI answered over the DTB's conduit, every
/// exception the engine stops at delivered through the kernel's own VBAR_EL1 (Arm64Exceptions.swift),
/// and the timer interrupt: the EL1 virtual timer on a host-kept deterministic clock
/// (Arm64VirtualTimer) wired to PPI 27 of a GICv2 (Gicv2), its IRQ taken through VBAR_EL1 + 0x280
/// (+0x480 from EL0) when PSTATE.I is clear.
///
/// When the host looks at the IRQ line: when the guest reads the counter or writes the timer
/// (the MRS / MSR hook asks for a stop when the line is up), when it writes the GIC, when it waits
/// (WFI, found by scanning each fetched page: the clock jumps to the timer's deadline, the
/// Arm ARM's "WFI wakes on a pending interrupt, masked or not", D1.6.2). A pending IRQ that is masked is taken at the
/// first instruction with PSTATE.I clear (`Engine.watchForIRQUnmask`). Nothing depends on wall
/// time: no run slices. (Tried and dropped: resuming after Unicorn's own timeout stop, every
/// 20 ms, made Debian's 6.1 Image oops in paging_init, a NULL read in create_kpti_ng_temp_pgd,
/// where the same run without slices goes on to its initcalls.) A guest that spins on memory
/// without reading the counter sees no time pass.
///
/// Contract: `handle` is the `Engine.follow` handler. It resumes after a delivered exception or
/// an answered PSCI call, and ends the run on: a recursive exception (the vector itself faults,
/// e.g. VBAR_EL1 still holds the first kernel's virtual address with the MMU off), a PSCI
/// SYSTEM_OFF / SYSTEM_RESET, an access to physical memory nothing backs (an external abort on
/// hardware), a WFI nothing can end (`idleForever`), a named stop of the caller, the time limit,
/// or an exception the model cannot deliver.
public final class Arm64FollowPlatform: Arm64SystemRegisterHandler {
    public let console: ConsoleLog
    public let uart: Pl011Uart
    public let psci: Psci
    /// Exceptions delivered, by name, and PSCI calls answered.
    public private(set) var delivered: [String: Int] = [:]
    public private(set) var firmwareCalls: [String] = []
    /// Set when a PSCI call powered the machine off or reset it.
    public private(set) var power: Psci.Power?
    /// Set when an exception was taken at the vector of the previous one: the CPU would take
    /// exceptions forever.
    public private(set) var recursive: (exception: Arm64Exception, vector: VirtAddr)?
    /// The first delivered exceptions, for the evidence: "data abort at 0x… (PC 0x…) → 0x…".
    public private(set) var log: [String] = []
    private var lastVector: VirtAddr?

    public let timer = Arm64VirtualTimer()
    public let gic = Gicv2()
    /// IRQs delivered through VBAR_EL1, WFIs the CPU executed.
    public private(set) var interruptsDelivered = 0
    public private(set) var waits = 0
    /// Set when the CPU waited for an interrupt that nothing can raise (no timer armed, nothing
    /// pending): the PC past the WFI.
    public private(set) var idleForever: VirtAddr?
    /// The named stops of this platform.
    static let irqStop = "irq", unmaskedStop = "irq unmasked", wfiStop = "wfi"
    /// AArch64 WFI (C6.2.391).
    static let wfi: UInt32 = 0xd503_207f
    private unowned let engine: Arm64Engine
    private var stopRequested = false
    private var watch: Arm64IRQUnmaskWatch?

    /// The GICv2's windows where QEMU virt has them (hw/arm/virt.c: distributor 0x08000000, CPU
    /// interface 0x08010000, 64 KiB each).
    public struct GicWindows: Sendable {
        public var distributor: PhysAddr
        public var cpuInterface: PhysAddr
        public init(distributor: PhysAddr, cpuInterface: PhysAddr) {
            self.distributor = distributor
            self.cpuInterface = cpuInterface
        }
        public static let virt = GicWindows(distributor: PhysAddr(0x800_0000), cpuInterface: PhysAddr(0x801_0000))
    }

    /// Maps a PL011 at `uartBase` (one 4 KiB window) and the GIC's two 64 KiB windows into
    /// `engine`, and takes over the virtual timer's registers and WFI.
    public init(
        engine: Arm64Engine, uartBase: PhysAddr, gic windows: GicWindows = .virt, conduit: Psci.Conduit,
        console: ConsoleLog
    ) throws(EmulatorError) {
        self.console = console
        self.engine = engine
        uart = Pl011Uart(console: console)
        psci = Psci(conduit: conduit)
        guard let window = AddressRange(start: uartBase, size: kexecPageSize),
            let dist = AddressRange(start: windows.distributor, size: ByteCount(0x10000)),
            let cpu = AddressRange(start: windows.cpuInterface, size: ByteCount(0x10000))
        else { throw .memory("a device window at \(uartBase) / \(windows.distributor) wraps") }
        try engine.mapMMIO(window, device: uart)
        try engine.mapMMIO(dist, device: gic.distributor)
        try engine.mapMMIO(cpu, device: gic.cpuInterface)
        gic.level = { [unowned timer] id in id == Arm64VirtualTimer.interruptID && timer.interruptAsserted }
        gic.onChange = { [unowned self] in self.lineMayHaveRisen() }
        try engine.handleSystemRegisters(self)
        engine.onFetchFill = { [unowned self] va, pa in self.findWaits(va: va, pa: pa) }
    }

    /// Unicorn 2.1.4 executes WFI as a no-op (measured: `wfi` then the next instruction, no return
    /// from uc_emu_start, no hook for it). So every page the CPU fetches from is scanned once per
    /// (VA, PA) pair when it is first filled, and each WFI found gets a named stop there.
    private struct PagePair: Hashable {
        var va: UInt64
        var pa: UInt64
    }
    private var scannedPages: Set<PagePair> = []
    public private(set) var waitAddresses: Set<UInt64> = []

    private func findWaits(va: VirtAddr, pa: PhysAddr) {
        guard scannedPages.insert(PagePair(va: va.raw, pa: pa.raw)).inserted,
            let page = engine.memory.read(pa, count: 4096)
        else { return }
        for i in stride(from: 0, to: 4096, by: 4) {
            let w = UInt32(page[i]) | UInt32(page[i + 1]) << 8 | UInt32(page[i + 2]) << 16 | UInt32(page[i + 3]) << 24
            guard w == Self.wfi else { continue }
            let at = va.raw + UInt64(i)
            if waitAddresses.insert(at).inserted {
                try? engine.stop(at: VirtAddr(at), name: Self.wfiStop, flush: false)
            }
        }
    }

    // MARK: The timer's registers (Arm64SystemRegisterHandler).

    public func read(_ register: Arm64SystemRegister) -> UInt64? {
        switch register {
        case .cntvct, .cntpct:
            let v = timer.readCounter()
            lineMayHaveRisen()
            return v
        case .cntvCtl: return timer.controlRegister
        case .cntvCval: return timer.compareValue
        case .cntvTval: return timer.timerValue
        default: return nil
        }
    }

    public func write(_ register: Arm64SystemRegister, value: UInt64) -> Bool {
        switch register {
        case .cntvCtl: timer.writeControl(value)
        case .cntvCval: timer.writeCompare(value)
        case .cntvTval: timer.writeTimerValue(value)
        case .daif:
            if value & 0x80 == 0 { lineMayHaveRisen() }
            return false
        default: return false
        }
        lineMayHaveRisen()
        return true
    }

    /// Asks the engine to stop (once until the stop is handled) when the GIC signals an IRQ.
    private func lineMayHaveRisen() {
        guard !stopRequested, watch == nil, gic.signalsIRQ else { return }
        stopRequested = true
        engine.requestStop(Self.irqStop)
    }

    /// At a stop where the IRQ line may be up: takes the IRQ if PSTATE.I is clear, otherwise
    /// watches for the unmask; resumes at `pc` when nothing is pending.
    private func serviceInterrupt(at pc: VirtAddr) -> FollowDecision {
        stopRequested = false
        guard gic.signalsIRQ else {
            watch?.end()
            watch = nil
            return .resume(pc)
        }
        if engine.pstate & 0x80 == 0 {
            watch?.end()
            watch = nil
            interruptsDelivered += 1
            return deliver(.irq, returnAddress: pc, engine: engine)
        }
        if watch == nil { watch = try? engine.watchForIRQUnmask(name: Self.unmaskedStop) }
        return .resume(pc)
    }

    public var exceptionsDelivered: Int { delivered.values.reduce(0, +) }

    public func handle(_ stop: StopReason<Arm64Walker.Fault>, engine e: Arm64Engine) -> FollowDecision {
        // A stop asked for by the timer hook can lose to another stop of the same run (a fault is
        // reported first): any stop re-arms the request, the line is looked at again on the next
        // counter read.
        stopRequested = false
        switch stop {
        case .translationFault(let f, let access, let pc):
            let exc: Arm64Exception
            if access == .fetch {
                let same = pc.raw & ~0xfff == f.va.raw & ~0xfff
                exc = .instructionAbort(address: same ? pc : f.va, status: f.statusCode)
            } else {
                exc = .dataAbort(address: f.va, write: access == .write, status: f.statusCode)
            }
            return deliver(exc, returnAddress: pc, engine: e)
        case .cpuException(let pc, let intno?, _):
            return exception(intno, pc: pc, engine: e)
        case .stoppedAt(let pc, Self.irqStop), .stoppedAt(let pc, Self.unmaskedStop):
            return serviceInterrupt(at: pc)
        case .stoppedAt(let pc, Self.wfiStop):
            // The stop comes before the WFI (or, when Unicorn finished it, just after it).
            let after = waitAddresses.contains(pc.raw) ? VirtAddr(pc.raw &+ 4) : pc
            waits += 1
            if !gic.signalsIRQ && !timer.fastForwardToDeadline() {
                idleForever = after
                return .end
            }
            return serviceInterrupt(at: after)
        default:
            return .end
        }
    }

    /// QEMU's EXCP_* numbers (target/arm/cpu.h): 1 UDEF, 2 SWI, 7 BKPT, 11 HVC, 13 SMC.
    private func exception(_ intno: UInt32, pc: VirtAddr, engine e: Arm64Engine) -> FollowDecision {
        switch intno {
        case 1, 11, 13:
            // Without EL2 / EL3 in the CPU model, HVC and SMC are UNDEFINED at EL1: PC is the
            // instruction. With them, QEMU raises EXCP_HVC / EXCP_SMC with PC past it.
            let at = intno == 1 ? pc : VirtAddr(pc.raw &- 4)
            if let insn = e.instruction(at: at), insn == psci.instruction {
                let answer = psci.call(x0: e.read(.x0), x1: e.read(.x1))
                let fn = Psci.Function(rawValue: UInt32(truncatingIfNeeded: e.read(.x0)))
                if firmwareCalls.count < 64 { firmwareCalls.append(fn.map { "\($0)" } ?? hex(e.read(.x0))) }
                e.write(.x0, answer.x0)
                if let p = answer.power {
                    power = p
                    return .end
                }
                return .resume(VirtAddr(at.raw &+ 4))
            }
            return deliver(.undefined, returnAddress: pc, engine: e)
        case 7:
            let insn = e.instruction(at: pc) ?? 0
            return deliver(.breakpoint(UInt16(truncatingIfNeeded: insn >> 5)), returnAddress: pc, engine: e)
        case 2:
            let insn = e.instruction(at: VirtAddr(pc.raw &- 4)) ?? 0
            return deliver(.supervisorCall(UInt16(truncatingIfNeeded: insn >> 5)), returnAddress: pc, engine: e)
        default:
            return .end
        }
    }

    private func deliver(_ exc: Arm64Exception, returnAddress pc: VirtAddr, engine e: Arm64Engine) -> FollowDecision {
        if exc != .irq, let v = lastVector, v == pc {
            recursive = (exc, v)
            return .end
        }
        let vector = e.takeException(exc, returnAddress: pc)
        delivered[exc.name, default: 0] += 1
        if log.count < 16 && exc != .irq {
            let at = exc.faultAddress.map { " at \(hex($0.raw))" } ?? ""
            log.append("\(exc.name)\(at) (PC \(hex(pc.raw))) → vector \(hex(vector.raw))")
        }
        lastVector = vector
        return .resume(vector)
    }
}
