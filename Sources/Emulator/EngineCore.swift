import CUnicorn
import Dispatch
import KexecModel

/// The architecture-independent half of an engine: one Unicorn instance over a GuestMemory, in
/// UC_TLB_VIRTUAL mode with the project's walker answering every TLB miss; on-demand backing of
/// usable RAM nobody loaded (2 MiB chunks, a page limit); named stops; the intr hook that records
/// the first guest exception; run with resume after an unexplained early return; translated-block
/// flushes; loop sampling; instruction counting. `Engine<Arch>` adds the walker, the registers and
/// the exception names of one architecture. Not thread-safe; one per run.
///
/// The hooks are C callbacks, which cannot capture the generic parameter: they reach this
/// non-generic class, which calls `walk` (overridden by `Engine<Arch>`) on TLB misses only.
public class EngineCore {
    public let memory: GuestMemory
    public let version: EngineVersion
    public let mmu: MMUMode
    let uc: OpaquePointer
    private var hooks: [uc_hook] = []
    private var namedStops: [UInt64: String] = [:]
    /// Physical ranges answered by a device model (EngineMMIO.swift): the fill hook maps them
    /// although no guest memory backs them.
    var mmioRanges: [AddressRange] = []
    /// Keeps the MMIO devices' callback boxes alive as long as the engine.
    var mmioOwners: [AnyObject] = []
    /// Called on every TLB fill the walker answered (the VA's page and the access), after the
    /// walk: lets a follower notice a change of translation regime (arm64: the MMU turned on)
    /// without a hook on every instruction. Fills are rare (thousands per second of guest time).
    public var fillObserver: ((UInt64, MemoryAccess) -> Void)?

    /// Decides whether an access to unbacked physical memory gets fresh zero memory (usable RAM)
    /// or stops the run (reserved, ACPI, MMIO, holes).
    public var backOnDemand: (PhysAddr, MemoryAccess) -> Bool = { _, _ in false }
    /// When set, the range to back around a page that `backOnDemand` accepted (e.g. its 2 MiB
    /// chunk of usable RAM): one engine mapping instead of hundreds for a guest that walks memory.
    /// Falls back to the single page when the range overlaps anything already backed.
    public var onDemandChunk: ((PhysAddr) -> AddressRange?)?
    /// Called on every instruction-fetch TLB fill the walker answered, with the VA's page and the
    /// physical page it maps to, before the block there is translated: a stop added here with
    /// `stop(at:name:flush: false)` applies to that block (arm64 finds its WFIs this way).
    public var onFetchFill: ((VirtAddr, PhysAddr) -> Void)?
    /// Ranges backed on demand, in the order they were backed.
    public private(set) var onDemandRanges: [AddressRange] = []
    public private(set) var onDemandPageCount = 0
    /// Pages backed on demand during the run.
    public var onDemandPages: [PhysAddr] {
        onDemandRanges.flatMap { r in stride(from: r.first.raw, through: r.last.raw, by: 0x1000).map { PhysAddr($0) } }
    }
    /// At most this many on-demand pages (a runaway guest writing everywhere must not eat the
    /// host): past it an access is reported as unbacked. 65,536 pages = 256 MiB.
    public var onDemandLimit = 65536
    /// True when the last unbacked access was refused because of `onDemandLimit`.
    public private(set) var onDemandLimitHit = false
    /// TLB misses served by the walker.
    public private(set) var tlbFills: UInt64 = 0
    /// Instructions executed since counting was enabled (nil: not counting; counting costs ~10×).
    public var instructionsExecuted: UInt64? { counter?.pointee }
    /// True while the per-instruction counter runs.
    public var isCountingInstructions: Bool { counterHook != nil }
    private var counter: UnsafeMutablePointer<UInt64>?
    private var counterHook: uc_hook?
    /// Times the last run was resumed after Unicorn returned early with no reason of ours.
    public private(set) var resumes = 0

