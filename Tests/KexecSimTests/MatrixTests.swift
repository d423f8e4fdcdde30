import Foundation
import KexecModel
import KexecSim
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// Where the package's files and the built kexec-sim binary are, for tests that start workers.
enum TestPaths {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static func fixture(_ name: String) -> String { repo + "/Fixtures/scenarios/" + name }

    /// The kexec-sim executable built next to this test bundle (or in the usual build directories).
    static func kexecSimBinary() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["KEXEC_SIM_BIN"] { candidates.append(env) }
        for start in [Bundle.main.executablePath, CommandLine.arguments.first].compactMap({ $0 }) {
            // Linux: <scratch>/debug/X.xctest; Darwin: <scratch>/debug/X.xctest/Contents/MacOS/X.
            var dir = URL(fileURLWithPath: start).deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent("kexec-sim").path)
                dir = dir.deletingLastPathComponent()
            }
        }
        for scratch in [".build-mat", ".build"] {
            candidates.append(repo + "/" + scratch + "/debug/kexec-sim")
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A temporary directory for one test.
    static func tempDir() -> String {
        let d = NSTemporaryDirectory() + "/kexec-sim-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}

/// Collects elements and attributes with Foundation's XMLParser.
final class XMLCollector: NSObject, XMLParserDelegate {
    struct Element {
        var name: String
        var attributes: [String: String]
        var text = ""
    }
    var elements: [Element] = []
    var stack: [Int] = []
    var error: Error?

    static func parse(_ s: String) -> XMLCollector? {
        let c = XMLCollector()
        let p = XMLParser(data: Data(s.utf8))
        p.delegate = c
        return p.parse() ? c : nil
    }

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String]
    ) {
        elements.append(Element(name: elementName, attributes: attributes))
        stack.append(elements.count - 1)
    }
    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        stack.removeLast()
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if let i = stack.last { elements[i].text += string }
    }
    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { error = parseError }

    func named(_ n: String) -> [Element] { elements.filter { $0.name == n } }
}

@Suite struct MatrixShardTests {
    @Test func fnv1aKnownValues() {
        #expect(FNV1a.hash64("") == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a.hash64("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a.hash64("foobar") == 0x8594_4171_f739_67e8)
        #expect(FNV1a.hash64("Fixtures/scenarios/x86_64-basic.yaml|ram-2m") == 0x6fa9_004c_8de6_fdbb)
    }

    @Test func shardParsing() {
        #expect(Shard("1/2") == Shard(index: 1, count: 2))
        #expect(Shard(" 3 / 4 ") == Shard(index: 3, count: 4))
        #expect(Shard("0/2") == nil)
        #expect(Shard("3/2") == nil)
        #expect(Shard("1/0") == nil)
        #expect(Shard("1") == nil)
        #expect(Shard("a/b") == nil)
        #expect(Shard("1/2/3") == nil)
    }

    @Test func shardOfAFixedKeyIsStable() {
        let key = "Fixtures/scenarios/x86_64-basic.yaml|ram-2m"
        #expect(Shard("2/2")!.contains(key: key))
        #expect(!Shard("1/2")!.contains(key: key))
        #expect(Shard("4/4")!.contains(key: key))
        #expect(Shard("1/1")!.contains(key: key))
    }

    @Test func shardsPartitionTheFullSet() throws {
        let files = try MatrixPlanner.fixtureFiles([TestPaths.repo + "/Fixtures/scenarios"])
        let jobs = MatrixPlanner.jobs(fixtures: files, policies: .all, base: TestPaths.repo)
        // x86_64 fixtures run under every policy; arm64 ones once, under their own relocation mode.
        let arm64 = try files.filter { try FixtureDecoder.load(path: $0.path).machine.arch == .arm64 }.count
        #expect(arm64 >= 7)
        #expect(jobs.count == (files.count - arm64) * IdentityMapPolicy.allCases.count + arm64)
        // No arm64 job carries an x86_64 policy name.
        let x86Names = Set(IdentityMapPolicy.allCases.map(\.rawValue))
        let armJobs = jobs.filter { $0.relativePath.hasPrefix("Fixtures/scenarios/arm64-") }
        #expect(armJobs.count == arm64)
        #expect(armJobs.allSatisfy { !x86Names.contains($0.policy) && $0.policy.hasPrefix("mmu-o") })
        #expect(jobs.allSatisfy { $0.relativePath.hasPrefix("Fixtures/scenarios/") })
        let all = Set(jobs.map(\.shardKey))
        #expect(all.count == jobs.count)
        for n in [2, 3, 4] {
            var union: [String] = []
            for k in 1...n {
                union += jobs.filter { Shard(index: k, count: n)!.contains($0) }.map(\.shardKey)
            }
            #expect(union.count == jobs.count)
            #expect(Set(union) == all)
        }
        let one = jobs.filter { Shard("1/2")!.contains($0) }
        let two = jobs.filter { Shard("2/2")!.contains($0) }
        #expect(!one.isEmpty && !two.isEmpty)
        #expect(Set(one.map(\.shardKey)).isDisjoint(with: Set(two.map(\.shardKey))))
        #expect(one.count + two.count == jobs.count)
    }

