import CUnicorn
import KexecModel

/// Taking an exception to EL1 as an AArch64 CPU does (Arm ARM DDI 0487, D1.10 "Exception entry"
/// and D1.10.2 "Exception vectors"; ESR_EL1 encodings from D17.2.37), done by the host because
/// Unicorn 2.1.4 calls the interrupt hook instead of entering the guest's vectors, and a fault of
/// the project's walker stops the engine without raising anything (shared/ENGINE-NOTES.md).
///
/// Entry: ELR_EL1 = the preferred return address, SPSR_EL1 = PSTATE before the exception,
/// ESR_EL1 = the syndrome, FAR_EL1 = the faulting address (aborts), PSTATE = EL1h with D, A, I, F
/// masked, PC = VBAR_EL1 + the vector offset: 0x000 (current EL, SP_EL0), 0x200 (current EL,
/// SP_ELx), 0x400 (lower EL, AArch64), plus 0x000 synchronous, 0x080 IRQ, 0x100 FIQ, 0x180 SError.
/// From EL0 the stack pointer becomes SP_EL1 (SP_EL0 keeps the user's).
///
/// Not modelled: FAR below page granularity (Unicorn's fill hook is given the page, not the byte:
/// FAR_EL1 is the faulting page's address, or PC for a fetch from PC's page), ISV/SAS/SRT
/// instruction syndromes (ISV = 0, as for a load/store pair), AArch32, EL2/EL3.
public enum Arm64Exception: Sendable, Equatable {
    /// A data abort of the walker: the access and the fault status code (DFSC).
    case dataAbort(address: VirtAddr, write: Bool, status: UInt8)
    /// An instruction abort (IFSC).
    case instructionAbort(address: VirtAddr, status: UInt8)
    /// An UNDEFINED instruction (EC 0x00).
    case undefined
    /// BRK #imm (EC 0x3c).
    case breakpoint(UInt16)
    /// SVC #imm from AArch64 (EC 0x15); the return address is the next instruction.
    case supervisorCall(UInt16)
    /// An interrupt (vector offset 0x80), no syndrome.
    case irq

    /// ESR_ELx.EC for an exception taken from `fromLowerEL` (EL0) or the current EL.
    func exceptionClass(fromLowerEL: Bool) -> UInt64 {
        switch self {
        case .dataAbort: return fromLowerEL ? 0x24 : 0x25
        case .instructionAbort: return fromLowerEL ? 0x20 : 0x21
        case .undefined: return 0x00
        case .breakpoint: return 0x3c
        case .supervisorCall: return 0x15
        case .irq: return 0
        }
    }

    /// ESR_EL1: EC, IL = 1 (32-bit instruction), ISS. 0 for an interrupt.
    public func syndrome(fromLowerEL: Bool) -> UInt64 {
        let iss: UInt64
        switch self {
        case .dataAbort(_, let write, let status): iss = (write ? 1 << 6 : 0) | UInt64(status)
        case .instructionAbort(_, let status): iss = UInt64(status)
        case .undefined: iss = 0
        case .breakpoint(let imm), .supervisorCall(let imm): iss = UInt64(imm)
        case .irq: return 0
        }
        return exceptionClass(fromLowerEL: fromLowerEL) << 26 | 1 << 25 | iss
    }

    /// The address FAR_EL1 reports (aborts only).
    public var faultAddress: VirtAddr? {
        switch self {
        case .dataAbort(let a, _, _), .instructionAbort(let a, _): return a
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .dataAbort: return "data abort"
        case .instructionAbort: return "instruction abort"
        case .undefined: return "undefined instruction"
        case .breakpoint: return "BRK"
        case .supervisorCall: return "SVC"
        case .irq: return "IRQ"
        }
    }
}

/// The registers of exception entry that `Arm64Reg` does not name (Unicorn ids and MRS encodings).
enum Arm64ExceptionRegister {
    static let pstate = Int32(UC_ARM64_REG_PSTATE.rawValue)
    static let elr = Int32(UC_ARM64_REG_ELR_EL1.rawValue)
    static let spEL0 = Int32(UC_ARM64_REG_SP_EL0.rawValue)
    static let spEL1 = Int32(UC_ARM64_REG_SP_EL1.rawValue)
    static let esr = Int32(UC_ARM64_REG_ESR_EL1.rawValue)
    static let far = Int32(UC_ARM64_REG_FAR_EL1.rawValue)
}

