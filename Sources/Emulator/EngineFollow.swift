import Dispatch
import KexecModel

/// What the host does after a stop of a guest it follows: go on at an address (an exception was
/// delivered through the guest's own vectors, a firmware call was answered), or end the run.
public enum FollowDecision: Sendable, Equatable {
    case resume(VirtAddr)
    case end
}

extension Engine {
    /// Runs a guest on from `start` for as long as `handle` says to resume after each stop, or
    /// until `timeoutMicros` of wall time have passed in total (then the last stop is
    /// `.timedOut`). Returns the stop that ended the run. The guest never reaches `until` (an
    /// address no kernel executes): every stop is a fault, an exception, a named stop (a device
    /// saw the awaited console line) or the time limit.
    public func follow(
        from start: VirtAddr, until: VirtAddr, timeoutMicros: UInt64,
        handle: (StopReason<Arch.Fault>) -> FollowDecision
    ) -> StopReason<Arch.Fault> {
        let t0 = DispatchTime.now().uptimeNanoseconds
        var pc = start
        while true {
            let used = (DispatchTime.now().uptimeNanoseconds - t0) / 1000
            guard used < timeoutMicros else { return .timedOut(pc: pc) }
            let stop = run(from: pc, until: until, budget: 0, timeoutMicros: timeoutMicros - used)
            switch handle(stop) {
            case .resume(let next): pc = next
            case .end: return stop
            }
        }
    }
}
