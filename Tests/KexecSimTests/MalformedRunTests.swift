import Foundation
import KexecModel
import KexecSim
import Testing

private let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("KexecModelTests/Malformed").path

@Suite struct MalformedRunTests {
    @Test func dump() throws {
        var out = ""
        for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where name.hasPrefix("run-") {
            let t0 = Date()
            do {
                let s = try FixtureDecoder.load(path: dir + "/" + name)
                let r = try Runner.run(s)
                out += "\(name)|\(r.verdict.kind.rawValue)|\(r.verdict.errno ?? "-")|\(r.verdict.evidence.map { "\($0.0)=\($0.1)" }.joined(separator: "; "))  [\(Int(Date().timeIntervalSince(t0) * 1000))ms]\n"
            } catch {
                out += "\(name)|THROW|\(error)\n"
            }
        }
        try out.write(toFile: "/tmp/fz/rundump.txt", atomically: true, encoding: .utf8)
    }
}
