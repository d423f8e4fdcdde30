import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// One long-lived `kexec-sim worker` child of the matrix (MatrixWorkerProtocol), driven by one
/// matrix thread: started with posix_spawn on two pipes (its stdin and stdout) and a temporary
/// file for its stderr. A job whose answer does not come within the limit gets the child SIGKILLed;
/// a child that dies on a job (a signal, an exit) answers nothing. Either way the outcome is that
/// job's, exactly as a one-shot child's would be (`ChildProcess.Outcome`), and the process is
/// spent: the caller starts another for the next job.
final class MatrixWorkerProcess {
    let pid: pid_t
    /// The parent's pipe ends; -1 once closed, so that no descriptor is closed twice (a second
    /// close could hit a number another thread has reused, e.g. a sibling worker's stdin).
    private var toWorker: Int32
    private var fromWorker: Int32
    private let errPath: String
    private var pending = Data()
    private(set) var alive = true

    /// Spawning is serialized: the parent's pipe ends are made close-on-exec right after pipe(),
    /// and no other child may be spawned in between and inherit them (a worker holding another's
    /// pipe would keep it from seeing EOF).
    private static let spawnLock = NSLock()

    private init(pid: pid_t, toWorker: Int32, fromWorker: Int32, errPath: String) {
        self.pid = pid
        self.toWorker = toWorker
        self.fromWorker = fromWorker
        self.errPath = errPath
    }

    deinit {
        closeToWorker()
        if fromWorker >= 0 { close(fromWorker) }
        fromWorker = -1
        if alive {
            kill(pid, SIGKILL)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
        }
        unlink(errPath)
    }

    /// `executable worker`, or why it could not start.
    static func start(executable: String) -> Result<MatrixWorkerProcess, StartFailure> {
        spawnLock.lock()
        defer { spawnLock.unlock() }
        let errPath = NSTemporaryDirectory() + "/kexec-sim-worker-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).err"
        var input: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        guard makePipe(&input) == 0 else { return .failure(StartFailure("pipe: \(String(cString: strerror(errno)))")) }
        guard makePipe(&output) == 0 else {
            close(input[0])
            close(input[1])
            return .failure(StartFailure("pipe: \(String(cString: strerror(errno)))"))
        }
        let errFD = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        func closeAll() {
            for fd in input + output + [errFD] where fd >= 0 { close(fd) }
        }
        guard errFD >= 0 else {
            closeAll()
            return .failure(StartFailure("cannot create \(errPath)"))
        }
        for fd in [input[1], output[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        #if canImport(Darwin)
            var actions: posix_spawn_file_actions_t?
        #else
            var actions = posix_spawn_file_actions_t()
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], STDIN_FILENO)
        posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, errFD, STDERR_FILENO)
        for fd in [input[0], output[1], errFD] { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(executable), strdup("worker"), nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(input[0])
        close(output[1])
        close(errFD)
        guard rc == 0 else {
            close(input[1])
            close(output[0])
            unlink(errPath)
            return .failure(StartFailure(String(cString: strerror(rc))))
        }
        return .success(MatrixWorkerProcess(pid: pid, toWorker: input[1], fromWorker: output[0], errPath: errPath))
    }

    /// A pipe whose both ends are made close-on-exec at once (Glibc's module does not export
    /// pipe2), so that other children do not keep them open; posix_spawn's dup2 gives the worker
    /// its own inheritable copies on 0 and 1.
    private static func makePipe(_ fds: inout [Int32]) -> Int32 {
        guard pipe(&fds) == 0 else { return -1 }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return 0
    }

    struct StartFailure: Error {
        var message: String
        init(_ m: String) { message = m }
    }

