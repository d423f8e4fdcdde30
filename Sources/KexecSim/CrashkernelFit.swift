import KexecModel

/// The smallest `crashkernel=` that lets a kdump scenario load and land: the question distro kdump
/// tools answer by rule of thumb (kdumpctl estimate), answered by running the scenario.
///
/// Sizes go in 16 MiB steps (x86_64's CRASH_ALIGN). Each candidate replaces the machine's
/// crashkernel ranges with what `crashkernel=<N>M` reserves under the machine's kernel version
/// (Machine.reservingCrashkernel) and runs the scenario (Runner.run). The search doubles until a
/// size lands, then bisects between the last failure and that size: O(log n) runs, assuming a
/// larger reservation never turns a landing into a failure.
public enum CrashkernelFit {
    public static let step = ByteCount.mib(16)

    /// One size tried.
    public struct Attempt: Sendable, Equatable {
        public var size: ByteCount
        /// The reserved ranges, lowest first (empty: the kernel reserved nothing).
        public var ranges: [AddressRange]
        /// The verdict (`landed`, `rejected`, …), or why nothing was run.
        public var outcome: String
        public var landed: Bool
    }

    public struct Answer: Sendable {
        public var version: KernelVersion
        /// The smallest landing size; nil when none up to the limit lands.
        public var size: ByteCount?
        /// Every size tried, in the order tried.
        public var attempts: [Attempt]
        /// The largest size the search would try.
        public var limit: ByteCount
        /// The winning attempt.
        public var fit: Attempt? { size.flatMap { s in attempts.first { $0.size == s } } }
    }

    public enum Failure: Error, CustomStringConvertible {
        case notKdump(String)
        case plan(String)
        public var description: String {
            switch self {
            case .notKdump(let m), .plan(let m): return m
            }
        }
    }

    /// Searches `scenario` (a crash load) from 16 MiB up to `limit` (default: the machine's RAM
    /// below 4 GiB plus 64 GiB, at most its RAM), under `version` (default: the machine's).
    public static func search(
        _ scenario: Scenario, version: KernelVersion? = nil, limit: ByteCount? = nil, options: RunOptions = RunOptions()
    ) throws(Failure) -> Answer {
        guard scenario.kexec?.type == .crash else {
            throw .notKdump("--fit needs a kdump scenario (kexec.type: crash); \(scenario.file) loads a normal image")
        }
        var base = scenario
        if let version { base.machine.kernel = version }
        let v = base.machine.kernelVersion
        let ram = base.machine.memory.totalRAM
        let cap = limit ?? min(ram, .gib(64))
        let maxSteps = cap.raw / step.raw
        var answer = Answer(version: v, size: nil, attempts: [], limit: ByteCount(maxSteps * step.raw))
        guard maxSteps > 0 else { return answer }

        func attempt(_ steps: UInt64) throws(Failure) -> Bool {
            let size = ByteCount(steps * step.raw)
            if let a = answer.attempts.first(where: { $0.size == size }) { return a.landed }
            var sc = base
            sc.machine.crashkernel = "\(size.raw >> 20)M"
            sc.machine.crashkernelOrigin = .parameter
            var a = Attempt(size: size, ranges: [], outcome: "", landed: false)
            do throws(CrashkernelError) {
                sc.machine = try sc.machine.reservingCrashkernel(for: v)
            } catch {
                a.outcome = "crashkernel=\(sc.machine.crashkernel ?? ""): \(error.description)"
                answer.attempts.append(a)
                return false
            }
            a.ranges = sc.machine.crashkernelRanges
            guard !a.ranges.isEmpty else {
                a.outcome = "not reserved"
                answer.attempts.append(a)
                return false
            }
            do throws(PlanError) {
                let r = try Runner.run(sc, options: options)
                a.outcome = r.verdict.kind.rawValue
                a.landed = r.verdict.kind == .landed
            } catch {
                throw .plan(error.description)
            }
            answer.attempts.append(a)
            return a.landed
        }

        // Double until a size lands (or the limit), then bisect (lo fails, hi lands).
        var lo: UInt64 = 0
        var hi: UInt64 = 1
        while true {
            if try attempt(hi) { break }
            lo = hi
            guard hi < maxSteps else { return answer }
            hi = min(hi * 2, maxSteps)
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if try attempt(mid) { hi = mid } else { lo = mid }
        }
        answer.size = ByteCount(hi * step.raw)
        return answer
    }
}
