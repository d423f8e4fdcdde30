import CUnicorn
import Dispatch
import KexecModel

/// Which engine runs, as every report states it.
public struct EngineVersion: Sendable, CustomStringConvertible, Equatable {
    public var major: UInt32
    public var minor: UInt32
    public var patch: UInt32
    public init(major: UInt32, minor: UInt32, patch: UInt32) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }
    public var description: String { "Unicorn \(major).\(minor).\(patch)" }

    public static var current: EngineVersion {
        var maj: UInt32 = 0
        var min: UInt32 = 0
        let combined = uc_version(&maj, &min)
        return EngineVersion(major: maj, minor: min, patch: (combined >> 8) & 0xff)
    }
    public var isSupported: Bool { major > 2 || (major == 2 && minor >= 1) }
}

public enum EmulatorError: Error, CustomStringConvertible, Equatable {
    case engineTooOld(EngineVersion)
    case engine(String, Int)
    case memory(String)
    public var description: String {
        switch self {
        case .engineTooOld(let v):
            return
                "\(v) is too old: kexec-sim needs Unicorn 2.1 or newer (2.0.x maps every x86_64 access to physical = "
                + "virtual and truncates arm64 addresses above 4 GiB). Run scripts/setup-unicorn, which installs "
                + "Unicorn 2.1 from the PyPI wheel into .unicorn/ in this checkout, then rebuild."
        case .engine(let what, let code):
            return "Unicorn: \(what) failed: \(String(cString: uc_strerror(uc_err(UInt32(code))))) (\(code))"
        case .memory(let m): return m
        }
    }
}

func check(_ e: uc_err, _ what: String) throws(EmulatorError) {
    if e != UC_ERR_OK { throw .engine(what, Int(e.rawValue)) }
}

/// The x86_64 register names the runner needs.
public enum X86Reg: Sendable, CaseIterable {
    case rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8, r9, r10, r11, r12, r13, r14, r15, rip, cr0, cr2, cr3, cr4, rflags,
        cs