    /// arm64 fixtures are shown and sharded under their own "relocation granule mappings" label,
    /// once each whatever --policies says, and the worker is not given an x86_64 --policy.
    @Test func arm64JobsCarryTheirOwnPolicyLabel() throws {
        let files = ["arm64-mmu-on-16k.yaml", "arm64-basic.yaml", "x86_64-basic.yaml"].map {
            (path: TestPaths.fixture($0), fromDirectory: false)
        }
        for policies in [MatrixPolicies.own, .all, .list([.ram1g])] {
            let jobs = MatrixPlanner.jobs(fixtures: Array(files.prefix(2)), policies: policies, base: TestPaths.repo)
            #expect(jobs.map(\.policy) == ["mmu-on 16k blocks", "mmu-off 4k blocks"])
            #expect(
                jobs.map(\.shardKey) == [
                    "Fixtures/scenarios/arm64-mmu-on-16k.yaml|mmu-on 16k blocks",
                    "Fixtures/scenarios/arm64-basic.yaml|mmu-off 4k blocks",
                ])
            #expect(jobs.allSatisfy { $0.policyOverride == nil && $0.passesPolicy == false })
        }
        #expect(FNV1a.hash64("Fixtures/scenarios/arm64-mmu-on-16k.yaml|mmu-on 16k blocks") == 0x0c7b_4601_36a6_adad)
        #expect(FNV1a.hash64("Fixtures/scenarios/arm64-basic.yaml|mmu-off 4k blocks") == 0x5c59_3219_f439_dd28)
        let jobs = MatrixPlanner.jobs(fixtures: files, base: TestPaths.repo)
        #expect(Shard("2/4")!.contains(jobs[0]) && Shard("1/4")!.contains(jobs[1]) && Shard("4/4")!.contains(jobs[2]))
        let worker = MatrixWorker(executable: "/bin/false", timeoutSeconds: 10)
        #expect(worker.arguments(for: jobs[0]) == ["run", jobs[0].fixturePath, "--json", "--timeout", "4.000"])
        #expect(
            worker.arguments(for: jobs[2]) == [
                "run", jobs[2].fixturePath, "--policy", "ram-2m", "--json", "--timeout", "4.000",
            ])
        #expect(MatrixPlanner.arm64PolicyLabel(Arm64Policy()) == "auto 4k auto")
        #expect(
            MatrixPlanner.arm64PolicyLabel(Arm64Policy(relocation: .mmuOff, mappings: .blocks)) == "mmu-off 4k blocks")
        // The label is a row of the table and a JUnit testcase name.
        let rs = jobs.map {
            MatrixRunResult(job: $0, status: .passed, verdict: "landed", summary: "ok", matches: true, elapsed: 1)
        }
        let rows = Matrix.table(rs).split(separator: "\n").map(String.init)
        #expect(rows[0] == "fixture                policy             verdict  expected  match   time")
        #expect(rows[1] == "arm64-mmu-on-16k.yaml  mmu-on 16k blocks  landed   landed    yes    1.00s")
        #expect(rows[2] == "arm64-basic.yaml       mmu-off 4k blocks  landed   landed    yes    1.00s")
        #expect(rows[3] == "x86_64-basic.yaml      ram-2m             landed   landed    yes    1.00s")
        let xml = try #require(XMLCollector.parse(JUnit.xml(rs)))
        #expect(
            xml.named("testcase").map { $0.attributes["name"]! } == [
                "mmu-on 16k blocks", "mmu-off 4k blocks", "ram-2m",
            ])
    }

    @Test func policiesParse() throws {
        #expect(try MatrixPolicies.parse(nil) == .own)
        #expect(try MatrixPolicies.parse("all") == .all)
        #expect(try MatrixPolicies.parse("ram-2m,gbpages-exact") == .list([.ram2m, .gbpagesExact]))
        #expect(throws: MatrixError.self) { try MatrixPolicies.parse("ram-3m") }
    }

    @Test func jobsPerPolicyCarryTheirExpectations() throws {
        let files = [(path: TestPaths.fixture("x86_64-overlapping-segments.yaml"), fromDirectory: false)]
        let jobs = MatrixPlanner.jobs(fixtures: files, policies: .list([.ram2m, .ram1g]), base: TestPaths.repo)
        #expect(jobs.map(\.policy) == ["ram-2m", "ram-1g"])
        #expect(jobs[0].expected == KexecModel.Expectation(verdict: .rejected, errno: "EINVAL"))
        #expect(jobs[1].expected == nil)
        #expect(jobs[0].relativePath == "Fixtures/scenarios/x86_64-overlapping-segments.yaml")
        #expect(jobs[0].fixtureStem == "x86_64-overlapping-segments")
    }

    @Test func arm64RunsOnceAndMachineFilesAreSkipped() throws {
        let dir = TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let arm = """
            name: arm64 kexec
            machine: \(TestPaths.repo)/Fixtures/machines/arm64-4g.yaml
            kexec: { kernel: { size: 1MiB } }
            expect: { verdict: landed }
            """
        try arm.write(toFile: dir + "/arm.yaml", atomically: true, encoding: .utf8)
        let files = [
            (path: dir + "/arm.yaml", fromDirectory: false),
            (path: TestPaths.repo + "/Fixtures/machines/x86_64-4g.yaml", fromDirectory: false),
        ]
        let jobs = MatrixPlanner.jobs(fixtures: files, policies: .all, base: TestPaths.repo)
        #expect(jobs.count == 2)
        #expect(jobs[0].skipReason == nil && jobs[0].expected?.verdict == .landed)
        // No policy: the newest modelled kernel's rules with Debian's config (MMU on, rodata=full).
        #expect(jobs[0].policy == "mmu-on 4k base-pages")
        #expect(jobs[1].skipReason == "a machine fixture (no kexec section): nothing to run")
        #expect(MatrixPlanner.jobs(fixtures: files, arch: .x86_64, policies: .all, base: TestPaths.repo).count == 1)
        let r = MatrixWorker(executable: "/nonexistent").run(jobs[1])
        #expect(r.status == .skipped)
        // The directory walk leaves machine files out.
        let fromDir = try MatrixPlanner.fixtureFiles([TestPaths.repo + "/Fixtures/machines"])
        #expect(MatrixPlanner.jobs(fixtures: fromDir, base: TestPaths.repo).isEmpty)
    }
}

