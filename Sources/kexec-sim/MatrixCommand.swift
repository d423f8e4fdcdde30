import ArgumentParser
import Foundation
import KexecModel
import KexecSim

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Exit codes: 0 every run matches its expectation (skipped runs do not count), 1 some run does
/// not (or its worker failed), 2 bad input.
struct MatrixCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matrix",
        abstract: "Run every fixture under every applicable policy, in parallel worker processes.",
        discussion: """
            Each run is `kexec-sim run FIXTURE --policy P --json` in a long-lived worker process of \
            this binary (one per job slot, each taking runs from a shared queue), so a run that \
            crashes or hangs its worker is reported as that run's failure, the worker is replaced \
            and the matrix goes on. arm64 fixtures run once each, under their own relocation mode and \
            linear map (shown as e.g. "mmu-on 4k blocks"), whatever --policies says.
            """)

    @Argument(help: "Scenario fixtures, or directories searched for *.yaml (default: Fixtures/scenarios).")
    var fixtures: [String] = []
    @Option(help: "Only fixtures of this architecture (x86_64 or arm64).") var arch: String?
    @Option(help: "all, or a comma-separated list of x86_64 identity-map policies. Default: each fixture's own.")
    var policies: String?
    @Option(help: "Run every fixture as this first-kernel version (X.Y or X.Y.Z); rows keep their labels.")
    var kernel: String?
    @Option(help: "Run every fixture once per version, e.g. 6.1,6.8,6.12; each row's policy label gets \" @6.1\".")
    var kernels: String?
    @Option(help: "Worker processes at once (default: the number of cores).") var jobs: Int?
    @Option(help: "Run only shard K of N (1-based), split by a stable hash of fixture path and policy.")
    var shard: String?
    @Option(help: "Write one JSON object per run to this file (JSON lines).") var json: String?
    @Option(help: "Write a JUnit XML report to this file.") var junit: String?
    @Option(help: "Wall-clock limit of one worker, seconds; past it the worker is killed and the run fails.")
    var timeout: Double = 300
    @Flag(help: "A fresh `run` process per run instead of long-lived workers (one per job slot).")
    var oneShot = false
    @Option(help: "How purgatory's sha256 runs in every run: native or emulated (default: each fixture's own).")
    var purgatory: String?
    @Flag(
        help:
            "Opt into the runs that follow the real next kernel (fixtures with `follow:`, skipped without it)."
    )
    var follow = false
    @Option(help: "With --follow: the milestone every followed run goes to (default: each fixture's own).")
    var until: String?

    func run() throws {
        var archFilter: Arch?
        if let a = arch {
            guard let v = Arch(rawValue: a) else { fail("--arch: unknown architecture \"\(a)\" (x86_64 or arm64)") }
            archFilter = v
        }
        let pols: MatrixPolicies
        do {
            pols = try MatrixPolicies.parse(policies)
        } catch {
            fail(error.description)
        }
        if kernel != nil && kernels != nil { fail("--kernel and --kernels: give one of them") }
        let one = kernel.map { parseKernel($0) }
        var versions: [KernelVersion] = []
        if let list = kernels {
            let items = list.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard !items.contains(where: \.isEmpty) else {
                fail("--kernels: expected a comma-separated list of versions, e.g. 6.1,6.8,6.12, got \"\(list)\"")
            }
            for item in items {
                let v = parseKernel(item, option: "--kernels")
                if !versions.contains(v) { versions.append(v) }
            }
        }
        var sh: Shard?
        if let s = shard {
            guard let v = Shard(s) else { fail("--shard: expected K/N with 1 <= K <= N, got \"\(s)\"") }
            sh = v
        }
        if let j = jobs, j < 1 { fail("--jobs: must be at least 1") }
        guard timeout > 0 else { fail("--timeout: must be more than 0") }
        guard let exe = ChildProcess.selfExecutable() else {
            fail("cannot find this program's own executable to start workers")
        }
        let files: [(path: String, fromDirectory: Bool)]
        do {
            files = try MatrixPlanner.fixtureFiles(fixtures.isEmpty ? ["Fixtures/scenarios"] : fixtures)
        } catch {
            fail(error.description)
        }
        var followOption: MatrixFollow?
        if let u = until {
            guard follow else { fail("--until: only with --follow") }
            guard let g = FollowGoal(rawValue: u) else {
                fail(
                    "--until: unknown milestone \"\(u)\" (one of: \(FollowGoal.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            followOption = MatrixFollow(until: g)
        } else if follow {
            followOption = MatrixFollow()
        }
        var all = MatrixPlanner.jobs(
            fixtures: files, arch: archFilter, policies: pols, kernels: versions, kernel: one, follow: followOption)
        if let sh { all = all.filter { sh.contains($0) } }

        let names = Matrix.displayNames(all)
        let nameOf = Dictionary(zip(all.map(\.shardKey), names), uniquingKeysWith: { a, _ in a })
        let progress = ProgressPrinter(total: all.count, tty: isatty(2) != 0)
        var mode: PurgatoryMode?
        if let p = purgatory {
            guard let m = PurgatoryMode(rawValue: p) else {
                fail("--purgatory: unknown mode \"\(p)\" (native or emulated)")
            }
            mode = m
        }
        let worker = MatrixWorker(executable: exe, timeoutSeconds: timeout, persistent: !oneShot, purgatory: mode)
        let parallel = jobs ?? ProcessInfo.processInfo.activeProcessorCount
        let results = Matrix.run(all, worker: worker, parallelism: parallel) { r, _ in
            progress.finished(r, name: nameOf[r.job.shardKey] ?? r.job.relativePath)
        }
        progress.end()

        do {
            if let path = json { try AtomicWrite.write(Matrix.jsonLines(results), to: path) }
            if let path = junit { try AtomicWrite.write(JUnit.xml(results), to: path) }
        } catch {
            fail(error.description)
        }
        print(Matrix.table(results), terminator: "")
        if Matrix.counts(results).failed > 0 { throw ExitCode(1) }
    }
}

/// Progress on stderr: a line redrawn with \r on a terminal, a plain line per run otherwise.
final class ProgressPrinter: @unchecked Sendable {
    private let lock = NSLock()
    private var state: MatrixProgress
    private let tty: Bool
    private var ended = false
    private let timer: DispatchSourceTimer?

    init(total: Int, tty: Bool) {
        state = MatrixProgress(total: total)
        self.tty = tty
        // On a terminal the line is also redrawn every second, so rate and ETA stay live.
        timer = tty && total > 0 ? DispatchSource.makeTimerSource(queue: .global()) : nil
        if let timer {
            write("\r" + state.line() + "\u{1B}[K")
            timer.schedule(deadline: .now() + 1, repeating: 1)
            timer.setEventHandler { [weak self] in self?.redraw() }
            timer.resume()
        }
    }

    private func redraw() {
        lock.lock()
        defer { lock.unlock() }
        if !ended { write("\r" + state.line() + "\u{1B}[K") }
    }

    func finished(_ r: MatrixRunResult, name: String) {
        lock.lock()
        defer { lock.unlock() }
        state.record(r)
        if tty {
            write("\r" + state.line() + "\u{1B}[K")
        } else {
            write(state.plainLine(r, name: name) + "\n")
        }
    }

    func end() {
        timer?.cancel()
        lock.lock()
        defer { lock.unlock() }
        ended = true
        if tty && state.total > 0 { write("\r\u{1B}[K") }
    }

    private func write(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }
}
