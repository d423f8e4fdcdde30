import Emulator
import KexecModel

/// How a follow run ended: the engine's last stop and, when the time limit found the guest in a
/// spin whose state repeats (`Engine.provableSpin`), the loop's words.
struct FollowRunEnd<Fault: WalkFault> {
    var stop: StopReason<Fault>
    var spin: String?
}

extension Runner {
    /// `Engine.follow` to the time limit; a run the limit ended is checked for a spin once it is
    /// over. (Checking in slices along the way would need the run resumed after Unicorn's own
    /// time-out stop: measured, 2 of 12 Debian arm64 boots under load then took a translation
    /// fault in paging_init that a single run never takes; so a fixture whose kernel gives up
    /// early says so with `follow_timeout`.)
    static func followToSpin<A: EngineArchitecture>(
        _ e: Engine<A>, from start: VirtAddr, until: VirtAddr, timeoutMicros: UInt64,
        handle: (StopReason<A.Fault>) -> FollowDecision
    ) -> FollowRunEnd<A.Fault> where A.Register: CaseIterable {
        let stop = e.follow(from: start, until: until, timeoutMicros: timeoutMicros, handle: handle)
        guard case .timedOut(let at) = stop else { return FollowRunEnd(stop: stop) }
        return FollowRunEnd(stop: stop, spin: e.provableSpin(at: at))
    }
}
