/// Decoding a boot log's bytes into text, once, for every importer.
///
/// A log arrives as the reporter saved it: UTF-8 (with or without a byte-order mark), or UTF-16
/// from a PowerShell redirection (`dmesg > log.txt` in a Windows terminal writes UTF-16LE with the
/// byte-order mark FF FE; FE FF marks UTF-16BE). All of them decode to the same text, so the same
/// log imports to the same machine whichever it is. UTF-16 without a byte-order mark is not
/// guessed. Bytes that are not valid in the encoding chosen are a `TextDecodingError` that says
/// where (byte offset and line), never a crash and never silently repaired text.
extension LogText {
    /// The encodings a log is read in.
    public enum Encoding: String, Sendable, Equatable {
        case utf8 = "UTF-8"
        case utf8WithBOM = "UTF-8 with a byte-order mark"
        case utf16LE = "UTF-16LE"
        case utf16BE = "UTF-16BE"
    }

    /// Bytes that are not text in the encoding their start announces.
    public struct TextDecodingError: Error, Equatable, Sendable {
        /// 1-based line of the first invalid byte, counting line breaks as `lines` does.
        public var line: Int
        public var message: String
    }

    /// The text of a log file's bytes: the encoding is UTF-16LE after FF FE, UTF-16BE after FE FF,
    /// else UTF-8 (after EF BB BF or not); the byte-order mark is not part of the text.
    public static func decode(_ bytes: [UInt8]) -> Result<(text: String, encoding: Encoding), TextDecodingError> {
        if bytes.starts(with: [0xFF, 0xFE]) { return decodeUTF16(bytes, bigEndian: false) }
        if bytes.starts(with: [0xFE, 0xFF]) { return decodeUTF16(bytes, bigEndian: true) }
        let bom = bytes.starts(with: [0xEF, 0xBB, 0xBF])
        let body = bom ? bytes[3...] : bytes[...]
        if let text = String(validating: body, as: UTF8.self) {
            return .success((text, bom ? .utf8WithBOM : .utf8))
        }
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = body.makeIterator()
        var offset = 0
        while case .valid(let scalar) = parser.parseScalar(from: &iterator) { offset += scalar.count }
        let at = body.startIndex + offset
        return .failure(
            TextDecodingError(
                line: lineNumber(ofUnitAt: offset, in: body),
                message:
                    "not text: byte \(hex2(body[at])) at offset \(at) is not UTF-8 (UTF-16 is read after its "
                    + "byte-order mark FF FE or FE FF; nor is this a device tree blob)"))
    }

    private static func decodeUTF16(_ bytes: [UInt8], bigEndian: Bool)
        -> Result<(text: String, encoding: Encoding), TextDecodingError>
    {
        let encoding: Encoding = bigEndian ? .utf16BE : .utf16LE
        let mark = bigEndian ? "FE FF" : "FF FE"
        var units: [UInt16] = []
        units.reserveCapacity(bytes.count / 2)
        var i = 2
        while i + 1 < bytes.count {
            let (a, b) = (UInt16(bytes[i]), UInt16(bytes[i + 1]))
            units.append(bigEndian ? a << 8 | b : b << 8 | a)
            i += 2
        }
        guard bytes.count % 2 == 0 else {
            return .failure(
                TextDecodingError(
                    line: lineNumber(ofUnitAt: units.count, in: units),
                    message:
                        "not text: starts with the \(encoding.rawValue) byte-order mark \(mark) but has an odd "
                        + "number of bytes (\(bytes.count)): the last one is half a character"))
        }
        if let text = String(validating: units, as: UTF16.self) { return .success((text, encoding)) }
        var parser = Unicode.UTF16.ForwardParser()
        var iterator = units.makeIterator()
        var offset = 0
        while case .valid(let scalar) = parser.parseScalar(from: &iterator) { offset += scalar.count }
        let unit = String(units[offset], radix: 16, uppercase: false)
        return .failure(
            TextDecodingError(
                line: lineNumber(ofUnitAt: offset, in: units),
                message:
                    "not text: starts with the \(encoding.rawValue) byte-order mark \(mark) but the unit 0x\(unit) "
                    + "at byte offset \(2 + 2 * offset) is an unpaired surrogate"))
    }

    /// The 1-based line of the code unit at `offset`, with LF, CRLF and lone CR as line breaks.
    private static func lineNumber<C: Collection>(ofUnitAt offset: Int, in units: C) -> Int
    where C.Element: BinaryInteger {
        var line = 1
        var previousCR = false
        for u in units.prefix(offset) {
            if u == 0x0A {
                if !previousCR { line += 1 }
                previousCR = false
            } else if u == 0x0D {
                line += 1
                previousCR = true
            } else {
                previousCR = false
            }
        }
        return line
    }

    private static func hex2(_ b: UInt8) -> String {
        "0x" + (b < 0x10 ? "0" : "") + String(b, radix: 16)
    }
}
