import Foundation
import Testing

@testable import KexecModel

private let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Malformed").path

@Suite struct MalformedCorpusTests {
    @Test func dump() throws {
        var out = ""
        for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where name.hasSuffix(".yaml") {
            let t0 = Date()
            do throws(InputError) {
                let s = try FixtureDecoder.load(path: dir + "/" + name)
                out += "OK \(name) regions=\(s.machine.memory.regions.count) ck=\(s.machine.crashkernelRanges)\n"
            } catch {
                out += "ERR \(name)|\(error.file.replacingOccurrences(of: dir + "/", with: ""))|\(error.line.map(String.init) ?? "nil")|\(error.field)|\(error.message)  [\(Int(Date().timeIntervalSince(t0) * 1000))ms]\n"
            }
        }
        try out.write(toFile: "/tmp/fz/dump.txt", atomically: true, encoding: .utf8)
    }
}