    // What the hooks saw during the last run.
    var faultSeen: (fault: any WalkFault, access: MemoryAccess)?
    private var unbacked: (PhysAddr, MemoryAccess)?
    private var stopName: String?
    /// The first guest exception of the last run (Unicorn's intno), if any.
    public private(set) var lastException: UInt32?
    /// A fill refused for Unicorn's own look-up (see fillTLB): it can make uc_emu_start return
    /// UC_ERR_EXCEPTION although the guest did nothing wrong.
    private var bookkeepingMiss = false
    private var lastUntil: UInt64?

    init(memory: GuestMemory, mmu: MMUMode, arch: uc_arch, mode: uc_mode, pageSize: Int?) throws(EmulatorError) {
        let v = EngineVersion.current
        guard v.isSupported else { throw .engineTooOld(v) }
        var p: OpaquePointer?
        try check(uc_open(arch, mode, &p), "uc_open")
        guard let p else { throw .engine("uc_open", 0) }
        uc = p
        version = v
        self.memory = memory
        self.mmu = mmu
        // A throw from here on runs deinit (every stored property is set), which closes the engine.
        if let pageSize {
            // Unicorn 2.1.4 gives ARM engines 1 KiB pages; GuestMemory and the fill hook work in
            // 4 KiB pages (and a TLB flush by VA must cover the guest's whole page).
            try check(ks_ctl_set_page_size(uc, UInt32(pageSize)), "uc_ctl(UC_CTL_UC_PAGE_SIZE)")
            var page = 0
            try check(uc_query(uc, UC_QUERY_PAGE_SIZE, &page), "uc_query(UC_QUERY_PAGE_SIZE)")
            guard page == pageSize else { throw .memory("Unicorn page size is \(page), not \(pageSize)") }
        }
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

    // MARK: What an architecture supplies (overridden by Engine<Arch>).

    /// Walks the guest's active tables for a TLB miss.
    func walk(_ va: UInt64, access: MemoryAccess) -> WalkOutcome {
        preconditionFailure("EngineCore.walk is supplied by Engine<Arch>")
    }
    /// The program counter now.
    var programCounter: UInt64 { preconditionFailure("EngineCore.programCounter is supplied by Engine<Arch>") }
    /// Words for a guest exception: "exception 6 (invalid opcode)" and the syndrome where there is one.
    func exceptionDetail(_ intno: UInt32) -> String { "exception \(intno)" }

    // MARK: Memory and registers.

    private func mapBlock(_ b: GuestMemory.Block) throws(EmulatorError) {
        try check(
            uc_mem_map_ptr(uc, b.range.first.raw, UInt64(b.size), UInt32(UC_PROT_ALL.rawValue), b.pointer),
            "uc_mem_map_ptr(\(b.label) \(b.range))")
    }

    func readRegister(_ id: Int32) -> UInt64 {
        var v: UInt64 = 0
        _ = uc_reg_read(uc, id, &v)
        return v
    }
    func writeRegister(_ id: Int32, _ value: UInt64) {
        var v = value
        _ = uc_reg_write(uc, id, &v)
    }

    /// Drops every TLB entry (after the host changed a register the walk depends on).
    public func flushTLB() { _ = ks_ctl_flush_tlb(uc) }
    /// Drops every translated block (after adding or removing a hook that blocks must call).
    public func flushTranslations() { _ = ks_ctl_flush_tb(uc) }
    /// Keeps a hook handle so that `removeHook` and the engine's life cover it.
    func addHook(_ hh: uc_hook) { hooks.append(hh) }
    /// Deletes a hook added with `addHook` and drops the blocks translated with it.
    func removeHook(_ hh: uc_hook) {
        uc_hook_del(uc, hh)
        hooks.removeAll { $0 == hh }
        _ = ks_ctl_flush_tb(uc)
    }

    // MARK: Hooks.

    /// Counts every executed instruction from now on (a C code hook on every instruction: about
    /// 10× slower; for benchmarks and short routines, never on by default).
    public func enableInstructionCounting() throws(EmulatorError) {
        guard counterHook == nil else { return }
        if counter == nil {
            let c = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
            c.initialize(to: 0)
            counter = c
        }
        var hh: uc_hook = 0
        try check(ks_hook_add_instruction_counter(uc, &hh, counter), "uc_hook_add(UC_HOOK_CODE count)")
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

    /// Stops the run when PC reaches `va`, recording `name`. `flush: false` only from
    /// `onFetchFill` (the blocks of that page are not translated yet; dropping translated blocks
    /// in the middle of a translation is not safe).
    public func stop(at va: VirtAddr, name: String, flush: Bool = true) throws(EmulatorError) {
        let ud = Unmanaged.passUnretained(self).toOpaque()
        var hh: uc_hook = 0
        try check(
            ks_hook_add_code(
                uc, &hh,
                { uc, address, _, ud in
                    let me = Unmanaged<EngineCore>.fromOpaque(ud!).takeUnretainedValue()
                    me.stopName = me.namedStops[address]
                    uc_emu_stop(uc)
                }, ud, va.raw, va.raw), "uc_hook_add(UC_HOOK_CODE)")
        hooks.append(hh)
        namedStops[va.raw] = name
        // A block translated before the hook existed would run past it.
        if flush { _ = ks_ctl_flush_tb(uc) }
    }

    /// Stops the run now, recording `name` as a named stop (a device model that saw what the run
    /// waits for: a console line, a power-off request). Call from a hook or device callback only.
    public func requestStop(_ name: String) {
        if stopName == nil { stopName = name }
        uc_emu_stop(uc)
    }

    /// For tests of the resume: stops the engine `times` times when PC reaches `va`, recording
    /// nothing — what Unicorn's unexplained early returns look like from here.
    public func stopWithoutReason(at va: VirtAddr, times: Int) throws(EmulatorError) {
        final class Left { var n: Int; init(_ n: Int) { self.n = n } }
        let left = Left(times)
        spuriousStopCounters.append(left)
        var hh: uc_hook = 0
        try check(
            ks_hook_add_code(
                uc, &hh,
                { uc, _, _, ud in
                    let l = Unmanaged<Left>.fromOpaque(ud!).takeUnretainedValue()
                    if l.n > 0 {
                        l.n -= 1
                        uc_emu_stop(uc)
                    }
                }, Unmanaged.passUnretained(left).toOpaque(), va.raw, va.raw), "uc_hook_add(UC_HOOK_CODE)")
        hooks.append(hh)
        _ = ks_ctl_flush_tb(uc)
    }
    private var spuriousStopCounters: [AnyObject] = []

    private func installHooks() throws(EmulatorError) {
        let ud = Unmanaged.passUnretained(self).toOpaque()
        var hh: uc_hook = 0
        if mmu == .project {
            try check(
                ks_hook_add_tlb_fill(
                    uc, &hh,
                    { _, vaddr, type, result, ud in
                        let me = Unmanaged<EngineCore>.fromOpaque(ud!).takeUnretainedValue()
                        return me.fillTLB(vaddr: vaddr, type: type, result: result!)
                    }, ud), "uc_hook_add(UC_HOOK_TLB_FILL)")
            hooks.append(hh)
        } else {
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
                        let me = Unmanaged<EngineCore>.fromOpaque(ud!).takeUnretainedValue()
                        return me.unmapped(type: type, address: address)
                    }, ud, 1, 0), "uc_hook_add(UC_HOOK_MEM_UNMAPPED)")
            hooks.append(hh)
        }
        // Guest exceptions (invalid opcode, aborts, faults the walker raised): record the first and
        // stop. Nothing is delivered through the guest's IDT / VBAR: kexec's path has no handler.
        try check(
            ks_hook_add_intr(
                uc, &hh,
                { uc, intno, ud in
                    let me = Unmanaged<EngineCore>.fromOpaque(ud!).takeUnretainedValue()
                    if me.lastException == nil { me.lastException = intno }
                    uc_emu_stop(uc)
                }, ud), "uc_hook_add(UC_HOOK_INTR)")
        hooks.append(hh)
    }

    private func access(_ t: uc_mem_type) -> MemoryAccess {
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
            // The CPU fetches from PC's page (and the next, for an x86 instruction that crosses a
            // page). Any other fetch look-up is Unicorn's own bookkeeping: after a run it
            // invalidates the translated block before each exit address (until - 1) through a
            // fetch translation. Translate it if the tables can, but never record it as the guest's.
            let pcPage = programCounter & ~0xfff
            if vaddr != pcPage && vaddr != pcPage &+ 0x1000 {
                if case .hit(let t) = walk(vaddr, access: MemoryAccess.fetch),
                    memory.isBacked(PhysAddr(t.pa.raw & ~0xfff))
                {
                    result.pointee.paddr = t.pa.raw & ~0xfff
                    result.pointee.perms = uc_prot(UC_PROT_READ.rawValue | UC_PROT_EXEC.rawValue)
                    return true
                }
                bookkeepingMiss = true
                return false
            }
        }
        fillObserver?(vaddr, acc)
        switch walk(vaddr, access: acc) {
        case .hit(let t):
            let page = PhysAddr(t.pa.raw & ~0xfff)
            if !memory.isBacked(page) && !mmioRanges.contains(where: { $0.contains(page) })
                && !backOnDemandIfAllowed(page, acc)
            {
                // Usable RAM nobody loaded gets fresh zero memory; anything else stops the run.
                if unbacked == nil { unbacked = (t.pa, acc) }
                return false
            }
            if acc == .fetch { onFetchFill?(VirtAddr(vaddr & ~0xfff), page) }
            result.pointee.paddr = page.raw
            var prot = UC_PROT_READ.rawValue
            if t.writable { prot |= UC_PROT_WRITE.rawValue }
            // EXEC only when the CPU fetches from the page: Unicorn sends every store to a page whose
            // TLB entry is executable through its slow self-modifying-code path. A later fetch from a
            // page filled for data misses the code TLB and comes back here as a fetch.
            if t.executable && acc == .fetch { prot |= UC_PROT_EXEC.rawValue }
            result.pointee.perms = uc_prot(prot)
            return true
        case .fault(let f):
            if faultSeen == nil { faultSeen = (f, acc) }
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
        if backOnDemandIfAllowed(PhysAddr(address & ~0xfff), acc) { return true }
        if unbacked == nil { unbacked = (PhysAddr(address), acc) }
        return false
    }

    /// Backs the unbacked `page` (and its `onDemandChunk`) with zero memory when `backOnDemand`
    /// accepts it, no access was refused yet in this run and `onDemandLimit` is not reached; false
    /// otherwise. One rule for the TLB fill, the unmapped-access hook and the host's own accesses
    /// on the guest's behalf (`Engine.withGuestMemory`).
    func backOnDemandIfAllowed(_ page: PhysAddr, _ acc: MemoryAccess) -> Bool {
        if onDemandPageCount >= onDemandLimit { onDemandLimitHit = true }
        guard unbacked == nil, !onDemandLimitHit, backOnDemand(page, acc), let r = backRange(around: page) else {
            return false
        }
        onDemandRanges.append(r)
        onDemandPageCount += Int(r.size.raw / 0x1000)
        return true
    }

    // MARK: Running.

    /// What the last run saw, before the architecture types the fault.
    enum RawStop {
        case reached(UInt64)
        case stoppedAt(UInt64, String)
        case fault(any WalkFault, MemoryAccess, UInt64)
        case unbacked(PhysAddr, MemoryAccess, UInt64)
        case budget(UInt64, UInt64)
        case timedOut(UInt64)
        case exception(UInt64, UInt32?, String)
    }

    /// Runs from `start` until PC == `until`, a named stop, a fault, `budget` instructions (0: no
    /// count; counting makes the engine about 10× slower) or `timeoutMicros` of wall time (0: none).
    func runRaw(from start: VirtAddr, until: VirtAddr, budget: UInt64, timeoutMicros: UInt64) -> RawStop {
        faultSeen = nil
        unbacked = nil
        stopName = nil
        lastException = nil
        bookkeepingMiss = false
        resumes = 0
        if lastUntil != until.raw {
            // Unicorn checks `until` only while translating a block: a block translated in an
            // earlier run would run straight past a new stop address inside it.
            _ = ks_ctl_flush_tb(uc)
            lastUntil = until.raw
        }
        // With a budget, our own counter tells how much of it an early return left (Unicorn's
        // count is per call).
        var countedAtStart: UInt64 = 0
        if budget > 0 {
            try? enableInstructionCounting()
            countedAtStart = counter?.pointee ?? 0
        }
        func executed() -> UInt64 { (counter?.pointee ?? 0) &- countedAtStart }
        let t0 = DispatchTime.now().uptimeNanoseconds
        var err = uc_emu_start(uc, start.raw, until.raw, timeoutMicros, Int(clamping: budget))
        var elapsedMicros = (DispatchTime.now().uptimeNanoseconds - t0) / 1000
        var pc = programCounter
        func nothingRecorded() -> Bool {
            faultSeen == nil && unbacked == nil && stopName == nil && lastException == nil
        }
        // A stop with no reason of ours before the time or the budget is used up (seen rarely
        // under load, with tests running engines on several threads) is not the guest's doing:
        // go on from where it stopped with the time and the instructions that are left.
        while pc != until.raw && nothingRecorded()
            && (err == UC_ERR_OK || (err == UC_ERR_EXCEPTION && bookkeepingMiss))
            && (timeoutMicros == 0 || elapsedMicros < timeoutMicros * 9 / 10)
            && (budget == 0 || executed() < budget) && resumes < 1000
        {
            resumes += 1
            bookkeepingMiss = false
            let left = timeoutMicros == 0 ? 0 : timeoutMicros - elapsedMicros
            err = uc_emu_start(uc, pc, until.raw, left, budget == 0 ? 0 : Int(clamping: budget - executed()))
            elapsedMicros = (DispatchTime.now().uptimeNanoseconds - t0) / 1000
            pc = programCounter
        }
        // Reaching `until` wins: Unicorn may report an exception while translating the block there.
        if pc == until.raw && nothingRecorded() { return .reached(pc) }
        if let (f, a) = faultSeen { return .fault(f, a, pc) }
        if let (pa, a) = unbacked { return .unbacked(pa, a, pc) }
        if let name = stopName { return .stoppedAt(pc, name) }
        if let intno = lastException { return .exception(pc, intno, exceptionDetail(intno)) }
        if err != UC_ERR_OK && !(err == UC_ERR_EXCEPTION && bookkeepingMiss) {
            return .exception(pc, nil, String(cString: uc_strerror(err)) + " (\(err.rawValue))")
        }
        if pc == until.raw { return .reached(pc) }
        if timeoutMicros > 0 && elapsedMicros >= timeoutMicros * 9 / 10 { return .timedOut(pc) }
        if budget > 0 && executed() >= budget { return .budget(pc, budget) }
        return .exception(pc, nil, "emulation stopped without reaching \(until) (resumed \(resumes) times)")
    }

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
        _ = ks_ctl_flush_tb(uc)
        lastUntil = nil
        guard let lo = seen.pcs.min(), let hi = seen.pcs.max() else { return "no instruction executed" }
        let kind = seen.pcs.count <= 16 ? "tight loop" : "loop"
        return "\(kind) over \(seen.pcs.count) instruction addresses in [\(hex(lo)), \(hex(hi))]"
    }
}
