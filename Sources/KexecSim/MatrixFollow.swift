import KexecModel

/// `matrix --follow [--until GOAL]`: runs that follow the real next kernel are opted into.
///
/// A fixture with `follow:` (Fixtures/follow/) runs the next kernel for seconds to minutes and
/// expects what the followed kernel does: the default matrix reports it as skipped, naming the
/// option. With `--follow` it runs with `run --follow --until GOAL`, GOAL the fixture's own goal
/// or `--until`'s; fixtures without `follow:` run as they always do (their kernels are mostly
/// synthetic, which cannot be followed). A followed job runs under the fixture's own policy.
public struct MatrixFollow: Sendable, Equatable {
    /// `--until`: the goal every followed job runs to (nil: each fixture's own).
    public var until: FollowGoal?
    public init(until: FollowGoal? = nil) { self.until = until }

    /// The skip reason of a followed fixture in the default matrix.
    static func skipReason(_ goal: FollowGoal) -> String {
        "follows the next kernel (follow: \(goal.rawValue)): not part of the default matrix, "
            + "opt in with matrix --follow"
    }

    /// `job` as `follow` runs it: a followed fixture's job gets its goal, or is skipped without `follow`.
    static func apply(_ follow: MatrixFollow?, to job: MatrixJob) -> MatrixJob {
        guard let own = job.followGoal, job.skipReason == nil, job.loadError == nil else { return job }
        var j = job
        if let follow {
            j.follow = follow.until ?? own
        } else {
            j.skipReason = skipReason(own)
        }
        return j
    }
}
