// libFuzzer target: FixtureDecoder.decode on arbitrary bytes (decoded as UTF-8 with repairs).
//
// Paths inside the fuzzed YAML resolve against Fixtures/scenarios, so `machine: ../machines/…` and
// `import:` of ../logs/… in the seeds reach the machine-file and importer paths.
//
// Checked beyond "does not crash": every error names a file, a field and a message, its line is
// 1-based and inside the text; a decoded scenario's memory map is sorted and free of overlaps.
import Foundation
import KexecModel

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/scenarios").path

private let fileName = "fuzz.yaml"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFixture(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    // Lines as YAML counts them (LF, CR, CRLF, NEL, LS, PS); a final line break starts no other line.
    let lineCount = max(1, text.reduce(0) { $1.isNewline ? $0 + 1 : $0 } + (text.last?.isNewline == true ? 0 : 1))
    do throws(InputError) {
        let s = try FixtureDecoder.decode(yaml: text, file: fileName, baseDirectory: fixtures)
        let regions = s.machine.memory.regions
        precondition(!regions.isEmpty, "decoded an empty memory map")
        for i in regions.indices.dropFirst() {
            precondition(regions[i - 1].range < regions[i].range, "regions out of order")
            precondition(!regions[i - 1].range.overlaps(regions[i].range), "overlapping regions decoded")
        }
    } catch {
        precondition(!error.file.isEmpty && !error.field.isEmpty && !error.message.isEmpty, "vague error: \(error)")
        if let l = error.line {
            precondition(l >= 1, "line \(l) in \(error)")
            // Errors about this text must point inside it (errors about a referenced file name that file).
            if error.file == fileName {
                precondition(l <= lineCount, "line \(l) past the end (\(lineCount)): \(error)")
            }
        }
    }
    return 0
}
