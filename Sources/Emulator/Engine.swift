import CUnicorn
import KexecModel

/// What an architecture supplies to `Engine`: Unicorn's arch and mode, its page size, its
/// register file, its walker over the live control registers, and the names of its exceptions.
/// Everything else an engine does exists once, in `EngineCore`.
public protocol EngineArchitecture: Sendable {
    associatedtype Register: EngineRegister
    associatedtype Fault: WalkFault
    associatedtype Translation: WalkTranslation
    /// The translation regime's registers as the walker needs them.
    associatedtype Control: Sendable

    static var unicornArch: uc_arch { get }
    static var unicornMode: uc_mode { get }
    /// Unicorn's target page size to set before anything is mapped (nil: the engine's default).
    static var pageSize: Int? { get }
    static var programCounter: Register { get }
    /// The live translation regime, read from the engine (`full`: every register, for evidence;
    /// otherwise only what a TLB-miss walk needs).
    static func control(_ engine: Engine<Self>, full: Bool) -> Control
    /// The architecture's walk (`read64` reads guest physical memory; nil: not backed).
    static func translate(
        _ va: VirtAddr, access: MemoryAccess, control: Control, read64: (PhysAddr) -> UInt64?
    ) -> Result<Translation, Fault>
    /// Words for a guest exception (Unicorn's intno), with the syndrome registers where they say more.
    static func exceptionDetail(_ intno: UInt32, engine: Engine<Self>) -> String
}

/// One Unicorn engine of architecture `Arch` over a GuestMemory. Not thread-safe; one per run.
public final class Engine<Arch: EngineArchitecture>: EngineCore {
    /// The CPU's physical address size where the walker depends on it (arm64: 48, or 52 for
    /// FEAT_LPA with the 64K granule).
    public var physicalAddressBits = 48
    /// arm64: the CPU's ID_AA64MMFR0_EL1 when it says more than `physicalAddressBits` (FEAT_LPA2
    /// in TGran4 / TGran16); nil: PARange from `physicalAddressBits`, no FEAT_LPA2.
    public var arm64MMFR0: Arm64MMFR0?
    /// The walker's fault that ended the last run, in full.
    public private(set) var lastFault: Arch.Fault?

    public init(memory: GuestMemory, mmu: MMUMode = .project) throws(EmulatorError) {
        try super.init(
            memory: memory, mmu: mmu, arch: Arch.unicornArch, mode: Arch.unicornMode, pageSize: Arch.pageSize)
    }

    public func read(_ r: Arch.Register) -> UInt64 { readRegister(r.ucID) }
    public func write(_ r: Arch.Register, _ v: UInt64) { writeRegister(r.ucID, v) }

    /// The live translation regime.
    public var control: Arch.Control { Arch.control(self, full: true) }

    override var programCounter: UInt64 { readRegister(Arch.programCounter.ucID) }

    override func walk(_ va: UInt64, access: MemoryAccess) -> WalkOutcome {
        switch Arch.translate(
            VirtAddr(va), access: access, control: Arch.control(self, full: false), read64: { self.memory.read64($0) })
        {
        case .success(let t): return .hit(t)
        case .failure(let f): return .fault(f)
        }
    }

    override func exceptionDetail(_ intno: UInt32) -> String { Arch.exceptionDetail(intno, engine: self) }

    /// Translates through the active tables without touching the TLB (for evidence and probes).
    public func translate(_ va: VirtAddr, access: MemoryAccess) -> Result<Arch.Translation, Arch.Fault> {
        Arch.translate(va, access: access, control: control) { self.memory.read64($0) }
    }

    /// Unicorn's own translation (UC_TLB_CPU engines only), for the differential tests.
    public func engineTranslate(_ va: VirtAddr, access: MemoryAccess) -> PhysAddr? {
        var pa: UInt64 = 0
        let prot: uc_prot = access == .write ? UC_PROT_WRITE : access == .fetch ? UC_PROT_EXEC : UC_PROT_READ
        return uc_vmem_translate(uc, va.raw, prot, &pa) == UC_ERR_OK ? PhysAddr(pa) : nil
    }

    /// Runs from `start` until PC == `until`, a named stop, a fault, `budget` instructions (0: no
    /// count; counting makes the engine about 10× slower) or `timeoutMicros` of wall time (0: none).
    public func run(from start: VirtAddr, until: VirtAddr, budget: UInt64, timeoutMicros: UInt64 = 0)
        -> StopReason<Arch.Fault>
    {
        lastFault = nil
        let raw = runRaw(from: start, until: until, budget: budget, timeoutMicros: timeoutMicros)
        switch raw {
        case .reached(let pc): return .reached(pc: VirtAddr(pc))
        case .stoppedAt(let pc, let name): return .stoppedAt(pc: VirtAddr(pc), name: name)
        case .fault(let f, let a, let pc):
            guard let typed = f as? Arch.Fault else {
                return .cpuException(
                    pc: VirtAddr(pc), vector: nil, detail: "walker fault of another architecture: \(f)")
            }
            lastFault = typed
            return .translationFault(typed, access: a, pc: VirtAddr(pc))
        case .unbacked(let pa, let a, let pc): return .unbackedAccess(pa: pa, access: a, pc: VirtAddr(pc))
        case .budget(let pc, let n): return .budgetExhausted(pc: VirtAddr(pc), executed: n)
        case .timedOut(let pc): return .timedOut(pc: VirtAddr(pc))
        case .exception(let pc, let v, let d): return .cpuException(pc: VirtAddr(pc), vector: v, detail: d)
        }
    }
}
