import Foundation
import KexecModel
import KexecSim
import Testing

/// The matrix's long-lived workers (`kexec-sim worker`, MatrixWorkerSession): the same results as
/// one child per run; a run that crashes or hangs its worker fails alone and the worker is replaced.
@Suite(.serialized) struct MatrixPersistentWorkerTests {
    /// A stand-in long-lived worker speaking MatrixWorkerProtocol: logs each start, then answers
    /// each request line by the fixture it names (crash, hang, fail, or a good report).
    static func fakeWorker(in dir: String) throws -> String {
        let path = dir + "/fake-kexec-sim-worker"
        let report =
            #"{\"scenario\": \"fine\", \"verdict\": \"landed\", \"summary\": \"ok\", \"matches\": true, \"evidence\": [{\"key\": \"entry\", \"value\": \"0x1000000\"}], \"policy\": \"ram-2m\"}"#
        let script = """
            #!/bin/sh
            [ "$1" = worker ] || exit 64
            echo start >> "\(dir)/starts"
            while read -r line; do
              case "$line" in
                *crash.yaml*) kill -SEGV $$ ;;
                *hang.yaml*) exec sleep 30 ;;
                *fail.yaml*) printf '%s\\n' '{"status": 3, "stdout": "", "stderr": "kexec-sim: something went wrong\\n"}' ;;
                *) printf '%s\\n' '{"status": 0, "stdout": "\(report)\\n", "stderr": ""}' ;;
              esac
            done
            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    static func jobs(_ dir: String, _ names: [String]) -> [MatrixJob] {
        names.map {
            MatrixJob(
                fixturePath: dir + "/" + $0, relativePath: $0, scenarioName: $0, policy: "ram-2m",
                expected: KexecModel.Expectation(verdict: .landed))
        }
    }

    @Test func aCrashOrHangFailsOnlyThatRunAndTheWorkerIsReplaced() throws {
        let dir = TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try Self.fakeWorker(in: dir)
        let names = ["fine.yaml", "crash.yaml", "hang.yaml", "fail.yaml", "fine2.yaml", "fine3.yaml"]
        let worker = MatrixWorker(executable: exe, timeoutSeconds: 1, persistent: true)
        let rs = Matrix.run(Self.jobs(dir, names), worker: worker, parallelism: 1)
        #expect(rs.map(\.job.relativePath) == names)
        #expect(rs.map(\.status) == [.passed, .failed, .failed, .failed, .passed, .passed])
        #expect(rs.map(\.verdict) == ["landed", "crash", "hang", "error", "landed", "landed"])
        #expect(rs[1].summary == "worker killed by signal SIGSEGV (11)")
        #expect(rs[2].summary == "worker timed out after 1 s and was killed")
        #expect(rs[3].summary == "worker exited with status 3")
        #expect(rs[3].evidence.contains(.init(key: "stderr", value: "kexec-sim: something went wrong")))
        #expect(rs[4].evidence == [.init(key: "entry", value: "0x1000000")])
        #expect(rs[5].report?.scenario == "fine")
        #expect(Matrix.summaryLine(rs) == "3 passed, 3 failed, 0 skipped")
        // One worker for fine + crash, one for hang, one for the rest: the crash and the hang
        // each cost their worker; a run that fails with an answer does not.
        let starts = try String(contentsOfFile: dir + "/starts", encoding: .utf8).split(separator: "\n")
        #expect(starts.count == 3)
    }

    @Test func parallelSessionsKeepJobOrder() throws {
        let dir = TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try Self.fakeWorker(in: dir)
        let names = (0..<12).map { $0 % 4 == 1 ? "crash.yaml" : "fine\($0).yaml" }
        let seen = Counter()
        let rs = Matrix.run(
            Self.jobs(dir, names), worker: MatrixWorker(executable: exe, timeoutSeconds: 5, persistent: true),
            parallelism: 3
        ) { _, n in seen.set(n) }
        #expect(seen.value == 12)
        #expect(rs.map(\.job.relativePath) == names)
        #expect(rs.map(\.verdict) == names.map { $0 == "crash.yaml" ? "crash" : "landed" })
    }

    /// Real workers give the same verdicts, evidence and reports as one `run` child per job; a
    /// run past its limit is killed and the next run gets a fresh worker.
    @Test func realLongLivedWorkersMatchOneShotChildren() throws {
        let exe = try #require(TestPaths.kexecSimBinary(), "build kexec-sim first (swift build --build-tests)")
        let files = ["x86_64-wrong-digest.yaml", "x86_64-overlapping-segments.yaml", "arm64-mmu-on-16k.yaml"].map {
            (path: TestPaths.fixture($0), fromDirectory: false)
        }
        let jobs = MatrixPlanner.jobs(fixtures: files, base: TestPaths.repo)
        let persistent = Matrix.run(
            jobs, worker: MatrixWorker(executable: exe, timeoutSeconds: 120, persistent: true), parallelism: 1)
        let oneShot = Matrix.run(jobs, worker: MatrixWorker(executable: exe, timeoutSeconds: 120), parallelism: 1)
        #expect(persistent.map(\.verdict) == ["hang", "rejected", "landed"])
        #expect(persistent.map(\.status) == oneShot.map(\.status))
        #expect(persistent.map(\.verdict) == oneShot.map(\.verdict))
        #expect(persistent.map(\.summary) == oneShot.map(\.summary))
        #expect(persistent.map(\.evidence) == oneShot.map(\.evidence))
        #expect(persistent.map { $0.report?.policy } == oneShot.map { $0.report?.policy })
        #expect(JUnit.xml(persistent).count > 0)

        let session = MatrixWorkerSession(
            worker: MatrixWorker(executable: exe, timeoutSeconds: 0.01, persistent: true))
        let killed = session.run(jobs[0])
        #expect(killed.verdict == "hang")
        #expect(killed.summary == "worker timed out after 0.01 s and was killed")
        let fresh = MatrixWorkerSession(worker: MatrixWorker(executable: exe, timeoutSeconds: 120, persistent: true))
        let r = fresh.run(jobs[1])
        #expect(r.verdict == "rejected")
        #expect(fresh.started == 1)
        session.finish()
        fresh.finish()
    }

    @Test func workerAnswersABadRequestAndGoesOn() throws {
        let exe = try #require(TestPaths.kexecSimBinary(), "build kexec-sim first (swift build --build-tests)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["worker"]
        let input = Pipe()
        let output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = FileHandle.nullDevice
        try p.run()
        let good = MatrixWorkerProtocol.requestLine([
            "run", TestPaths.fixture("x86_64-overlapping-segments.yaml"), "--json",
        ])
        input.fileHandleForWriting.write(Data(("not json\n" + good + "\n").utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let lines = out.split(separator: UInt8(ascii: "\n")).map { Data($0) }
        #expect(lines.count == 2)
        let bad = try #require(MatrixWorkerProtocol.response(fromLine: lines[0]))
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("JSON array"))
        let ok = try #require(MatrixWorkerProtocol.response(fromLine: lines[1]))
        #expect(ok.status == 0)
        #expect(RunReport.decode(Data(ok.stdout.utf8))?.verdict == "rejected")
        #expect(p.terminationStatus == 0)
    }
}
