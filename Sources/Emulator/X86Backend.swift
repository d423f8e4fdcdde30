import CUnicorn
import KexecModel

/// The x86_64 backend: long mode, 4- or 5-level paging walked by `X86Walker`.
public enum X86: EngineArchitecture {
    public typealias Register = X86Reg
    public typealias Fault = X86Walker.Fault
    public typealias Translation = X86Walker.Translation
    public typealias Control = X86Walker.Control

    public static var unicornArch: uc_arch { UC_ARCH_X86 }
    public static var unicornMode: uc_mode { UC_MODE_64 }
    public static var pageSize: Int? { nil }
    public static var programCounter: X86Reg { .rip }

    public static func control(_ e: Engine<X86>, full: Bool) -> X86Walker.Control {
        X86Walker.Control(
            cr0: e.read(.cr0), cr3: e.read(.cr3), cr4: e.read(.cr4), efer: e.efer, user: e.read(.cs) & 3 == 3)
    }

    public static func translate(
        _ va: VirtAddr, access: MemoryAccess, control: X86Walker.Control, read64: (PhysAddr) -> UInt64?
    ) -> Result<X86Walker.Translation, X86Walker.Fault> {
        X86Walker.translate(va, access: access, control: control, read64: read64)
    }

    public static func exceptionDetail(_ intno: UInt32, engine: Engine<X86>) -> String {
        "exception \(intno) (\(exceptionName(intno)))"
    }

    /// System V AMD64 ABI: integer arguments in rdi, rsi, rdx, rcx, r8, r9.
    public static func callArgument(_ index: Int, engine: Engine<X86>) -> UInt64 {
        let regs: [X86Reg] = [.rdi, .rsi, .rdx, .rcx, .r8, .r9]
        return index < regs.count ? engine.read(regs[index]) : 0
    }

    /// `ret`: pops the return address from [rsp] (read through the guest's tables); rax = value.
    public static func returnFromCall(_ engine: Engine<X86>, value: UInt64) -> InterceptOutcome<X86Walker.Fault> {
        let rsp = engine.read(.rsp)
        var ret: UInt64 = 0
        if let stop = engine.readGuest64(VirtAddr(rsp), pc: VirtAddr(engine.read(.rip)), into: &ret) {
            return .stop(stop)
        }
        engine.write(.rsp, rsp &+ 8)
        engine.write(.rax, value)
        return .resume(VirtAddr(ret))
    }

    /// The vector's name (Intel SDM vol. 3A, table 6-1).
    public static func exceptionName(_ vector: UInt32) -> String {
        switch vector {
        case 0: return "#DE divide error"
        case 1: return "#DB debug"
        case 3: return "#BP breakpoint"
        case 4: return "#OF overflow"
        case 5: return "#BR bound range"
        case 6: return "#UD invalid opcode"
        case 7: return "#NM device not available"
        case 8: return "#DF double fault"
        case 10: return "#TS invalid TSS"
        case 11: return "#NP segment not present"
        case 12: return "#SS stack-segment fault"
        case 13: return "#GP general protection"
        case 14: return "#PF page fault"
        case 16: return "#MF x87 error"
        case 17: return "#AC alignment check"
        case 18: return "#MC machine check"
        case 19: return "#XM SIMD error"
        default: return "vector \(vector)"
        }
    }
}

public typealias X86Engine = Engine<X86>

/// The x86_64 register names the runner needs.
public enum X86Reg: Sendable, CaseIterable, EngineRegister {
    case rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8, r9, r10, r11, r12, r13, r14, r15, rip, cr0, cr2, cr3, cr4, rflags,
        cs

    public var ucID: Int32 {
        let r: uc_x86_reg
        switch self {
        case .rax: r = UC_X86_REG_RAX
        case .rbx: r = UC_X86_REG_RBX
        case .rcx: r = UC_X86_REG_RCX
        case .rdx: r = UC_X86_REG_RDX
        case .rsi: r = UC_X86_REG_RSI
        case .rdi: r = UC_X86_REG_RDI
        case .rbp: r = UC_X86_REG_RBP
        case .rsp: r = UC_X86_REG_RSP
        case .r8: r = UC_X86_REG_R8
        case .r9: r = UC_X86_REG_R9
        case .r10: r = UC_X86_REG_R10
        case .r11: r = UC_X86_REG_R11
        case .r12: r = UC_X86_REG_R12
        case .r13: r = UC_X86_REG_R13
        case .r14: r = UC_X86_REG_R14
        case .r15: r = UC_X86_REG_R15
        case .rip: r = UC_X86_REG_RIP
        case .cr0: r = UC_X86_REG_CR0
        case .cr2: r = UC_X86_REG_CR2
        case .cr3: r = UC_X86_REG_CR3
        case .cr4: r = UC_X86_REG_CR4
        case .rflags: r = UC_X86_REG_RFLAGS
        case .cs: r = UC_X86_REG_CS
        }
        return Int32(r.rawValue)
    }
    public static let general: [X86Reg] = [
        .rax, .rbx, .rcx, .rdx, .rsi, .rdi, .rbp, .rsp, .r8, .r9, .r10, .r11, .r12, .r13, .r14, .r15,
    ]
}

extension Engine where Arch == X86 {
    /// EFER (MSR 0xC0000080): Unicorn has no register id for it.
    public var efer: UInt64 {
        get {
            var m = uc_x86_msr(rid: 0xC000_0080, value: 0)
            _ = uc_reg_read(uc, Int32(UC_X86_REG_MSR.rawValue), &m)
            return m.value
        }
        set {
            var m = uc_x86_msr(rid: 0xC000_0080, value: newValue)
            _ = uc_reg_write(uc, Int32(UC_X86_REG_MSR.rawValue), &m)
        }
    }

    /// 64-bit long mode with paging on through `cr3` (CR4.PAE, LA57 for 5-level; EFER.LME|LMA|NXE;
    /// CR0.PG|PE). NXE because an x86_64 kernel runs with it and relocate_kernel leaves EFER alone.
    public func enterLongMode(cr3: PhysAddr, fiveLevel: Bool) {
        var cr4 = read(.cr4) | (1 << 5)
        if fiveLevel { cr4 |= 1 << 12 } else { cr4 &= ~(1 << 12) }
        write(.cr4, cr4)
        efer = efer | 0xd00
        write(.cr3, cr3.raw)
        write(.cr0, read(.cr0) | 0x8000_0001)
    }
}
