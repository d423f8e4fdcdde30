import Foundation
import KexecModel
import KexecSim
import Testing

/// `matrix --follow`: fixtures with `follow:` are not part of the default matrix (skipped, naming
/// the option); `--follow [--until GOAL]` runs them through the workers with `run --follow`, and
/// every row says the milestone it reached.
@Suite struct MatrixFollowTests {
    /// Two fixtures in a temporary directory: one that follows (to its banner), one that does not.
    static func fixtures(_ dir: String) throws -> [(path: String, fromDirectory: Bool)] {
        let machine = repoRoot + "/Fixtures/machines/x86_64-4gib-box.yaml"
        try "name: followed\nmachine: \(machine)\nkexec: { kernel: { size: 4MiB } }\nfollow: banner\n"
            .write(toFile: dir + "/a-followed.yaml", atomically: true, encoding: .utf8)
        try "name: plain\nmachine: \(machine)\nkexec: { kernel: { size: 4MiB } }\npolicy: { identity_map: ram-2m }\n"
            .write(toFile: dir + "/b-plain.yaml", atomically: true, encoding: .utf8)
        return try MatrixPlanner.fixtureFiles([dir])
    }

    @Test func followedFixturesAreSkippedByDefault() throws {
        let dir = TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let jobs = MatrixPlanner.jobs(fixtures: try Self.fixtures(dir), base: dir)
        #expect(jobs.map(\.relativePath) == ["a-followed.yaml", "b-plain.yaml"])
        #expect(
            jobs[0].skipReason
                == "follows the next kernel (follow: banner): not part of the default matrix, opt in with matrix --follow"
        )
        #expect(jobs[0].follow == nil)
        #expect(jobs[1].skipReason == nil)
        #expect(jobs[1].follow == nil)
        let worker = MatrixWorker(executable: "/bin/false")
        #expect(!worker.arguments(for: jobs[1]).contains("--follow"))
        let r = worker.run(jobs[0])
        #expect(r.status == .skipped)
    }

    @Test func followOptsInWithTheFixturesGoalOrUntil() throws {
        let dir = TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let files = try Self.fixtures(dir)
        let own = MatrixPlanner.jobs(fixtures: files, follow: MatrixFollow(), base: dir)
        #expect(own.map(\.skipReason) == [nil, nil])
        #expect(own.map(\.follow) == [.banner, nil])
        #expect(own[0].policy == "kernel")
        #expect(own[0].policyOverride == nil)
        let worker = MatrixWorker(executable: "/bin/false", timeoutSeconds: 100)
        #expect(
            worker.arguments(for: own[0]) == [
                "run", own[0].fixturePath, "--follow", "--until", "banner", "--follow-timeout", "40.000", "--json",
                "--timeout", "40.000",
            ])
        #expect(!worker.arguments(for: own[1]).contains("--follow"))
        let until = MatrixPlanner.jobs(fixtures: files, follow: MatrixFollow(until: .memory), base: dir)
        #expect(until.map(\.follow) == [.memory, nil])
    }

    /// The milestone column and JSON key of a followed row, from its `milestones` evidence.
    @Test func rowsOfAFollowedMatrixNameTheirMilestone() throws {
        var job = MatrixJob(
            fixturePath: "/f.yaml", relativePath: "f.yaml", scenarioName: "f", policy: "mmu-on 4k base-pages",
            expected: Expectation(verdict: .landed, milestone: .memory), passesPolicy: false)
        job.follow = .memory
        let r = MatrixRunResult(
            job: job, status: .passed, verdict: "landed", summary: "ok",
            evidence: [.init(key: "milestones", value: "image-entered, mmu-on, banner, memory")], matches: true,
            elapsed: 1.5)
        #expect(r.milestone == "memory")
        let table = Matrix.table([r])
        #expect(table.hasPrefix("fixture  policy                verdict  milestone  expected         match   time\n"))
        #expect(table.contains("f.yaml   mmu-on 4k base-pages  landed   memory     landed (memory)  yes    1.50s\n"))
        let line = Matrix.jsonLines([r])
        #expect(line.contains(#""milestone":"memory""#))
        let back = try JSONDecoder().decode(MatrixReportLine.self, from: Data(line.utf8))
        #expect(back.milestone == "memory")
    }

    /// Through the long-lived workers, with Debian's arm64 Image (skipped without it).
    @Test(.enabled(if: DebianKernel.arm64Present && CLITests.binary != nil, "no .kernels/Image-arm64 or binary"))
    func arm64FollowFixtureRunsThroughTheWorkers() throws {
        let exe = try #require(CLITests.binary)
        let files = [(path: repoRoot + "/Fixtures/follow/arm64-follow-debian.yaml", fromDirectory: false)]
        let worker = MatrixWorker(executable: exe, timeoutSeconds: 300, persistent: true)
        let skipped = Matrix.run(MatrixPlanner.jobs(fixtures: files), worker: worker, parallelism: 1)
        #expect(skipped.map(\.status) == [.skipped])
        let rs = Matrix.run(
            MatrixPlanner.jobs(fixtures: files, follow: MatrixFollow()), worker: worker, parallelism: 1)
        #expect(rs.map(\.status) == [.passed], "\(rs.map(\.summary))")
        #expect(rs.first?.verdict == "landed")
        #expect(rs.first?.milestone == "memory")
        #expect(
            rs.first?.report?.evidence.contains(.init(key: "follow_stop", value: "reached the goal (memory)")) == true)
        #expect(rs.first?.report?.evidence.contains(.init(key: "memory_check", value: "agrees")) == true)
    }
}
