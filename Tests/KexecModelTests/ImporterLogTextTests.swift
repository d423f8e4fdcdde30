import Foundation
import Testing

@testable import KexecModel

/// Every shipped log, with the importer its scenario uses.
private let shippedLogs: [(file: String, format: ImportFormat)] = [
    ("hp-server-memmap-pmem-iomem.txt", .iomem),
    ("hpe-uv-4tib-dmesg.txt", .e820),
    ("nuvoton-npcm8xx-bmc-memblock.txt", .memblock),
    ("pmem-docs-memmap-type12-dmesg.txt", .e820),
    ("qemu-q35-kvm-128g-dmesg.txt", .e820),
    ("rpi4-4gb-memblock.txt", .memblock),
    ("supermicro-epyc-1tib-crashkernel-dmesg.txt", .e820),
    ("synthetic-arm64-multiboot-memblock.txt", .memblock),
    ("synthetic-arm64-virt-memblock.txt", .memblock),
    ("synthetic-ovmf-q35-efi-memmap.txt", .efi),
    ("synthetic-qemu-q35-4g-dmesg.txt", .e820),
    ("synthetic-server-16g-iomem.txt", .iomem),
    ("thinkpad-t14-gen1-linux-7.1-dmesg.txt", .e820),
]

private func importBytes(_ bytes: [UInt8], _ format: ImportFormat, boot: Int = 1) throws -> ImportedMachine {
    try Result { () throws(ImportError) in
        try BootLog.parse(bytes: bytes, format: format, file: "log.txt", boot: boot)
    }.get()
}

private func shippedBytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: importerPackageRoot + "/Fixtures/logs/" + name)))
}

/// The LF bytes with every LF replaced by `lineBreak`.
private func withLineBreaks(_ bytes: [UInt8], _ lineBreak: [UInt8]) -> [UInt8] {
    bytes.flatMap { $0 == 0x0A ? lineBreak : [$0] }
}

private func utf16(_ text: String, bigEndian: Bool) -> [UInt8] {
    var out: [UInt8] = bigEndian ? [0xFE, 0xFF] : [0xFF, 0xFE]
    for u in text.utf16 {
        let (hi, lo) = (UInt8(u >> 8), UInt8(u & 0xFF))
        out += bigEndian ? [hi, lo] : [lo, hi]
    }
    return out
}

private func tempFile(_ bytes: [UInt8]) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-log-\(UUID().uuidString).txt")
        .path
    #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
    return path
}

private func loadError(_ bytes: [UInt8], format: ImportFormat = .auto, boot: Int = 1) throws -> InputError? {
    let path = try tempFile(bytes)
    defer { try? FileManager.default.removeItem(atPath: path) }
    do throws(InputError) {
        _ = try BootLog.load(path: path, format: format, boot: boot)
        return nil
    } catch {
        #expect(error.file == path)
        return error
    }
}

@Suite("Importer: line breaks and encodings")
struct ImporterLogTextTests {
    @Test func shippedLogsHaveLFLineBreaksOnly() throws {
        for (name, _) in shippedLogs {
            let bytes = try shippedBytes(name)
            #expect(!bytes.contains(0x0D), "\(name)")
            #expect(bytes.last == 0x0A, "\(name)")
        }
    }

    @Test(arguments: shippedLogs.map(\.file))
    func crlfAndLoneCRImportAsLF(_ name: String) throws {
        let format = try #require(shippedLogs.first { $0.file == name }?.format)
        let lf = try shippedBytes(name)
        let expected = try importBytes(lf, format)
        #expect(!expected.memory.regions.isEmpty)
        for lineBreak: [UInt8] in [[0x0D, 0x0A], [0x0D]] {
            let m = try importBytes(withLineBreaks(lf, lineBreak), format)
            #expect(m == expected, "\(name) with \(lineBreak)")
            #expect(m.memory.regions.map(\.source) == expected.memory.regions.map(\.source), "\(name)")
        }
    }

    @Test(arguments: shippedLogs.map(\.file))
    func utf16AndUTF8BOMImportAsUTF8(_ name: String) throws {
        let format = try #require(shippedLogs.first { $0.file == name }?.format)
        let lf = try shippedBytes(name)
        let text = try #require(String(validating: lf, as: UTF8.self))
        let expected = try importBytes(lf, format)
        let variants: [(String, [UInt8])] = [
            ("UTF-16LE", utf16(text, bigEndian: false)),
            ("UTF-16BE", utf16(text, bigEndian: true)),
            ("UTF-8 BOM", [0xEF, 0xBB, 0xBF] + lf),
            ("UTF-16LE CRLF", utf16(text.replacingOccurrences(of: "\n", with: "\r\n"), bigEndian: false)),
        ]
        for (what, bytes) in variants {
            let m = try importBytes(bytes, format)
            #expect(m == expected, "\(name) as \(what)")
            #expect(m.memory.regions.map(\.source) == expected.memory.regions.map(\.source), "\(name) as \(what)")
        }
    }

