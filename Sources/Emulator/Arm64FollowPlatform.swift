import KexecModel

/// The machine an arm64 kernel finds after kexec when the run follows it: a PL011 UART at the
/// DTB's address collecting the early console, PSCI answered over the DTB's conduit, and every
/// exception the engine stops at delivered through the kernel's own VBAR_EL1 (Arm64Exceptions.swift).
/// The generic timer is the CPU model's own (CNTVCT counts, no interrupt is ever raised: there is
/// no interrupt controller model).
///
/// Contract: `handle` is the `Engine.follow` handler. It resumes after a delivered exception or
/// an answered PSCI call, and ends the run on: a recursive exception (the vector itself faults,
/// e.g. VBAR_EL1 still holds the first kernel's virtual address with the MMU off), a PSCI
/// SYSTEM_OFF / SYSTEM_RESET, an access to physical memory nothing backs (an external abort on
/// hardware), a named stop, the time limit, or an exception the model cannot deliver.
public final class Arm64FollowPlatform {
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

    /// Maps a PL011 at `uartBase` (one 4 KiB window) into `engine`.
    public init(engine: Arm64Engine, uartBase: PhysAddr, conduit: Psci.Conduit, console: ConsoleLog)
        throws(EmulatorError)
    {
        self.console = console
        uart = Pl011Uart(console: console)
        psci = Psci(conduit: conduit)
        guard let window = AddressRange(start: uartBase, size: kexecPageSize) else {
            throw .memory("UART window at \(uartBase) wraps")
        }
        try engine.mapMMIO(window, device: uart)
    }

    public var exceptionsDelivered: Int { delivered.values.reduce(0, +) }

    public func handle(_ stop: StopReason<Arm64Walker.Fault>, engine e: Arm64Engine) -> FollowDecision {
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
        if let v = lastVector, v == pc {
            recursive = (exc, v)
            return .end
        }
        let vector = e.takeException(exc, returnAddress: pc)
        delivered[exc.name, default: 0] += 1
        if log.count < 16 {
            let at = exc.faultAddress.map { " at \(hex($0.raw))" } ?? ""
            log.append("\(exc.name)\(at) (PC \(hex(pc.raw))) → vector \(hex(vector.raw))")
        }
        lastVector = vector
        return .resume(vector)
    }
}
