import Dispatch
import KexecModel

/// What a host routine that stands in for a guest function decides (`Engine.intercept`).
public enum InterceptOutcome<Fault: WalkFault> {
    /// The call is done; the run goes on at this PC (the caller's return address).
    case resume(VirtAddr)
    /// The run ends here: the fault or the stop the guest would have taken inside the call.
    case stop(StopReason<Fault>)
}

/// Host routines standing in for guest functions. A call to an intercepted address stops the
/// engine at the function's first instruction (a code hook on that one address, as a named stop);
/// `run` then calls the handler, which reads the arguments (`Arch.callArgument`), touches guest
/// memory only through `withGuestMemory` (the guest's own tables, the same faults, the same
/// on-demand backing as the guest's accesses) and returns as the function's `ret` would
/// (`Arch.returnFromCall`); the run goes on from there within the same budget and time.
extension Engine {
    typealias Intercept = (name: String, handler: (Engine<Arch>) -> InterceptOutcome<Arch.Fault>)

    /// Serves every call to `va` with `handler` instead of the guest's code.
    public func intercept(
        at va: VirtAddr, name: String, _ handler: @escaping (Engine<Arch>) -> InterceptOutcome<Arch.Fault>
    ) throws(EmulatorError) {
        try stop(at: va, name: name)
        intercepts[va.raw] = (name, handler)
    }

    /// `run` with intercepts: each stop at an intercepted address is served and the run resumed,
    /// with what is left of the wall-clock limit and the instruction budget.
    func runServingIntercepts(from start: VirtAddr, until: VirtAddr, budget: UInt64, timeoutMicros: UInt64)
        -> StopReason<Arch.Fault>
    {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let countedAtStart = instructionsExecuted ?? 0
        var from = start
        while true {
            var timeLeft: UInt64 = 0
            if timeoutMicros > 0 {
                let used = (DispatchTime.now().uptimeNanoseconds - t0) / 1000
                if used >= timeoutMicros { return .timedOut(pc: from) }
                timeLeft = timeoutMicros - used
            }
            var budgetLeft: UInt64 = 0
            if budget > 0 {
                let used = (instructionsExecuted ?? 0) &- countedAtStart
                if used >= budget { return .budgetExhausted(pc: from, executed: budget) }
                budgetLeft = budget - used
            }
            let raw = runRaw(from: from, until: until, budget: budgetLeft, timeoutMicros: timeLeft)
            guard case .stoppedAt(let pc, _) = raw, let served = intercepts[pc] else { return typed(raw) }
            interceptedCalls += 1
            switch served.handler(self) {
            case .resume(let next): from = next
            case .stop(let reason): return reason
            }
        }
    }

    /// Guest virtual memory [va, va + length) for a host routine acting for the guest: translated
    /// page by page, in address order, through the active tables (the architecture's walker, as a
    /// TLB miss would be), unbacked usable RAM backed on demand under the same rule and limit as
    /// the guest's own accesses. `body` gets the memory in order, in pieces contiguous on the host.
    /// At the first byte the guest could not `access`, returns the stop the guest would take there
    /// (the walker's fault at that byte, or an access to memory nobody backs), at `pc`; nil when
    /// every byte was handed to `body`.
    public func withGuestMemory(
        _ va: VirtAddr, length: UInt64, access: MemoryAccess, pc: VirtAddr,
        _ body: (UnsafeMutableRawBufferPointer) -> Void
    ) -> StopReason<Arch.Fault>? {
        let control = Arch.control(self, full: false)
        var addr = va.raw
        var left = length
        var piece: (start: UnsafeMutableRawPointer, count: Int)?
        func handOver() {
            if let p = piece { body(UnsafeMutableRawBufferPointer(start: p.start, count: p.count)) }
            piece = nil
        }
        while left > 0 {
            let inPage = min(left, kexecPageSize.raw - (addr & (kexecPageSize.raw - 1)))
            switch Arch.translate(VirtAddr(addr), access: access, control: control, read64: { self.memory.read64($0) })
            {
            case .failure(let f):
                handOver()
                lastFault = f
                return .translationFault(f, access: access, pc: pc)
            case .success(let t):
                let page = t.pa.alignedDown(kexecPageSize)
                guard memory.isBacked(page) || backOnDemandIfAllowed(page, access),
                    let p = memory.pointer(t.pa, length: Int(inPage))
                else {
                    handOver()
                    return .unbackedAccess(pa: t.pa, access: access, pc: pc)
                }
                if let cur = piece, cur.start + cur.count == p {
                    piece = (cur.start, cur.count + Int(inPage))
                } else {
                    handOver()
                    piece = (p, Int(inPage))
                }
            }
            addr &+= inPage
            left -= inPage
        }
        handOver()
        return nil
    }

    /// Reads the little-endian 64-bit word at `va` as the guest would (see `withGuestMemory`) into
    /// `value`; the stop the guest would take instead, or nil.
    public func readGuest64(_ va: VirtAddr, pc: VirtAddr, into value: inout UInt64) -> StopReason<Arch.Fault>? {
        var bytes: [UInt8] = []
        if let stop = withGuestMemory(va, length: 8, access: .read, pc: pc, { bytes += $0 }) { return stop }
        value = bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) }
        return nil
    }
}