@Suite struct MatrixReportTests {
    static func job(_ fixture: String, _ policy: String, expected: KexecModel.Expectation? = nil) -> MatrixJob {
        MatrixJob(
            fixturePath: "/r/" + fixture, relativePath: fixture, scenarioName: "scenario " + fixture, policy: policy,
            expected: expected)
    }

    static let sample: [MatrixRunResult] = [
        MatrixRunResult(
            job: job("s/a.yaml", "ram-2m", expected: KexecModel.Expectation(verdict: .landed)), status: .passed,
            verdict: "landed", summary: "ok", matches: true, elapsed: 0.5),
        MatrixRunResult(
            job: job("s/a.yaml", "ram-1g"), status: .failed, verdict: "page-fault",
            summary: "fault at 0x1000 <in> \"acpi\" & 'more'\nline two \u{1}",
            evidence: [.init(key: "address", value: "0x1000"), .init(key: "region", value: "acpi <x> & y")],
            matches: false, elapsed: 0.25),
        MatrixRunResult(
            job: job("s/b.yaml", "default"), status: .skipped, verdict: nil,
            summary: "machine.arch: arm64 runs are not built yet (x86_64 only)"),
        MatrixRunResult(
            job: job("s/b.yaml", "ram-2m", expected: KexecModel.Expectation(verdict: .hang)), status: .failed,
            verdict: "hang",
            summary: "worker timed out after 5 s and was killed", evidence: [.init(key: "worker", value: "timed out")],
            matches: false,
            elapsed: 5, workerError: "worker timed out after 5 s and was killed"),
    ]