    /// The report that started this: a dmesg saved on Windows failed with `unknown e820 type "usable\r…"`.
    @Test func crlfDmesgThroughTheFile() throws {
        let log =
            "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\r\n"
            + "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable\r\n"
        let path = try tempFile(Array(log.utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let m = try Result { () throws(InputError) in try BootLog.load(path: path) }.get()
        #expect(m.memory.regions == [reg(0, 0x9_fbff, .usable), reg(0x10_0000, 0x7fff_ffff, .usable)])
        #expect(m.sourceLines.map(\.number) == [1, 2])
        #expect(
            m.sources[1].lines[0].text == "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable"
        )
    }

    @Test func lineSplitting() {
        func split(_ s: String) -> [String] { LogText.lines(s).map { String($0.raw) } }
        #expect(split("a\nb\n") == ["a", "b"])
        #expect(split("a\r\nb\r\n") == ["a", "b"])
        #expect(split("a\rb\r") == ["a", "b"])
        #expect(split("a\r\n\r\nb") == ["a", "", "b"])
        #expect(split("a\r\rb") == ["a", "", "b"])
        #expect(split("a\n\rb") == ["a", "", "b"])
        #expect(split("") == [])
        #expect(split("\n") == [""])
        #expect(split("é\r\nü") == ["é", "ü"])
        #expect(LogText.lines("x\r\ny\rz").map(\.number) == [1, 2, 3])
    }

    @Test func invalidUTF8IsAnErrorNamingTheFileAndLine() throws {
        let bytes =
            Array("BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\r\nok\n".utf8) + [0x41, 0xC3, 0x28]
        let e = try #require(try loadError(bytes))
        #expect(e.line == 3)
        #expect(e.field == "boot log")
        #expect(
            e.message
                == "not text: byte 0xc3 at offset 67 is not UTF-8 (UTF-16 is read after its byte-order mark FF FE "
                + "or FE FF; nor is this a device tree blob)")
        // After a UTF-8 byte-order mark the offset still counts from the file's start.
        let bom = try #require(try loadError([0xEF, 0xBB, 0xBF, 0x41, 0xFF], format: .e820))
        #expect(bom.line == 1)
        #expect(bom.field == "e820 log")
        #expect(bom.message.hasPrefix("not text: byte 0xff at offset 4 is not UTF-8"))
    }

    @Test func invalidUTF16IsAnError() throws {
        let odd = try #require(try loadError([0xFF, 0xFE, 0x41, 0x00, 0x0A, 0x00, 0x42]))
        #expect(odd.line == 2)
        #expect(
            odd.message
                == "not text: starts with the UTF-16LE byte-order mark FF FE but has an odd number of bytes (7): "
                + "the last one is half a character")
        // A, CR, LF, then a lone high surrogate.
        let surrogate = try #require(
            try loadError([0xFE, 0xFF, 0x00, 0x41, 0x00, 0x0D, 0x00, 0x0A, 0xD8, 0x00, 0x00, 0x41]))
        #expect(surrogate.line == 2)
        #expect(
            surrogate.message
                == "not text: starts with the UTF-16BE byte-order mark FE FF but the unit 0xd800 at byte offset 8 "
                + "is an unpaired surrogate")
        // Random bytes: an error every time, never a crash.
        var g = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let junk = (0..<Int.random(in: 1...64, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
            for bytes in [junk, [0xFF, 0xFE] + junk, [0xFE, 0xFF] + junk] {
                _ = try? importBytes(bytes, .auto)
            }
        }
    }

    @Test func decodeNamesTheEncoding() throws {
        let cases: [([UInt8], String, LogText.Encoding)] = [
            (Array("a".utf8), "a", .utf8),
            ([0xEF, 0xBB, 0xBF, 0x61], "a", .utf8WithBOM),
            ([0xFF, 0xFE, 0x61, 0x00], "a", .utf16LE),
            ([0xFE, 0xFF, 0x00, 0x61], "a", .utf16BE),
            ([0xFF, 0xFE], "", .utf16LE),
            ([0xFF, 0xFE, 0x3D, 0xD8, 0x00, 0xDE], "\u{1F600}", .utf16LE),
        ]
        for (bytes, text, encoding) in cases {
            let d = try LogText.decode(bytes).get()
            #expect(d.text == text)
            #expect(d.encoding == encoding)
        }
    }
}
