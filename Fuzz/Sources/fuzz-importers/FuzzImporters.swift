// libFuzzer target: every boot-log importer (BootLog.parse with each ImportFormat, auto included) on
// arbitrary text, and the device tree importer (format dtb) on the raw bytes.
//
// Checked beyond "does not crash": an error's line is inside the log; an imported machine has one
// source per region and one line per crashkernel range; and the fixture MachineFixtureWriter writes
// for it decodes (FixtureDecoder) back to the same memory map and crashkernel ranges.
import KexecModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImporters(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)
    let lineCount = LogText.lines(text).count
    for format in ImportFormat.allCases {
        let m: ImportedMachine
        // A device tree's sources are node/reg ordinals, not lines of the text.
        let tree = format == .dtb
        do throws(ImportError) {
            m =
                tree
                ? try BootLog.parse(bytes: bytes, format: .dtb, file: "fuzz.dtb")
                : try BootLog.parse(text, format: format, file: "fuzz.log")
        } catch {
            precondition(!error.message.isEmpty, "empty import error")
            if let l = error.line { precondition(l >= 1 && l <= lineCount, "line \(l) of \(lineCount): \(error)") }
            continue
        }
        precondition(m.format != .auto, "imported as auto")
        precondition(m.sources.count == m.memory.regions.count, "sources not parallel to regions")
        precondition(m.crashkernelLines.count == m.crashkernelRanges.count, "crashkernel lines not parallel")
        for s in m.sources {
            precondition(!s.lines.isEmpty, "a region without a line")
            for l in s.lines where !tree {
                precondition(l.number >= 1 && l.number <= lineCount, "source line \(l.number)")
            }
        }
        let yaml = MachineFixtureWriter.yaml(m, name: "fuzz", arch: m.suggestedArch ?? .x86_64, logFile: "fuzz.log")
        let back: Scenario
        do throws(InputError) {
            back = try FixtureDecoder.decode(yaml: yaml, file: "written.yaml", baseDirectory: "")
        } catch {
            preconditionFailure("the written fixture does not decode: \(error)\n\(yaml)")
        }
        precondition(back.machine.memory == m.memory, "the written fixture has another memory map\n\(yaml)")
        precondition(
            back.machine.crashkernelRanges == m.crashkernelRanges, "the written fixture has other crashkernel ranges")
    }
    return 0
}
