import CUnicorn
import KexecModel

/// The AArch64 backend: EL1, the stage-1 EL1&0 regime walked by `Arm64Walker`, 4 KiB engine pages.
///
/// Unicorn's TLB is the CPU model's softmmu TLB, so the guest's own maintenance keeps it right:
/// MSR SCTLR_EL1 and MSR TCR_EL1 flush it, TLBI flushes it, and MSR TTBRn_EL1 flushes it only when
/// the ASID changes — as on hardware, a guest that switches tables must TLBI (relocate_kernel does).
/// Register writes from the host go around the CPU model and flush nothing, so
/// `write(_:_:)` for a system register flushes the TLB itself. After a run that faulted with the
/// MMU on, the engine's own state lingers: build a fresh one.
public enum Arm64: EngineArchitecture {
    public typealias Register = Arm64Reg
    public typealias Fault = Arm64Walker.Fault
    public typealias Translation = Arm64Walker.Translation
    public typealias Control = Arm64Walker.Control

    public static var unicornArch: uc_arch { UC_ARCH_ARM64 }
    public static var unicornMode: uc_mode { UC_MODE_ARM }
    public static var pageSize: Int? { 4096 }
    public static var programCounter: Arm64Reg { .pc }

    public static func control(_ e: Engine<Arm64>, full: Bool) -> Arm64Walker.Control {
        // MAIR plays no part in the walk: left out of the per-miss register reads.
        var c = Arm64Walker.Control(
            sctlr: e.read(.sctlrEL1), tcr: e.read(.tcrEL1), ttbr0: e.read(.ttbr0EL1), ttbr1: e.read(.ttbr1EL1),
            mair: full ? e.read(.mairEL1) : 0, physicalAddressBits: e.physicalAddressBits, mmfr0: e.arm64MMFR0)
        // PSTATE.EL (bits 3:2) = 0: the access is the user program's.
        c.unprivileged = (e.pstate >> 2) & 3 == 0
        return c
    }

    public static func translate(
        _ va: VirtAddr, access: MemoryAccess, control: Arm64Walker.Control, read64: (PhysAddr) -> UInt64?
    ) -> Result<Arm64Walker.Translation, Arm64Walker.Fault> {
        Arm64Walker.translate(va, access: access, control: control, read64: read64)
    }

    public static func exceptionDetail(_ intno: UInt32, engine e: Engine<Arm64>) -> String {
        // The hook runs before the CPU writes the syndrome: zeros there mean "not written yet".
        let esr = e.read(.esrEL1)
        let far = e.read(.farEL1)
        let regs = esr == 0 && far == 0 ? "" : ", ESR_EL1 \(hex(esr)), FAR_EL1 \(hex(far))"
        return "exception \(intno) (\(exceptionName(intno)))" + regs
    }

    /// AAPCS64: integer arguments in x0–x7.
    public static func callArgument(_ index: Int, engine: Engine<Arm64>) -> UInt64 {
        guard index < 8, let r = Arm64Reg.x(index) else { return 0 }
        return engine.read(r)
    }

    /// `ret`: branches to the link register x30; x0 = value.
    public static func returnFromCall(_ engine: Engine<Arm64>, value: UInt64) -> InterceptOutcome<Arm64Walker.Fault> {
        engine.write(.x0, value)
        return .resume(VirtAddr(engine.read(.x30)))
    }

    /// QEMU's EXCP_* numbers as Unicorn reports them for AArch64.
    public static func exceptionName(_ intno: UInt32) -> String {
        switch intno {
        case 1: return "undefined instruction"
        case 2: return "SVC"
        case 3: return "prefetch abort"
        case 4: return "data abort"
        case 5: return "IRQ"
        case 6: return "FIQ"
        case 7: return "breakpoint"
        case 11: return "HVC"
        case 12: return "HVC/SMC trap"
        case 13: return "SMC"
        default: return "intno \(intno)"
        }
    }
}

