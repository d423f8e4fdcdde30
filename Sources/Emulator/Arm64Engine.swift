import CUnicorn
import Dispatch
import KexecModel

/// The AArch64 general registers the runner needs (X0..X30, SP, PC).
public enum Arm64Reg: Sendable, Hashable, CaseIterable {
    case x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15
    case x16, x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30
    case sp, pc

    /// X`n` for n in 0...30.
    public static func x(_ n: Int) -> Arm64Reg {
        precondition((0...30).contains(n), "X\(n) does not exist")
        return allCases[n]
    }

    var ucID: Int32 {
        let r: uc_arm64_reg
        switch self {
        case .x29: r = UC_ARM64_REG_X29
        case .x30: r = UC_ARM64_REG_X30
        case .sp: r = UC_ARM64_REG_SP
        case .pc: r = UC_ARM64_REG_PC
        default:
            // X0..X28 are contiguous in Unicorn's enum.
            let n = Arm64Reg.allCases.firstIndex(of: self)!
            return Int32(UC_ARM64_REG_X0.rawValue) + Int32(n)
        }
        return Int32(r.rawValue)
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

/// One AArch64 Unicorn engine over a GuestMemory, at EL1. Not thread-safe; one per run (after a
/// run that faulted with the MMU on, the engine's own state lingers: build a fresh one).
///
/// With `.project` (the default) the engine runs in UC_TLB_VIRTUAL mode and every TLB miss is
/// answered by `Arm64Walker` from the live SCTLR_EL1 / TCR_EL1 / TTBRn_EL1. Unicorn's TLB is the
/// CPU model's softmmu TLB, so the guest's own maintenance keeps it right: MSR SCTLR_EL1 and
/// MSR TCR_EL1 flush it, TLBI flushes it, and MSR TTBRn_EL1 flushes it only when the ASID changes —
/// as on hardware, a guest that switches tables must TLBI (relocate_kernel does). Register writes
/// from the host go around the CPU model and flush nothing, so `write(_:_:)` for a system register
/// flushes the TLB itself.
public final class Arm64Engine {
    public let memory: GuestMemory
    public let version: EngineVersion
    public let mmu: MMUMode
    let uc: OpaquePointer
    private var hooks: [uc_hook] = []
    private var namedStops: [UInt64: String] = [:]

    /// The CPU's physical address size for the project's walker (48, or 52 for FEAT_LPA with 64K).
    public var physicalAddressBits = 48
    /// Decides whether an access to unbacked physical memory gets a fresh zero page (usable RAM)
    /// or stops the run (reserved, MMIO, holes).
    public var backOnDemand: (PhysAddr, Arm64Walker.Access) -> Bool = { _, _ in false }
    /// Pages backed on demand during the run.
    public private(set) var onDemandPages: [PhysAddr] = []
    /// At most this many on-demand pages (a runaway guest writing everywhere must not eat the
    /// host): past it an access is reported as unbacked. 65,536 pages = 256 MiB.
    public var onDemandLimit = 65536
    /// True when the last unbacked access was refused because of `onDemandLimit`.
    public private(set) var onDemandLimitHit = false
    /// Instructions executed since counting was enabled (nil: not counting; counting costs ~10×).
    public var instructionsExecuted: UInt64? { counter?.pointee }
    private var counterHook: uc_hook?
    private var counter: UnsafeMutablePointer<UInt64>?
    /// TLB misses served by the walker.
    public private(set) var tlbFills: UInt64 = 0
    /// The walker's fault that ended the last run, in full (StopReason carries it in x86 terms).
    public private(set) var lastFault: Arm64Walker.Fault?
    /// The last CPU exception the guest raised (Unicorn's intno: 1 undefined, 3 prefetch abort,
    /// 4 data abort, ...), if any.
    public private(set) var lastException: UInt32?

    // What the hooks saw during the last run.
    private var fault: (Arm64Walker.Fault, Arm64Walker.Access)?
    private var unbacked: (PhysAddr, Arm64Walker.Access)?
    private var stopName: String?
    /// A fill refused for Unicorn's own look-up (see fillTLB): it makes uc_emu_start return
    /// UC_ERR_EXCEPTION although the guest did nothing wrong.
    private var bookkeepingMiss = false
    private var lastUntil: UInt64?

    public init(memory: GuestMemory, mmu: MMUMode = .project) throws(EmulatorError) {
        let v = EngineVersion.current
        guard v.isSupported else { throw .engineTooOld(v) }
        var p: OpaquePointer?
        try check(uc_open(UC_ARCH_ARM64, UC_MODE_ARM, &p), "uc_open")
        guard let p else { throw .engine("uc_open", 0) }
        uc = p
        version = v
        self.memory = memory
        self.mmu = mmu
        // A failure from here on runs deinit, which closes the engine.
        // Unicorn 2.1.4 gives ARM engines 1 KiB pages; GuestMemory and the fill hook work in 4 KiB
        // pages (and a 4 KiB TLB page means a quarter of the walks).
        try check(ks_ctl_set_page_size(uc, 4096), "uc_ctl(UC_CTL_UC_PAGE_SIZE)")
        var page = 0
        try check(uc_query(uc, UC_QUERY_PAGE_SIZE, &page), "uc_query(UC_QUERY_PAGE_SIZE)")
        guard page == 4096 else { throw .memory("Unicorn arm64 page size is \(page), not 4096") }
        if mmu == .project {
            try check(ks_ctl_set_tlb_mode(uc, Int32(UC_TLB_VIRTUAL.rawValue)), "uc_ctl(UC_CTL_TLB_TYPE)")
        }
        for b in memory.blocks { try mapBlock(b) }
        try installHooks()
        memory.onAdd = { [unowned self] b in try? self.mapBlock(b) }
    }

    deinit {
        memory.onAdd = nil
        uc_close(uc)
        counter?.deallocate()
    }

    private func mapBlock(_ b: GuestMemory.Block) throws(EmulatorError) {
        try check(
            uc_mem_map_ptr(uc, b.range.first.raw, UInt64(b.size), UInt32(UC_PROT_ALL.rawValue), b.pointer),
            "uc_mem_map_ptr(\(b.label) \(b.range))")
    }

    public func read(_ r: Arm64Reg) -> UInt64 {
        var v: UInt64 = 0
        _ = uc_reg_read(uc, r.ucID, &v)
        return v
    }
    public func write(_ r: Arm64Reg, _ v: UInt64) {
        var v = v
        _ = uc_reg_write(uc, r.ucID, &v)
    }

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
        _ = ks_ctl_flush_tlb(uc)
    }

    public var control: Arm64Walker.Control {
        Arm64Walker.Control(
            sctlr: read(.sctlrEL1), tcr: read(.tcrEL1), ttbr0: read(.ttbr0EL1), ttbr1: read(.ttbr1EL1),
            mair: read(.mairEL1), physicalAddressBits: physicalAddressBits)
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

    /// Translates through the active tables without touching the TLB (for evidence and probes).
    public func translate(_ va: VirtAddr, access: Arm64Walker.Access) -> Result<
        Arm64Walker.Translation, Arm64Walker.Fault
    > {
        Arm64Walker.translate(va, access: access, control: control) { self.memory.read64($0) }
    }

    /// Unicorn's own translation (UC_TLB_CPU engines only), for the differential test.
    public func engineTranslate(_ va: VirtAddr, access: Arm64Walker.Access) -> PhysAddr? {
        var pa: UInt64 = 0
        let prot: uc_prot = access == .write ? UC_PROT_WRITE : access == .fetch ? UC_PROT_EXEC : UC_PROT_READ
        return uc_vmem_translate(uc, va.raw, prot, &pa) == UC_ERR_OK ? PhysAddr(pa) : nil
    }

    /// Counts every executed instruction from now on (a C code hook on every instruction: about
    /// 10× slower; for benchmarks, never on by default).
    public func enableInstructionCounting() throws(EmulatorError) {
        guard counter == nil else { return }
        let c = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        c.initialize(to: 0)
        counter = c
        var hh: uc_hook = 0
        try check(ks_hook_add_instruction_counter(uc, &hh, c), "uc_hook_add(UC_HOOK_CODE count)")
        hooks.append(hh)
        counterHook = hh
    }

    /// Stops counting (the count so far stays readable) and flushes translated blocks so the
    /// per-instruction hook leaves the fast path.
    public func disableInstructionCounting() {
        guard let hh = counterHook else { return }
        uc_hook_del(uc, hh)
        hooks.removeAll { $0 == hh }
        counterHook = nil
        _ = ks_ctl_flush_tb(uc)
    }

    /// Stops the run when PC reaches `va`, recording `name`.
    public func stop(at va: VirtAddr, name: String) throws(EmulatorError) {
        let ud = Unmanaged.passUnretained(self).toOpaque()
        var hh: uc_hook = 0
        try check(
            ks_hook_add_code(
                uc, &hh,
                { uc, address, _, ud in
                    let me = Unmanaged<Arm64Engine>.fromOpaque(ud!).takeUnretainedValue()
                    me.stopName = me.namedStops[address]
                    uc_emu_stop(uc)
                }, ud, va.raw, va.raw), "uc_hook_add(UC_HOOK_CODE)")
        hooks.append(hh)
        namedStops[va.raw] = name
    }

    private func installHooks() throws(EmulatorError) {
        let ud = Unmanaged.passUnretained(self).toOpaque()
        var hh: uc_hook = 0
        if mmu == .project {
            try check(
                ks_hook_add_tlb_fill(
                    uc, &hh,
                    { _, vaddr, type, result, ud in
                        let me = Unmanaged<Arm64Engine>.fromOpaque(ud!).takeUnretainedValue()
                        return me.fillTLB(vaddr: vaddr, type: type, result: result!)
                    }, ud), "uc_hook_add(UC_HOOK_TLB_FILL)")
            hooks.append(hh)
        }
        if mmu == .engine {
            // With the project MMU, unbacked physical pages are caught in fillTLB instead (a memory
            // hook covering an address sends every store there down Unicorn's slow path).
            let unmappedTypes = Int32(
                UC_HOOK_MEM_READ_UNMAPPED.rawValue | UC_HOOK_MEM_WRITE_UNMAPPED.rawValue
                    | UC_HOOK_MEM_FETCH_UNMAPPED.rawValue)
            try check(
                ks_hook_add_mem(
                    uc, &hh, unmappedTypes,
                    { _, type, address, _, _, ud in
                        let me = Unmanaged<Arm64Engine>.fromOpaque(ud!).takeUnretainedValue()
                        return me.unmapped(type: type, address: address)
                    }, ud, 1, 0), "uc_hook_add(UC_HOOK_MEM_UNMAPPED)")
            hooks.append(hh)
        }
        // Guest exceptions (undefined instruction, aborts, HVC, BRK): record and stop rather than
        // vector to VBAR_EL1, where no handler exists.
        try check(
            ks_hook_add_intr(
                uc, &hh,
                { uc, intno, ud in
                    let me = Unmanaged<Arm64Engine>.fromOpaque(ud!).takeUnretainedValue()
                    if me.lastException == nil { me.lastException = intno }
                    uc_emu_stop(uc)
                }, ud), "uc_hook_add(UC_HOOK_INTR)")
        hooks.append(hh)
    }

    private func access(_ t: uc_mem_type) -> Arm64Walker.Access {
        switch t {
        case UC_MEM_WRITE, UC_MEM_WRITE_UNMAPPED, UC_MEM_WRITE_PROT: return .write
        case UC_MEM_FETCH, UC_MEM_FETCH_UNMAPPED, UC_MEM_FETCH_PROT: return .fetch
        default: return .read
        }
    }

    private func fillTLB(vaddr: UInt64, type: uc_mem_type, result: UnsafeMutablePointer<uc_tlb_entry>) -> Bool {
        tlbFills &+= 1
        let acc = access(type)
        // The CPU fetches only from the page PC is in. Any other fetch look-up is Unicorn's own
        // bookkeeping — after every run it invalidates the translated block before each exit
        // address (until - 1) through a fetch translation — and must not be taken for the guest's.
        if acc == .fetch && (read(.pc) ^ vaddr) & ~0xfff != 0 {
            bookkeepingMiss = true
            return false
        }
        // MAIR plays no part in the walk: leave it out of the per-miss register reads.
        let c = Arm64Walker.Control(
            sctlr: read(.sctlrEL1), tcr: read(.tcrEL1), ttbr0: read(.ttbr0EL1), ttbr1: read(.ttbr1EL1),
            physicalAddressBits: physicalAddressBits)
        switch Arm64Walker.translate(VirtAddr(vaddr), access: acc, control: c, read64: { self.memory.read64($0) }) {
        case .success(let t):
            let page = PhysAddr(t.pa.raw & ~0xfff)
            if !memory.isBacked(page) {
                if onDemandPages.count >= onDemandLimit { onDemandLimitHit = true }
                if unbacked == nil && !onDemandLimitHit && backOnDemand(page, acc),
                    (try? memory.add(start: page, size: kexecPageSize, label: "on-demand")) != nil
                {
                    onDemandPages.append(page)
                } else {
                    if unbacked == nil { unbacked = (t.pa, acc) }
                    return false
                }
            }
            result.pointee.paddr = page.raw
            var prot = UC_PROT_READ.rawValue
            if t.writable { prot |= UC_PROT_WRITE.rawValue }
            // EXEC only when the CPU fetches: Unicorn sends every store to a page whose TLB entry
            // is executable through its slow self-modifying-code path.
            if t.executable && acc == .fetch { prot |= UC_PROT_EXEC.rawValue }
            result.pointee.perms = uc_prot(prot)
            return true
        case .failure(let f):
            if fault == nil { fault = (f, acc) }
            return false
        }
    }

    private func unmapped(type: uc_mem_type, address: UInt64) -> Bool {
        let acc = access(type)
        let page = PhysAddr(address & ~0xfff)
        if onDemandPages.count >= onDemandLimit { onDemandLimitHit = true }
        if unbacked == nil, !onDemandLimitHit, backOnDemand(page, acc) {
            do {
                try memory.add(start: page, size: kexecPageSize, label: "on-demand")
                onDemandPages.append(page)
                return true
            } catch {
                // fall through: reported as an unbacked access
            }
        }
        if unbacked == nil { unbacked = (PhysAddr(address), acc) }
        return false
    }

    /// The walker's fault in the shared StopReason vocabulary: level "L0".."L3", the nearest x86
    /// reason (an out-of-range VA reads as non-canonical; reserved descriptors and address-size
    /// faults as reserved bits; a clear access flag as not present). `lastFault` keeps the original.
    static func shared(_ f: Arm64Walker.Fault) -> X86Walker.Fault {
        let reason: X86Walker.Reason
        switch f.reason {
        case .invalid, .accessFlag: reason = .notPresent
        case .reservedDescriptor, .addressSize: reason = .reservedBit
        case .outOfRange, .walkDisabled: reason = .nonCanonical
        case .readOnly: reason = .writeProtected
        case .executeNever: reason = .noExecute
        case .tableNotBacked: reason = .tableNotBacked
        }
        return X86Walker.Fault(
            va: f.va, level: "L\(f.level)", index: f.index, entryAddress: f.entryAddress, entry: f.entry, reason: reason
        )
    }

    /// Runs from `start` until PC == `until`, a named stop, a fault, `budget` instructions (0: no
    /// count) or `timeoutMicros` of wall time (0: none).
    public func run(from start: VirtAddr, until: VirtAddr, budget: UInt64, timeoutMicros: UInt64 = 0) -> StopReason {
        fault = nil
        unbacked = nil
        stopName = nil
        bookkeepingMiss = false
        lastFault = nil
        lastException = nil
        // Unicorn checks `until` only while translating a block: a block translated in an earlier run
        // runs straight past a new `until` inside it. A new stop address drops the translations.
        if lastUntil != until.raw {
            _ = ks_ctl_flush_tb(uc)
            lastUntil = until.raw
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let err = uc_emu_start(uc, start.raw, until.raw, timeoutMicros, Int(clamping: budget))
        let elapsedMicros = (DispatchTime.now().uptimeNanoseconds - t0) / 1000
        let pc = VirtAddr(read(.pc))
        lastFault = fault?.0
        if pc == until && fault == nil && unbacked == nil && stopName == nil && lastException == nil {
            return .reached(pc: pc)
        }
        if let (f, a) = fault { return .translationFault(Self.shared(f), access: a, pc: pc) }
        if let (pa, a) = unbacked { return .unbackedAccess(pa: pa, access: a, pc: pc) }
        if let name = stopName { return .stoppedAt(pc: pc, name: name) }
        if let intno = lastException {
            // The hook runs before the CPU writes the syndrome: zeros there mean "not written yet".
            let esr = read(.esrEL1)
            let far = read(.farEL1)
            let regs = esr == 0 && far == 0 ? "" : ", ESR_EL1 \(hex(esr)), FAR_EL1 \(hex(far))"
            return .cpuException(pc: pc, detail: "exception \(intno) (\(Self.exceptionName(intno)))" + regs)
        }
        if err != UC_ERR_OK && !(bookkeepingMiss && err == UC_ERR_EXCEPTION) {
            return .cpuException(pc: pc, detail: String(cString: uc_strerror(err)) + " (\(err.rawValue))")
        }
        if pc == until { return .reached(pc: pc) }
        if timeoutMicros > 0 && elapsedMicros >= timeoutMicros * 9 / 10 { return .timedOut(pc: pc) }
        if budget > 0 { return .budgetExhausted(pc: pc, executed: budget) }
        return .cpuException(pc: pc, detail: "emulation stopped without reaching \(until)")
    }

    /// QEMU's EXCP_* numbers as Unicorn reports them for AArch64.
    static func exceptionName(_ intno: UInt32) -> String {
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

extension Arm64Engine {
    /// Runs a few thousand instructions from `pc` and says where they went: the loop a hung guest is in.
    public func sampleLoop(at pc: VirtAddr, instructions: Int = 4096) -> String {
        final class Seen { var pcs: Set<UInt64> = [] }
        let seen = Seen()
        var hh: uc_hook = 0
        let ud = Unmanaged.passUnretained(seen).toOpaque()
        guard
            ks_hook_add_code(
                uc, &hh,
                { _, address, _, ud in
                    let s = Unmanaged<Seen>.fromOpaque(ud!).takeUnretainedValue()
                    if s.pcs.count < 4096 { s.pcs.insert(address) }
                }, ud, 1, 0) == UC_ERR_OK
        else { return "unknown" }
        // Blocks translated before the hook existed would not call it.
        _ = ks_ctl_flush_tb(uc)
        _ = uc_emu_start(uc, pc.raw, 0, 1_000_000, instructions)
        uc_hook_del(uc, hh)
        guard let lo = seen.pcs.min(), let hi = seen.pcs.max() else { return "no instruction executed" }
        let kind = seen.pcs.count <= 16 ? "tight loop" : "loop"
        return "\(kind) over \(seen.pcs.count) instruction addresses in [\(hex(lo)), \(hex(hi))]"
    }
}