    @Test func junitIsWellFormedWithCountsAndEscaping() throws {
        let xml = JUnit.xml(Self.sample)
        let c = try #require(XMLCollector.parse(xml))
        let root = try #require(c.named("testsuites").first)
        #expect(root.attributes["tests"] == "4")
        #expect(root.attributes["failures"] == "2")
        #expect(root.attributes["skipped"] == "1")
        #expect(root.attributes["errors"] == "0")
        let suites = c.named("testsuite")
        #expect(suites.map { $0.attributes["name"]! } == ["s/a.yaml", "s/b.yaml"])
        #expect(suites.map { $0.attributes["tests"]! } == ["2", "2"])
        #expect(suites.map { $0.attributes["failures"]! } == ["1", "1"])
        #expect(suites.map { $0.attributes["skipped"]! } == ["0", "1"])
        let cases = c.named("testcase")
        #expect(cases.map { $0.attributes["name"]! } == ["ram-2m", "ram-1g", "default", "ram-2m"])
        #expect(cases.map { $0.attributes["classname"]! } == ["a", "a", "b", "b"])
        #expect(cases.map { $0.attributes["time"]! } == ["0.500", "0.250", "0.000", "5.000"])
        let failures = c.named("failure")
        #expect(failures.count == 2)
        #expect(failures[0].attributes["message"] == "fault at 0x1000 <in> \"acpi\" & 'more'\nline two \u{FFFD}")
        #expect(failures[0].attributes["type"] == "page-fault")
        #expect(failures[0].text.contains("region   acpi <x> & y"))
        #expect(failures[0].text.contains("expected: —"))
        #expect(failures[1].attributes["message"] == "worker timed out after 5 s and was killed")
        #expect(failures[1].text.contains("expected: hang"))
        let skipped = c.named("skipped")
        #expect(skipped.count == 1)
        #expect(skipped[0].attributes["message"] == "machine.arch: arm64 runs are not built yet (x86_64 only)")
        #expect(c.named("property").first?.attributes["value"] == "scenario s/a.yaml")
    }

    @Test func escapingFunctions() {
        #expect(JUnit.attr("a<b>&\"'\n\t") == "a&lt;b&gt;&amp;&quot;&apos;&#10;&#9;")
        #expect(JUnit.text("a<b>&\"\u{0}\u{1F}") == "a&lt;b&gt;&amp;\"\u{FFFD}\u{FFFD}")
    }