    var ucID: Int32 {
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

/// Why a run stopped. Unicorn's return code alone does not say (a hook that stops makes it return OK),
/// so the engine records what its hooks saw and classifies here.
public enum StopReason: Sendable, Equatable {
    /// PC reached the `until` address.
    case reached(pc: VirtAddr)
    /// A code hook on a named address fired (e.g. purgatory's digest-mismatch spin).
    case stoppedAt(pc: VirtAddr, name: String)
    /// The project's walker found no usable translation.
    case translationFault(X86Walker.Fault, access: X86Walker.Access, pc: VirtAddr)
    /// A translated access reached a physical address nobody backs and the policy refused to back it.
    case unbackedAccess(pa: PhysAddr, access: X86Walker.Access, pc: VirtAddr)
    /// The instruction budget ran out.
    case budgetExhausted(pc: VirtAddr, executed: UInt64)
    /// The wall-clock limit ran out.
    case timedOut(pc: VirtAddr)
    /// Any other CPU exception or engine error.
    case cpuException(pc: VirtAddr, detail: String)
}

public enum MMUMode: Sendable {
    /// UC_TLB_VIRTUAL + UC_HOOK_TLB_FILL with X86Walker (the default).
    case project
    /// UC_TLB_CPU: Unicorn's own walker, for the differential test only.
    case engine
}

/// One x86_64 Unicorn engine over a GuestMemory. Not thread-safe; one per run.
public final class X86Engine {
    public let memory: GuestMemory
    public let version: EngineVersion
    public let mmu: MMUMode
    let uc: OpaquePointer
    private var hooks: [uc_hook] = []
    private var namedStops: [UInt64: String] = [:]

    /// Decides whether an access to unbacked physical memory gets a fresh zero page (usable RAM)
    /// or stops the run (reserved, ACPI, MMIO, holes).
    public var backOnDemand: (PhysAddr, X86Walker.Access) -> Bool = { _, _ in false }
    /// Pages backed on demand during the run.
    public var onDemandPages: [PhysAddr] {
        onDemandRanges.flatMap { r in stride(from: r.first.raw, through: r.last.raw, by: 0x1000).map { PhysAddr($0) } }
    }
    /// Ranges backed on demand, in the order they were backed.
    public private(set) var onDemandRanges: [AddressRange] = []
    public private(set) var onDemandPageCount = 0
    /// When set, the range to back around a page that `backOnDemand` accepted (e.g. its 2 MiB
    /// chunk of usable RAM): one engine mapping instead of hundreds for a guest that walks memory.
    /// Falls back to the single page when the range overlaps anything already backed.
    public var onDemandChunk: ((PhysAddr) -> AddressRange?)?
    /// At most this many on-demand pages (a runaway guest writing everywhere must not eat the
    /// host): past it an access is reported as unbacked. 65,536 pages = 256 MiB.
    public var onDemandLimit = 65536
    /// True when the last unbacked access was refused because of `onDemandLimit`.
    public private(set) var onDemandLimitHit = false
    /// TLB misses served by the walker.
    public private(set) var tlbFills: UInt64 = 0
    /// Instructions executed since counting was enabled (nil: not counting; counting costs ~10×).
    public var instructionsExecuted: UInt64? { counter?.pointee }
    private var counter: UnsafeMutablePointer<UInt64>?

    // What the hooks saw during the last run.
    private var fault: (X86Walker.Fault, X86Walker.Access)?
    private var unbacked: (PhysAddr, X86Walker.Access)?
    private var stopName: String?
    private var lastUntil: VirtAddr?
    private var stopProbeRefused = false

    public init(memory: GuestMemory, mmu: MMUMode = .project) throws(EmulatorError) {
        let v = EngineVersion.current
        guard v.isSupported else { throw .engineTooOld(v) }
        var p: OpaquePointer?
        try check(uc_open(UC_ARCH_X86, UC_MODE_64, &p), "uc_open")
        guard let p else { throw .engine("uc_open", 0) }
        uc = p
        version = v
        self.memory = memory
        self.mmu = mmu
        // A throw from here on runs deinit (every stored property is set), which closes the engine.
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

    public func read(_ r: X86Reg) -> UInt64 {
        var v: UInt64 = 0
        _ = uc_reg_read(uc, r.ucID, &v)
        return v
    }
    public func write(_ r: X86Reg, _ v: UInt64) {
        var v = v
        _ = uc_reg_write(uc, r.ucID, &v)
    }
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

    public var control: X86Walker.Control {
        X86Walker.Control(cr0: read(.cr0), cr3: read(.cr3), cr4: read(.cr4), efer: efer)
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

    /// Translates through the active tables without touching the TLB (for evidence and probes).
    public func translate(_ va: VirtAddr, access: X86Walker.Access) -> Result<X86Walker.Translation, X86Walker.Fault> {
        X86Walker.translate(va, access: access, control: control) { self.memory.read64($0) }
    }

    /// Unicorn's own translation (UC_TLB_CPU engines only), for the differential test.
    public func engineTranslate(_ va: VirtAddr, access: X86Walker.Access) -> PhysAddr? {
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
    }

    /// Stops the run when PC reaches `va`, recording `name`.
    public func stop(at va: VirtAddr, name: String) throws(EmulatorError) {
        let ud = Unmanaged.passUnretained(self).toOpaque()
        var hh: uc_hook = 0
        try check(
            ks_hook_add_code(
                uc, &hh,
                { uc, address, _, ud in
                    let me = Unmanaged<X86Engine>.fromOpaque(ud!).takeUnretainedValue()
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
                        let me = Unmanaged<X86Engine>.fromOpaque(ud!).takeUnretainedValue()
                        return me.fillTLB(vaddr: vaddr, type: type, result: result!)
                    }, ud), "uc_hook_add(UC_HOOK_TLB_FILL)")
            hooks.append(hh)
        }
        if mmu == .engine {
            // With the project MMU, unbacked physical pages are caught in fillTLB instead: a memory
            // hook whose range covers an address sends every store there down Unicorn's slow path
            // (measured: sha256 in purgatory 1.7 MB/s with a catch-all hook, 12–15 MB/s without).
            let unmappedTypes = Int32(
                UC_HOOK_MEM_READ_UNMAPPED.rawValue | UC_HOOK_MEM_WRITE_UNMAPPED.rawValue
                    | UC_HOOK_MEM_FETCH_UNMAPPED.rawValue)
            try check(
                ks_hook_add_mem(
                    uc, &hh, unmappedTypes,
                    { _, type, address, _, _, ud in
                        let me = Unmanaged<X86Engine>.fromOpaque(ud!).takeUnretainedValue()
                        return me.unmapped(type: type, address: address)
                    }, ud, 1, 0), "uc_hook_add(UC_HOOK_MEM_UNMAPPED)")
            hooks.append(hh)
        }
    }

    private func access(_ t: uc_mem_type) -> X86Walker.Access {
        switch t {
        case UC_MEM_WRITE, UC_MEM_WRITE_UNMAPPED, UC_MEM_WRITE_PROT: return .write
        case UC_MEM_FETCH, UC_MEM_FETCH_UNMAPPED, UC_MEM_FETCH_PROT: return .fetch
        default: return .read
        }
    }

    private func fillTLB(vaddr: UInt64, type: uc_mem_type, result: UnsafeMutablePointer<uc_tlb_entry>) -> Bool {
        tlbFills &+= 1
        let acc = access(type)
        if acc == .fetch {
            // When a run stops, Unicorn also looks up the code page of `until - 1`; a fetch from any
            // page other than RIP's (or the next, for an instruction that crosses pages) is that
            // lookup, not the guest: translate it if the tables can, but never record it.
            let ripPage = read(.rip) & ~0xfff
            if vaddr != ripPage && vaddr != ripPage &+ 0x1000 {
                if case .success(let t) = X86Walker.translate(
                    VirtAddr(vaddr), access: .fetch, control: control, read64: { self.memory.read64($0) }),
                    memory.isBacked(PhysAddr(t.pa.raw & ~0xfff))
                {
                    result.pointee.paddr = t.pa.raw & ~0xfff
                    result.pointee.perms = uc_prot(UC_PROT_READ.rawValue | UC_PROT_EXEC.rawValue)
                    return true
                }
                stopProbeRefused = true
                return false
            }
        }
        switch X86Walker.translate(VirtAddr(vaddr), access: acc, control: control, read64: { self.memory.read64($0) }) {
        case .success(let t):
            let page = PhysAddr(t.pa.raw & ~0xfff)
            if !memory.isBacked(page) {
                // Usable RAM nobody loaded: a fresh zero page; anything else stops the run.
                if onDemandPageCount >= onDemandLimit { onDemandLimitHit = true }
                if unbacked == nil && !onDemandLimitHit && backOnDemand(page, acc), let r = backRange(around: page) {
                    onDemandRanges.append(r)
                    onDemandPageCount += Int(r.size.raw / 0x1000)
                } else {
                    if unbacked == nil { unbacked = (t.pa, acc) }
                    return false
                }
            }
            result.pointee.paddr = page.raw
            var prot = UC_PROT_READ.rawValue
            if t.writable { prot |= UC_PROT_WRITE.rawValue }
            // EXEC only when the CPU fetches from the page: Unicorn sends every store to a page whose
            // TLB entry is executable through its slow self-modifying-code path. A later fetch from a
            // page filled for data misses the code TLB and comes back here as a fetch.
            if t.executable && acc == .fetch { prot |= UC_PROT_EXEC.rawValue }
            result.pointee.perms = uc_prot(prot)
            return true
        case .failure(let f):
            if fault == nil { fault = (f, acc) }
            return false
        }
    }

    private func backRange(around page: PhysAddr) -> AddressRange? {
        if let chunk = onDemandChunk?(page), chunk.contains(page),
            (try? memory.add(start: chunk.first, size: chunk.size, label: "on-demand")) != nil
        {
            return chunk
        }
        guard (try? memory.add(start: page, size: kexecPageSize, label: "on-demand")) != nil else { return nil }
        return AddressRange(start: page, size: kexecPageSize)
    }

    private func unmapped(type: uc_mem_type, address: UInt64) -> Bool {
        let acc = access(type)
        let page = PhysAddr(address & ~0xfff)
        if unbacked == nil, backOnDemand(page, acc) {
            do {
                try memory.add(start: page, size: kexecPageSize, label: "on-demand")
                onDemandRanges.append(AddressRange(start: page, size: kexecPageSize)!)
                onDemandPageCount += 1
                return true
            } catch {
                // fall through: reported as an unbacked access
            }
        }
        if unbacked == nil { unbacked = (PhysAddr(address), acc) }
        return false
    }

    /// Runs from `start` until PC == `until`, a named stop, a fault, `budget` instructions (0: no
    /// count; counting makes the engine about 10× slower) or `timeoutMicros` of wall time (0: none).
    public func run(from start: VirtAddr, until: VirtAddr, budget: UInt64, timeoutMicros: UInt64 = 0) -> StopReason {
        fault = nil
        unbacked = nil
        stopName = nil
        stopProbeRefused = false
        if until != lastUntil {
            // A block translated in an earlier run would ignore a new stop address inside it.
            _ = ks_ctl_flush_tb(uc)
            lastUntil = until
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        var err = uc_emu_start(uc, start.raw, until.raw, timeoutMicros, Int(clamping: budget))
        var elapsedMicros = (DispatchTime.now().uptimeNanoseconds - t0) / 1000
        var pc = VirtAddr(read(.rip))
        // Without a budget, a stop with no reason of ours before the time is up (seen rarely under
        // load, with tests running engines on several threads) is not the guest's doing: go on from
        // where it stopped with the time that is left.
        var resumes = 0
        while err == UC_ERR_OK && budget == 0 && timeoutMicros > 0 && pc != until && fault == nil
            && unbacked == nil && stopName == nil && elapsedMicros < timeoutMicros * 9 / 10 && resumes < 1000
        {
            resumes += 1
            err = uc_emu_start(uc, pc.raw, until.raw, timeoutMicros - elapsedMicros, 0)
            elapsedMicros = (DispatchTime.now().uptimeNanoseconds - t0) / 1000
            pc = VirtAddr(read(.rip))
        }
        // Reaching `until` wins: Unicorn may report an exception while translating the block there.
        if pc == until && fault == nil && unbacked == nil && stopName == nil { return .reached(pc: pc) }
        if let (f, a) = fault { return .translationFault(f, access: a, pc: pc) }
        if let (pa, a) = unbacked { return .unbackedAccess(pa: pa, access: a, pc: pc) }
        if let name = stopName { return .stoppedAt(pc: pc, name: name) }
        if err != UC_ERR_OK && !(err == UC_ERR_EXCEPTION && stopProbeRefused) {
            return .cpuException(pc: pc, detail: String(cString: uc_strerror(err)) + " (\(err.rawValue))")
        }
        if pc == until { return .reached(pc: pc) }
        if timeoutMicros > 0 && elapsedMicros >= timeoutMicros * 9 / 10 { return .timedOut(pc: pc) }
        if budget > 0 { return .budgetExhausted(pc: pc, executed: budget) }
        return .cpuException(pc: pc, detail: "emulation stopped without reaching \(until)")
    }
}

extension X86Engine {
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
        _ = uc_emu_start(uc, pc.raw, 0, 1_000_000, instructions)
        uc_hook_del(uc, hh)
        guard let lo = seen.pcs.min(), let hi = seen.pcs.max() else { return "no instruction executed" }
        let kind = seen.pcs.count <= 16 ? "tight loop" : "loop"
        return "\(kind) over \(seen.pcs.count) instruction addresses in [\(hex(lo)), \(hex(hi))]"
    }
}