public typealias Arm64Engine = Engine<Arm64>

/// The AArch64 general registers the runner needs (X0..X30, SP, PC) and the system registers
/// of the EL1 translation regime, by their MRS/MSR encoding.
public enum Arm64Reg: Sendable, Hashable, CaseIterable, EngineRegister {
    case x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15
    case x16, x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30
    case sp, pc

    /// X`n` for n in 0...30; nil otherwise.
    public static func x(_ n: Int) -> Arm64Reg? {
        (0...30).contains(n) ? allCases[n] : nil
    }

    public var ucID: Int32 {
        switch self {
        case .x29: return Int32(UC_ARM64_REG_X29.rawValue)
        case .x30: return Int32(UC_ARM64_REG_X30.rawValue)
        case .sp: return Int32(UC_ARM64_REG_SP.rawValue)
        case .pc: return Int32(UC_ARM64_REG_PC.rawValue)
        default:
            // X0..X28 are contiguous in Unicorn's enum.
            let n = Arm64Reg.allCases.firstIndex(of: self) ?? 0
            return Int32(UC_ARM64_REG_X0.rawValue) + Int32(n)
        }
    }
}

/// AArch64 system registers, by their MRS/MSR encoding (op0, op1, CRn, CRm, op2).
public enum Arm64SysReg: Sendable, Hashable, CaseIterable {
    case sctlrEL1, tcrEL1, ttbr0EL1, ttbr1EL1, mairEL1, esrEL1, farEL1, vbarEL1, ctrEL0

    var encoding: (op0: UInt32, op1: UInt32, crn: UInt32, crm: UInt32, op2: UInt32) {
        switch self {
        case .sctlrEL1: return (3, 0, 1, 0, 0)
        case .tcrEL1: return (3, 0, 2, 0, 2)
        case .ttbr0EL1: return (3, 0, 2, 0, 0)
        case .ttbr1EL1: return (3, 0, 2, 0, 1)
        case .mairEL1: return (3, 0, 10, 2, 0)
        case .esrEL1: return (3, 0, 5, 2, 0)
        case .farEL1: return (3, 0, 6, 0, 0)
        case .vbarEL1: return (3, 0, 12, 0, 0)
        case .ctrEL0: return (3, 3, 0, 0, 1)
        }
    }
}

extension Engine where Arch == Arm64 {
    public func read(_ r: Arm64SysReg) -> UInt64 {
        let e = r.encoding
        var cp = uc_arm64_cp_reg(crn: e.crn, crm: e.crm, op0: e.op0, op1: e.op1, op2: e.op2, val: 0)
        _ = uc_reg_read(uc, Int32(UC_ARM64_REG_CP_REG.rawValue), &cp)
        return cp.val
    }
    /// Writes a system register the way a debugger would (no side effects in the CPU model), then
    /// flushes the TLB so the next access sees the new translation regime.
    public func write(_ r: Arm64SysReg, _ v: UInt64) {
        let e = r.encoding
        var cp = uc_arm64_cp_reg(crn: e.crn, crm: e.crm, op0: e.op0, op1: e.op1, op2: e.op2, val: v)
        _ = uc_reg_write(uc, Int32(UC_ARM64_REG_CP_REG.rawValue), &cp)
        flushTLB()
    }

    /// Turns the MMU on with the given regime: MAIR_EL1, TCR_EL1, TTBR0/1_EL1, then SCTLR_EL1.M
    /// (and C, I) — the state a kernel runs in.
    public func enableMMU(tcr: UInt64, ttbr0: UInt64, ttbr1: UInt64, mair: UInt64) {
        write(.mairEL1, mair)
        write(.tcrEL1, tcr)
        write(.ttbr0EL1, ttbr0)
        write(.ttbr1EL1, ttbr1)
        write(.sctlrEL1, read(.sctlrEL1) | 1 | (1 << 2) | (1 << 12))
    }
}