    @Test func jsonLinesCarryTheRunReportAndMatrixFields() throws {
        let report = RunReport(
            scenario: "s", file: "/r/s/a.yaml", verdict: "landed", summary: "ok",
            evidence: [.init(key: "entry", value: "0x200"), .init(key: "boot_params", value: "0x9000")],
            expected: .init(verdict: "landed"), matches: true, engine: "unicorn 2.1.4", policy: "ram-2m",
            stats: .init(totalSeconds: 0.1))
        var rs = Self.sample
        rs[0].report = report
        let text = Matrix.jsonLines(rs)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 5 && lines[4].isEmpty)
        let objs = try lines.prefix(4).map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objs[0]["fixture_path"] as? String == "s/a.yaml")
        #expect(objs[0]["policy"] as? String == "ram-2m")
        #expect(objs[0]["status"] as? String == "passed")
        #expect(objs[0]["elapsed_s"] as? Double == 0.5)
        #expect(objs[0]["engine"] as? String == "unicorn 2.1.4")
        #expect(
            objs[0]["evidence"] as? [[String: String]] == [
                ["key": "entry", "value": "0x200"], ["key": "boot_params", "value": "0x9000"],
            ])
        #expect((objs[0]["stats"] as? [String: Any])?["total_s"] as? Double == 0.1)
        #expect(objs[1]["status"] as? String == "failed")
        #expect(objs[1]["verdict"] as? String == "page-fault")
        #expect(objs[1]["matches"] as? Bool == false)
        #expect(objs[1]["expected"] is NSNull)
        #expect((objs[1]["evidence"] as? [[String: String]])?.last == ["key": "region", "value": "acpi <x> & y"])
        #expect(objs[2]["status"] as? String == "skipped")
        #expect(objs[2]["verdict"] is NSNull)
        #expect(objs[3]["error"] as? String == "worker timed out after 5 s and was killed")
        #expect((objs[3]["expected"] as? [String: Any])?["verdict"] as? String == "hang")
        for o in objs {
            for k in ["scenario", "file", "verdict", "summary", "expected", "matches", "policy", "evidence"] {
                #expect(o[k] != nil, "missing \(k)")
            }
        }
        // Each line decodes back with JSONDecoder.
        let decoded = try lines.prefix(4).map { try JSONDecoder().decode(MatrixReportLine.self, from: Data($0.utf8)) }
        #expect(decoded[0].report == report)
        #expect(decoded.map(\.status) == [.passed, .failed, .skipped, .failed])
        #expect(decoded.map(\.fixturePath) == ["s/a.yaml", "s/a.yaml", "s/b.yaml", "s/b.yaml"])
        #expect(decoded[3].error == "worker timed out after 5 s and was killed")
        #expect(decoded[2].report.verdict == nil)
    }

    @Test func tableEndsWithTheSummaryLine() {
        let t = Matrix.table(Self.sample)
        let lines = t.split(separator: "\n").map(String.init)
        #expect(lines.last == "1 passed, 2 failed, 1 skipped")
        #expect(lines[0].hasPrefix("fixture"))
        #expect(lines[1] == "a.yaml   ram-2m   landed      landed    yes    0.50s")
        #expect(lines[2].contains("page-fault") && lines[2].contains("NO"))
        #expect(lines[3].contains("skip"))
        #expect(Matrix.summaryLine([]) == "0 passed, 0 failed, 0 skipped")
    }

    @Test func progressLines() {
        let t0 = Date(timeIntervalSince1970: 1000)
        var p = MatrixProgress(total: 4, start: t0)
        p.record(Self.sample[0])
        p.record(Self.sample[1])
        #expect(p.line(now: t0.addingTimeInterval(4)) == "2/4  0.5 runs/s  ETA 4s  1 failed")
        #expect(
            p.plainLine(Self.sample[1], name: "a.yaml")
                == "[2/4] a.yaml ram-1g: page-fault (expected —) FAILED 0.25s")
        p.record(Self.sample[2])
        p.record(Self.sample[3])
        #expect(p.line(now: t0.addingTimeInterval(8)) == "4/4  0.4 runs/s  8s  2 failed")
    }

    @Test func atomicWriteReplacesAndLeavesNoTemporaries() throws {
        let dir = TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out.xml"
        try AtomicWrite.write("first", to: path)
        try AtomicWrite.write("second", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.xml"])
        #expect(throws: AtomicWrite.Failure.self) { try AtomicWrite.write("x", to: dir + "/missing/out.xml") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["out.xml"])
    }
}

