import CUnicorn
import KexecModel

/// The system registers a host model may answer instead of the CPU model (Arm ARM DDI 0487,
/// D11.2 and C5.2: the encodings op0 3, op1 3, CRn 14 of the generic timer's EL0 view, and DAIF).
public enum Arm64SystemRegister: Sendable, Equatable {
    case cntfrq, cntpct, cntvct
    case cntpTval, cntpCtl, cntpCval
    case cntvTval, cntvCtl, cntvCval
    case daif

    /// From an MRS / MSR encoding with op0 = 3, op1 = 3; nil for any other register.
    init?(crn: UInt32, crm: UInt32, op2: UInt32) {
        switch (crn, crm, op2) {
        case (14, 0, 0): self = .cntfrq
        case (14, 0, 1): self = .cntpct
        case (14, 0, 2): self = .cntvct
        case (14, 2, 0): self = .cntpTval
        case (14, 2, 1): self = .cntpCtl
        case (14, 2, 2): self = .cntpCval
        case (14, 3, 0): self = .cntvTval
        case (14, 3, 1): self = .cntvCtl
        case (14, 3, 2): self = .cntvCval
        case (4, 2, 1): self = .daif
        default: return nil
        }
    }
}

/// A host model of system registers (the follow machine's timer).
///
/// Contract: `read` gives the value an MRS returns, or nil to let the CPU model answer; `write`
/// receives an MSR's value and returns true when the CPU model must not see it. MSR DAIF is
/// always passed on to the CPU model whatever `write` returns (the hook watches it only). Both run
/// inside the emulation, on the engine's thread; they may call `EngineCore.requestStop`.
public protocol Arm64SystemRegisterHandler: AnyObject {
    func read(_ register: Arm64SystemRegister) -> UInt64?
    func write(_ register: Arm64SystemRegister, value: UInt64) -> Bool
}

/// Carries a handler and the engine through the C callback; frees the C filters with the engine.
final class Arm64SysregBox {
    unowned let engine: EngineCore
    let handler: Arm64SystemRegisterHandler
    var filters: [UnsafeMutablePointer<ks_arm64_sysreg_filter>] = []
    init(engine: EngineCore, handler: Arm64SystemRegisterHandler) {
        self.engine = engine
        self.handler = handler
    }
    deinit { filters.forEach { $0.deallocate() } }
}

extension Engine where Arch == Arm64 {
    /// Lets `handler` answer MRS and MSR of the generic timer's EL0 registers and watch MSR DAIF
    /// (Unicorn's UC_HOOK_INSN with UC_ARM64_INS_MRS / MSR; the C shim filters every other system
    /// register without calling out). Blocks translated earlier are dropped so the hook applies.
    public func handleSystemRegisters(_ handler: Arm64SystemRegisterHandler) throws(EmulatorError) {
        let box = Arm64SysregBox(engine: self, handler: handler)
        for isWrite: Int32 in [0, 1] {
            let f = UnsafeMutablePointer<ks_arm64_sysreg_filter>.allocate(capacity: 1)
            f.initialize(
                to: ks_arm64_sysreg_filter(
                    cb: { _, isWrite, reg, cp, ud in
                        guard let cp, let ud else { return 0 }
                        let b = Unmanaged<Arm64SysregBox>.fromOpaque(ud).takeUnretainedValue()
                        guard let r = Arm64SystemRegister(crn: cp.pointee.crn, crm: cp.pointee.crm, op2: cp.pointee.op2)
                        else { return 0 }
                        let id = Int32(reg.rawValue)
                        if isWrite != 0 {
                            let handled = b.handler.write(r, value: b.engine.readRegister(id))
                            return handled && r != .daif ? 1 : 0
                        }
                        guard let v = b.handler.read(r) else { return 0 }
                        b.engine.writeRegister(id, v)
                        return 1
                    }, ud: Unmanaged.passUnretained(box).toOpaque(), isWrite: isWrite))
            box.filters.append(f)
            var hh: uc_hook = 0
            try check(ks_hook_add_arm64_sysreg(uc, &hh, isWrite, f), "uc_hook_add(UC_HOOK_INSN MRS/MSR)")
            addHook(hh)
        }
        mmioOwners.append(box)
        flushTranslations()
    }
}

/// A running watch for the guest unmasking IRQs (see `Engine.watchForIRQUnmask`).
public final class Arm64IRQUnmaskWatch {
    unowned let engine: EngineCore
    let name: String
    let watch: UnsafeMutablePointer<ks_arm64_unmask_watch>
    var hook: uc_hook = 0
    public private(set) var isActive = true

    init(engine: EngineCore, name: String) {
        self.engine = engine
        self.name = name
        watch = .allocate(capacity: 1)
    }
    deinit {
        end()
        watch.deallocate()
    }

    /// Removes the per-instruction hook (the engine runs at full speed again).
    public func end() {
        guard isActive else { return }
        isActive = false
        engine.removeHook(hook)
    }
}

extension Engine where Arch == Arm64 {
    /// Stops the run as the named stop `name` at the first instruction the CPU reaches with
    /// PSTATE.I clear: where a pending IRQ that was masked is taken (Arm ARM D1.3.6, "Asynchronous
    /// exception masking"). A code hook on every instruction checks PSTATE in C until `end()`.
    public func watchForIRQUnmask(name: String) throws(EmulatorError) -> Arm64IRQUnmaskWatch {
        let w = Arm64IRQUnmaskWatch(engine: self, name: name)
        w.watch.initialize(
            to: ks_arm64_unmask_watch(
                cb: { _, _, ud in
                    let w = Unmanaged<Arm64IRQUnmaskWatch>.fromOpaque(ud!).takeUnretainedValue()
                    w.engine.requestStop(w.name)
                }, ud: Unmanaged.passUnretained(w).toOpaque()))
        var hh: uc_hook = 0
        try check(ks_hook_add_arm64_unmask_watch(uc, &hh, w.watch), "uc_hook_add(UC_HOOK_CODE unmask watch)")
        w.hook = hh
        addHook(hh)
        flushTranslations()
        return w
    }
}
