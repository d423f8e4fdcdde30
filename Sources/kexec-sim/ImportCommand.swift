import ArgumentParser
import Foundation
import KexecModel
import KexecSim

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract:
            "Read a boot log (dmesg e820, /proc/iomem, EFI memory map, arm64 memblock) and print a machine fixture.")
    @Argument(help: "The boot log: dmesg / journalctl -k output, /proc/iomem, an efi=debug memory map.") var log: String
    @Option(
        help:
            "auto, e820, iomem, efi, memblock or dtb (auto: a device tree blob by its magic, else the first recognisable line decides)."
    ) var format: String = "auto"
    @Option(help: "x86_64 or arm64 (default: what the log shows; x86_64 when it shows nothing).") var arch: String?
    @Option(help: "The fixture's name (default: the log's file name).") var name: String?
    @Option(
        help:
            "Which boot of a log that holds several (a reboot, a kdump kernel) to import, from 1 (default: the first; the fixture's notes list the others)."
    ) var boot: Int = 1
    @Option(
        name: [.short, .long],
        help: "Write the fixture to this file (through a temporary file and a rename) instead of standard output.")
    var output: String?

    func run() throws {
        guard let fmt = ImportFormat(rawValue: format) else {
            fail(
                "--format: unknown format \"\(format)\" (one of: \(ImportFormat.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        var chosenArch: Arch?
        if let arch {
            guard let a = Arch(rawValue: arch) else {
                fail(
                    "--arch: unknown architecture \"\(arch)\" (one of: \(Arch.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            chosenArch = a
        }
        guard boot >= 1 else { fail("--boot: boots are numbered from 1, found \(boot)") }
        let imported: ImportedMachine
        do {
            imported = try BootLog.load(path: log, format: fmt, boot: boot)
        } catch {
            fail(error.description)
        }
        var stem = log.split(separator: "/").last.map(String.init) ?? log
        if let dot = stem.lastIndex(of: "."), dot > stem.startIndex { stem = String(stem[..<dot]) }
        let yaml = MachineFixtureWriter.yaml(
            imported, name: name ?? stem, arch: chosenArch ?? imported.suggestedArch ?? .x86_64, logFile: log)
        if let output {
            do {
                try AtomicWrite.write(yaml, to: output)
            } catch {
                fail(error.description)
            }
        } else {
            print(yaml, terminator: "")
        }
    }
}