    /// Sends one job and waits at most `timeout` seconds for its answer; nil when the job could
    /// not even be sent (the worker had already ended: the job never started).
    func run(_ arguments: [String], timeout: Double) -> ChildProcess.Outcome? {
        var o = ChildProcess.Outcome()
        o.pid = pid
        let errStart = fileSize(errPath)
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0.001, timeout) * 1e9)
        guard send(MatrixWorkerProtocol.requestLine(arguments) + "\n") else {
            _ = died(o, errStart: errStart)
            return nil
        }
        while true {
            if let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<nl]
                pending = Data(pending[pending.index(after: nl)...])
                guard let r = MatrixWorkerProtocol.response(fromLine: Data(line)) else {
                    // Not the protocol: end this worker and say what it wrote.
                    kill(pid, SIGKILL)
                    o = died(o, errStart: errStart)
                    o.signal = nil
                    o.exitStatus = -1
                    return o
                }
                o.exitStatus = r.status
                o.stdout = Data(r.stdout.utf8)
                o.stderr = Data(r.stderr.utf8)
                return o
            }
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else {
                kill(pid, SIGKILL)
                reap()
                o.timedOut = true
                o.stderr = tail(errPath, from: errStart)
                return o
            }
            var p = pollfd(fd: fromWorker, events: Int16(POLLIN), revents: 0)
            let ms = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            let n = poll(&p, 1, ms)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { continue }
            var buf = [UInt8](repeating: 0, count: 65536)
            let got = read(fromWorker, &buf, buf.count)
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { return died(o, errStart: errStart) }
            pending.append(contentsOf: buf[0..<got])
        }
    }

    /// Closes the worker's stdin (it exits at EOF) and waits for it.
    func finish() {
        closeToWorker()
        if alive { reap() }
    }

    private func closeToWorker() {
        if toWorker >= 0 { close(toWorker) }
        toWorker = -1
    }

    private func send(_ line: String) -> Bool {
        var bytes = Array(line.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(toWorker, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            off += n
        }
        bytes.removeAll()
        return true
    }

    /// The worker ended without answering: how (signal or exit status) and its last stderr.
    private func died(_ base: ChildProcess.Outcome, errStart: UInt64) -> ChildProcess.Outcome {
        var o = base
        let st = reap()
        let sig = st & 0x7f
        if sig != 0 && sig != 0x7f { o.signal = sig } else { o.exitStatus = (st >> 8) & 0xff }
        o.stderr = tail(errPath, from: errStart)
        return o
    }

    @discardableResult
    private func reap() -> Int32 {
        var st: Int32 = 0
        while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
        alive = false
        return st
    }

    private func fileSize(_ path: String) -> UInt64 {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? 0
    }

    private func tail(_ path: String, from: UInt64) -> Data {
        guard let h = FileHandle(forReadingAtPath: path) else { return Data() }
        defer { try? h.close() }
        try? h.seek(toOffset: from)
        return (try? h.readToEnd()) ?? Data()
    }
}

/// What one matrix thread runs its jobs with: with `worker.persistent`, one long-lived worker
/// child reused from job to job and replaced after a job that crashed or hung it (or that it
/// could not start); otherwise a fresh `run` child per job (`MatrixWorker.run`).
public final class MatrixWorkerSession {
    public let worker: MatrixWorker
    private var process: MatrixWorkerProcess?
    /// Worker children started so far (persistent mode).
    public private(set) var started = 0

    public init(worker: MatrixWorker) { self.worker = worker }

    deinit { process?.finish() }

    public func run(_ job: MatrixJob) -> MatrixRunResult {
        guard worker.persistent else { return worker.run(job) }
        if let r = worker.answerWithoutChild(job) { return r }
        let t0 = Date()
        let args = worker.arguments(for: job)
        var outcome = ChildProcess.Outcome()
        // A worker that ended after its last answer cannot take the job: one more, fresh.
        for _ in 0..<2 {
            if process == nil {
                switch MatrixWorkerProcess.start(executable: worker.executable) {
                case .success(let p):
                    process = p
                    started += 1
                case .failure(let f):
                    outcome.launchError = f.message
                }
            }
            guard let p = process else { break }
            if let o = p.run(args, timeout: worker.timeoutSeconds) {
                outcome = o
                if !p.alive { process = nil }
                break
            }
            process = nil
        }
        let elapsed = Date().timeIntervalSince(t0)
        return MatrixWorker.interpret(outcome, job: job, elapsed: elapsed, timeout: worker.timeoutSeconds)
    }

    /// Ends the worker child (EOF on its stdin) and waits for it.
    public func finish() {
        process?.finish()
        process = nil
    }
}
