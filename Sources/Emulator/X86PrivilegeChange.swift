import CUnicorn
import KexecModel

/// Entering the kernel from user mode (CPL 3 → 0) as the CPU does for an interrupt or exception
/// through a gate and for SYSCALL (Intel SDM vol. 3A 6.14.2 "64-bit mode stack frame": the new
/// RSP comes from TSS.RSP0, SS becomes a NULL selector; vol. 2B SYSCALL: CS from STAR[47:32], SS
/// from STAR[47:32] + 8, RCX = next RIP, R11 = RFLAGS, RFLAGS &= ~SFMASK, RIP = LSTAR).
///
/// Why the host does it: Unicorn 2.1.4 runs the UC_X86_INS_SYSCALL hooks instead of the
/// system-call transition, and delivers no exception (the project delivers them,
/// X86Exceptions.swift); its register writes of CS and SS cannot lower the CPL from
/// CPL 3 — in 64-bit mode they only set the selector. So the segment caches and the CPL are set
/// in the saved CPU state (CUnicorn ks_x86_enter_cpl0), checked against the live registers.
extension Engine where Arch == X86 {
    /// Translates as a supervisor access whatever the CPL: the CPU's own accesses while it
    /// delivers an event (IDT, TSS, the handler's stack) are supervisor accesses (SDM vol. 3A
    /// 4.6 "implicit supervisor-mode accesses").
    public func translateSupervisor(_ va: VirtAddr, access: MemoryAccess)
        -> Result<X86Walker.Translation, X86Walker.Fault>
    {
        var c = X86.control(self, full: true)
        c.user = false
        return X86Walker.translate(va, access: access, control: c) { self.memory.read64($0) }
    }

    /// SS's selector.
    public var ss: UInt64 { readRegister(Int32(UC_X86_REG_SS.rawValue)) }

    /// A model-specific register as the engine holds it.
    public func msr(_ id: UInt32) -> UInt64 {
        var m = uc_x86_msr(rid: id, value: 0)
        _ = uc_reg_read(uc, Int32(UC_X86_REG_MSR.rawValue), &m)
        return m.value
    }

    /// TSS.RSP0: the stack the CPU switches to on entering CPL 0 from CPL 3 (the 64-bit TSS keeps
    /// RSP0 at byte 4; TR's base is a linear address). Nil when the TSS does not translate.
    public var tssRSP0: UInt64? {
        var m = uc_x86_mmr()
        _ = uc_reg_read(uc, Int32(UC_X86_REG_TR.rawValue), &m)
        guard case .success(let t) = translateSupervisor(VirtAddr(m.base &+ 4), access: .read),
            let b = memory.read(t.pa, count: 8)
        else { return nil }
        return b.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// Enters CPL 0 with CS = `cs` (a 64-bit code descriptor read from the GDT) and SS = `newSS`
    /// (NULL for an interrupt gate; a flat data segment for SYSCALL), through CUnicorn
    /// ks_x86_enter_cpl0; false when the engine's state layout did not check out.
    public func enterKernelMode(cs: UInt64, ss newSS: UInt64) -> Bool {
        // QEMU's segment cache flags are the descriptor's high dword (load_seg_cache_raw_dt);
        // SYSCALL loads fixed flat caches (helper_syscall), an interrupt gate a NULL SS (flags 0).
        let codeFlags: UInt32 = 1 << 23 | 1 << 21 | 1 << 15 | 1 << 12 | 1 << 11 | 1 << 9 | 1 << 8
        var c = ks_x86_segment(selector: UInt32(cs), base: 0, limit: 0xffff_ffff, flags: codeFlags)
        if let e2 = gdtHighWord(selector: cs) { c.flags = e2 }
        let dataFlags: UInt32 = 1 << 23 | 1 << 22 | 1 << 15 | 1 << 12 | 1 << 9 | 1 << 8
        var s = ks_x86_segment(selector: UInt32(newSS), base: 0, limit: newSS == 0 ? 0 : 0xffff_ffff, flags: 0)
        if newSS != 0 { s.flags = dataFlags }
        return ks_x86_enter_cpl0(uc, &c, &s) == 0
    }

    /// The high dword of the GDT descriptor `selector` names (read as a supervisor access).
    private func gdtHighWord(selector: UInt64) -> UInt32? {
        var m = uc_x86_mmr()
        _ = uc_reg_read(uc, Int32(UC_X86_REG_GDTR.rawValue), &m)
        let at = m.base &+ (selector & ~7) &+ 4
        guard case .success(let t) = translateSupervisor(VirtAddr(at), access: .read),
            let b = memory.read(t.pa, count: 4)
        else { return nil }
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    /// SYSCALL from CPL 3 at the instruction before `next` (MSRs STAR 0xc0000081, LSTAR
    /// 0xc0000082, SFMASK 0xc0000084): returns the kernel entry point, nil when the segment loads
    /// failed.
    public func performSyscall(next: UInt64) -> VirtAddr? {
        let star = msr(0xC000_0081)
        let lstar = msr(0xC000_0082)
        let sfmask = msr(0xC000_0084)
        let flags = read(.rflags)
        write(.rcx, next)
        write(.r11, flags)
        let cs = (star >> 32) & 0xfffc
        guard enterKernelMode(cs: cs, ss: cs + 8) else { return nil }
        write(.rflags, flags & ~sfmask & ~UInt64(1 << 16))
        write(.rip, lstar)
        return VirtAddr(lstar)
    }
}

extension Engine where Arch == X86 {
    /// Stops the run, recording `name`, after every SYSCALL (the stop's PC is the next
    /// instruction); the caller performs the transition (`performSyscall`).
    public func stopAtSyscalls(name: String) throws(EmulatorError) {
        let box = SyscallStop(self, name)
        mmioOwners.append(box)
        var hh: uc_hook = 0
        try check(
            ks_hook_add_x86_syscall(
                uc, &hh,
                { _, ud in
                    let b = Unmanaged<SyscallStop>.fromOpaque(ud!).takeUnretainedValue()
                    b.engine.requestStop(b.name)
                }, Unmanaged.passUnretained(box).toOpaque()), "uc_hook_add(UC_HOOK_INSN SYSCALL)")
        addHook(hh)
    }
}

/// What the SYSCALL hook needs: the engine to stop and the stop's name.
final class SyscallStop {
    unowned let engine: Engine<X86>
    let name: String
    init(_ e: Engine<X86>, _ n: String) {
        engine = e
        name = n
    }
}
