import Foundation

@testable import KexecModel

/// The package root, from this file's path (Tests/KexecModelTests/<file>).
let importerPackageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

func logText(_ name: String) throws -> String {
    try String(contentsOfFile: importerPackageRoot + "/Fixtures/logs/" + name, encoding: .utf8)
}

func rng(_ first: UInt64, _ last: UInt64) -> AddressRange {
    AddressRange(first: PhysAddr(first), last: PhysAddr(last))!
}

func reg(_ first: UInt64, _ last: UInt64, _ type: RegionType) -> Region {
    Region(range: rng(first, last), type: type)
}

func importLog(_ text: String, _ format: ImportFormat = .auto) throws -> ImportedMachine {
    try Result { () throws(ImportError) in try BootLog.parse(text, format: format, file: "log.txt") }.get()
}

func importError(_ text: String, _ format: ImportFormat = .auto) -> ImportError? {
    do throws(ImportError) {
        _ = try BootLog.parse(text, format: format, file: "log.txt")
        return nil
    } catch {
        return error
    }
}