@Suite(.serialized) struct MatrixWorkerTests {
    /// A stand-in worker: answers by the fixture's file name (crash, hang, fail, or a good report).
    static func fakeWorker(in dir: String) throws -> String {
        let path = dir + "/fake-kexec-sim"
        let script = """
            #!/bin/sh
            case "$(basename "$2")" in
              crash.yaml) kill -SEGV $$ ;;
              hang.yaml) exec sleep 30 ;;
              fail.yaml) echo "kexec-sim: something went wrong" >&2; exit 3 ;;
              *) echo '{"scenario": "fine", "verdict": "landed", "summary": "ok", "matches": true,' \
                   '"evidence": [{"key": "entry", "value": "0x1000000"}], "policy": "ram-2m"}' ;;
            esac
            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test func crashingAndHangingWorkersAreThatRunsFailure() throws {
        let dir = TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let exe = try Self.fakeWorker(in: dir)
        let jobs = ["crash.yaml", "hang.yaml", "fail.yaml", "fine.yaml"].map {
            MatrixJob(
                fixturePath: dir + "/" + $0, relativePath: $0, scenarioName: $0, policy: "ram-2m",
                expected: KexecModel.Expectation(verdict: .landed))
        }
        let seen = Counter()
        let rs = Matrix.run(jobs, worker: MatrixWorker(executable: exe, timeoutSeconds: 1), parallelism: 4) { _, n in
            seen.set(n)
        }
        #expect(seen.value == 4)
        #expect(rs.map(\.job.relativePath) == ["crash.yaml", "hang.yaml", "fail.yaml", "fine.yaml"])
        #expect(rs.map(\.status) == [.failed, .failed, .failed, .passed])
        #expect(rs.map(\.verdict) == ["crash", "hang", "error", "landed"])
        #expect(rs[0].summary == "worker killed by signal SIGSEGV (11)")
        #expect(rs[1].summary == "worker timed out after 1 s and was killed")
        #expect(rs[2].summary == "worker exited with status 3")
        #expect(rs[2].evidence.contains(.init(key: "stderr", value: "kexec-sim: something went wrong")))
        #expect(rs[3].matches == true)
        #expect(rs[3].evidence == [.init(key: "entry", value: "0x1000000")])
        #expect(rs[3].report?.scenario == "fine")
        #expect(Matrix.summaryLine(rs) == "1 passed, 3 failed, 0 skipped")
    }

    @Test func realWorkersOverSmallScenarios() throws {
        let exe = try #require(TestPaths.kexecSimBinary(), "build kexec-sim first (swift build --build-tests)")
        let files = ["x86_64-wrong-digest.yaml", "x86_64-overlapping-segments.yaml"].map {
            (path: TestPaths.fixture($0), fromDirectory: false)
        }
        var jobs = MatrixPlanner.jobs(fixtures: files, base: TestPaths.repo)
        // A policy without an expectation still shows its verdict and counts as passed.
        jobs += MatrixPlanner.jobs(fixtures: [files[1]], policies: .list([.ram1g]), base: TestPaths.repo)
        let rs = Matrix.run(jobs, worker: MatrixWorker(executable: exe, timeoutSeconds: 120), parallelism: 2)
        #expect(rs.map(\.job.policy) == ["ram-2m", "ram-2m", "ram-1g"])
        #expect(rs.map(\.verdict) == ["hang", "rejected", "rejected"])
        #expect(rs.map(\.status) == [.passed, .passed, .passed])
        #expect(rs.map(\.matches) == [true, true, nil])
        #expect(rs.map(\.expectedText) == ["hang", "rejected EINVAL", "—"])
        #expect(rs[0].evidence.contains { $0.key == "loop" && $0.value == "sha256_mismatch_spin" })
        #expect(rs[0].report?.policy == "ram-2m")
        #expect(rs[0].report?.stats != nil)
        let table = Matrix.table(rs)
        #expect(table.hasSuffix("\n3 passed, 0 failed, 0 skipped\n"))
        let line = try #require(Matrix.jsonLines(rs).split(separator: "\n").first)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(obj["scenario"] as? String == "wrong stored digest hangs in purgatory")
        #expect(obj["fixture_path"] as? String == "Fixtures/scenarios/x86_64-wrong-digest.yaml")
        #expect(obj["status"] as? String == "passed")
        #expect(obj["verdict"] as? String == "hang")
        #expect(obj["stats"] is [String: Any])
    }

    /// A real arm64 worker runs under the fixture's own policy and reports the same label.
    @Test func realArm64WorkerReportsItsOwnPolicy() throws {
        let exe = try #require(TestPaths.kexecSimBinary(), "build kexec-sim first (swift build --build-tests)")
        let files = [(path: TestPaths.fixture("arm64-mmu-on-16k.yaml"), fromDirectory: false)]
        let jobs = MatrixPlanner.jobs(fixtures: files, policies: .all, base: TestPaths.repo)
        #expect(jobs.count == 1)
        let r = MatrixWorker(executable: exe, timeoutSeconds: 120).run(jobs[0])
        #expect(r.status == .passed, "\(r.summary)")
        #expect(r.verdict == "landed")
        #expect(r.report?.policy == "mmu-on 16k blocks")
        let line = try JSONDecoder().decode(MatrixReportLine.self, from: Data(Matrix.jsonLines([r]).utf8))
        #expect(line.report.policy == "mmu-on 16k blocks")
        #expect(line.fixturePath == "Fixtures/scenarios/arm64-mmu-on-16k.yaml")
    }

    @Test func aRealWorkerPastItsLimitIsKilled() throws {
        let exe = try #require(TestPaths.kexecSimBinary(), "build kexec-sim first (swift build --build-tests)")
        let files = [(path: TestPaths.fixture("x86_64-destination-not-mapped.yaml"), fromDirectory: false)]
        let jobs = MatrixPlanner.jobs(fixtures: files, base: TestPaths.repo)
        let r = MatrixWorker(executable: exe, timeoutSeconds: 0.01).run(jobs[0])
        #expect(r.status == .failed)
        #expect(r.verdict == "hang")
        #expect(r.summary == "worker timed out after 0.01 s and was killed")
        #expect(r.matches == false)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var v = 0
    func set(_ n: Int) {
        lock.lock()
        v = max(v, n)
        lock.unlock()
    }
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return v
    }
}