extension Engine where Arch == Arm64 {
    /// PSTATE as MRS would assemble it (NZCV, DAIF, CurrentEL, SPSel).
    public var pstate: UInt64 { readRegister(Arm64ExceptionRegister.pstate) }
    public var elrEL1: UInt64 { readRegister(Arm64ExceptionRegister.elr) }

    /// SPSR_EL1 (MRS encoding 3, 0, 4, 0, 0).
    public var spsrEL1: UInt64 {
        get { readCP(op0: 3, op1: 0, crn: 4, crm: 0, op2: 0) }
        set { writeCP(op0: 3, op1: 0, crn: 4, crm: 0, op2: 0, newValue) }
    }

    func readCP(op0: UInt32, op1: UInt32, crn: UInt32, crm: UInt32, op2: UInt32) -> UInt64 {
        var cp = uc_arm64_cp_reg(crn: crn, crm: crm, op0: op0, op1: op1, op2: op2, val: 0)
        _ = uc_reg_read(uc, Int32(UC_ARM64_REG_CP_REG.rawValue), &cp)
        return cp.val
    }
    func writeCP(op0: UInt32, op1: UInt32, crn: UInt32, crm: UInt32, op2: UInt32, _ v: UInt64) {
        var cp = uc_arm64_cp_reg(crn: crn, crm: crm, op0: op0, op1: op1, op2: op2, val: v)
        _ = uc_reg_write(uc, Int32(UC_ARM64_REG_CP_REG.rawValue), &cp)
    }

    /// The 32-bit instruction at `pc` through the live translation (nil when it does not translate
    /// or is not in guest memory).
    public func instruction(at pc: VirtAddr) -> UInt32? {
        guard case .success(let t) = translate(pc, access: .fetch),
            let b = memory.read(t.pa, count: 4)
        else { return nil }
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    /// Takes `exception` to EL1 with `returnAddress` as ELR_EL1; returns the vector address the
    /// CPU continues at (VBAR_EL1 + offset).
    @discardableResult
    public func takeException(_ exception: Arm64Exception, returnAddress: VirtAddr) -> VirtAddr {
        let old = pstate
        let fromEL0 = (old >> 2) & 3 == 0
        let spx = old & 1 != 0
        let base: UInt64 = fromEL0 ? 0x400 : (spx ? 0x200 : 0x000)
        let kind: UInt64 = exception == .irq ? 0x80 : 0x000
        if exception != .irq {
            writeRegister(Arm64ExceptionRegister.esr, exception.syndrome(fromLowerEL: fromEL0))
        }
        if let far = exception.faultAddress { writeRegister(Arm64ExceptionRegister.far, far.raw) }
        writeRegister(Arm64ExceptionRegister.elr, returnAddress.raw)
        if fromEL0 || !spx {
            // The stack switches to SP_EL1; the interrupted one stays in SP_EL0.
            let sp = read(.sp)
            let sp1 = readRegister(Arm64ExceptionRegister.spEL1)
            writeRegister(Arm64ExceptionRegister.spEL0, sp)
            write(.sp, sp1)
        }
        // EL1h (M[3:0] = 0b0101), D A I F masked (bits 9..6), NZCV kept in SPSR only.
        writeRegister(Arm64ExceptionRegister.pstate, 0x3c5)
        // SPSR last: Unicorn's PSTATE write leaves QEMU's cached translation flags (the EL the
        // next block is translated for) as they were, while a system register write through
        // UC_ARM64_REG_CP_REG rebuilds them (qemu/target/arm/unicorn_aarch64.c reg_write,
        // arm_rebuild_hflags). Written before PSTATE, an exception from EL0 ran its vector
        // translated as EL0: `msr tpidrro_el0, x30` in the KPTI trampoline was UNDEFINED.
        spsrEL1 = old
        let vector = VirtAddr(read(.vbarEL1) &+ base &+ kind)
        write(.pc, vector.raw)
        return vector
    }
}
