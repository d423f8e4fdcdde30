/// Numbers, sizes, addresses and ranges as fixtures and boot logs write them.
/// Pure functions: nil on anything malformed or overflowing, never a trap.
public enum Parse {
    /// "4096", "0x1f", "0X1F", "1_000", "0xffff_ffff". Underscores only between digits.
    public static func number(_ s: String) -> UInt64? { try? checkedNumber(Substring(s)).get() }

    /// "12MiB", "256M", "4G", "4GiB", "1T", "16K", "512KiB", "4096", "0x1000", "12 MiB".
    /// K/M/G/T/P/E, with an optional "iB" or "B", are powers of 1024 (any case); "B" alone is bytes.
    public static func size(_ s: String) -> ByteCount? { (try? checkedSize(Substring(s)).get()).map(ByteCount.init) }

    public static func address(_ s: String) -> PhysAddr? { number(s).map(PhysAddr.init) }

    /// "0x100000-0x7fffffff" (inclusive, as dmesg prints) or "0x100000+2GiB" (start + size).
    /// nil on inverted ranges, size 0, and ranges that wrap past 2^64.
    public static func range(_ s: String) -> AddressRange? { try? checkedRange(Substring(s)).get() }
}

// MARK: - Detailed forms (the decoder uses these to say what is wrong)

extension Parse {
    enum NumberProblem: Error, Equatable {
        case malformed
        /// Well formed but more than 2^64 - 1.
        case overflow
    }

    enum RangeProblem: Error, Equatable {
        case malformed
        /// One of the numbers is more than 2^64 - 1.
        case overflow
        case inverted(first: UInt64, last: UInt64)
        case wraps
        case zeroSize
    }

    static func checkedNumber(_ text: Substring) -> Result<UInt64, NumberProblem> {
        let bytes = Array(trimmed(text).utf8)
        var i = 0
        var radix: UInt64 = 10
        if bytes.count >= 2, bytes[0] == UInt8(ascii: "0"),
            bytes[1] == UInt8(ascii: "x") || bytes[1] == UInt8(ascii: "X")
        {
            radix = 16
            i = 2
        }
        guard i < bytes.count else { return .failure(.malformed) }
        var value: UInt64 = 0
        var overflow = false
        var lastWasDigit = false
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "_") {
                guard lastWasDigit else { return .failure(.malformed) }
                lastWasDigit = false
                continue
            }
            guard let d = digit(c, radix: radix) else { return .failure(.malformed) }
            lastWasDigit = true
            if overflow { continue }  // keep scanning: a later bad character makes it malformed
            let (m, o1) = value.multipliedReportingOverflow(by: radix)
            let (a, o2) = m.addingReportingOverflow(d)
            if o1 || o2 { overflow = true } else { value = a }
        }
        guard lastWasDigit else { return .failure(.malformed) }
        return overflow ? .failure(.overflow) : .success(value)
    }

    static func checkedSize(_ text: Substring) -> Result<UInt64, NumberProblem> {
        let s = trimmed(text)
        let whole = checkedNumber(s)
        if case .success = whole { return whole }
        var sawOverflow = whole == .failure(.overflow)
        let lower = s.lowercased()
        for (suffix, shift) in sizeSuffixes where lower.count > suffix.count && lower.hasSuffix(suffix) {
            let head = s.dropLast(suffix.count)
            // A unit needs a number before it, and only spaces may separate the two.
            guard let lastHead = head.last, lastHead != "_" else { continue }
            switch checkedNumber(head) {
            case .success(let v):
                guard v <= UInt64.max >> shift else { return .failure(.overflow) }
                return .success(v << shift)
            case .failure(.overflow):
                sawOverflow = true
            case .failure(.malformed):
                continue
            }
        }
        return .failure(sawOverflow ? .overflow : .malformed)
    }

    static func checkedRange(_ text: Substring) -> Result<AddressRange, RangeProblem> {
        let s = trimmed(text)
        if let dash = s.firstIndex(of: "-") {
            let a = checkedNumber(s[..<dash])
            let b = checkedNumber(s[s.index(after: dash)...])
            guard case .success(let first) = a, case .success(let last) = b else {
                return .failure(a == .failure(.malformed) || b == .failure(.malformed) ? .malformed : .overflow)
            }
            guard let r = AddressRange(first: PhysAddr(first), last: PhysAddr(last)) else {
                return .failure(.inverted(first: first, last: last))
            }
            return .success(r)
        }
        if let plus = s.firstIndex(of: "+") {
            let a = checkedNumber(s[..<plus])
            let b = checkedSize(s[s.index(after: plus)...])
            guard case .success(let start) = a, case .success(let size) = b else {
                return .failure(a == .failure(.malformed) || b == .failure(.malformed) ? .malformed : .overflow)
            }
            return startSize(start, size)
        }
        return .failure(.malformed)
    }

    /// [start, start + size) as an inclusive range, with the same problems as `checkedRange`.
    static func startSize(_ start: UInt64, _ size: UInt64) -> Result<AddressRange, RangeProblem> {
        guard size > 0 else { return .failure(.zeroSize) }
        guard let r = AddressRange(start: PhysAddr(start), size: ByteCount(size)) else { return .failure(.wraps) }
        return .success(r)
    }

    /// Longest first, so "kib" wins over "b".
    private static let sizeSuffixes: [(String, UInt64)] = {
        let units: [(Character, UInt64)] = [("k", 10), ("m", 20), ("g", 30), ("t", 40), ("p", 50), ("e", 60)]
        var out: [(String, UInt64)] = []
        for (u, shift) in units { out.append(("\(u)ib", shift)) }
        for (u, shift) in units { out.append(("\(u)b", shift)) }
        for (u, shift) in units { out.append(("\(u)", shift)) }
        out.append(("b", 0))
        return out
    }()

    /// The value of an ASCII digit in `radix` (up to 16); nil for anything else. Shared with the
    /// crashkernel= parser.
    static func digit(_ c: UInt8, radix: UInt64) -> UInt64? {
        let v: UInt64
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt64(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): v = UInt64(c - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): v = UInt64(c - UInt8(ascii: "A")) + 10
        default: return nil
        }
        return v < radix ? v : nil
    }

    private static func trimmed(_ s: Substring) -> Substring {
        var t = s
        while let c = t.first, c == " " || c == "\t" { t = t.dropFirst() }
        while let c = t.last, c == " " || c == "\t" { t = t.dropLast() }
        return t
    }
}
