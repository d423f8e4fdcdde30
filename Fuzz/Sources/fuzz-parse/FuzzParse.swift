// libFuzzer target: Parse.number / size / address / range on arbitrary text.
//
// Checked beyond "does not crash", against independent statements of the grammar:
// - a number is also a size and an address of the same value, and round-trips through hex and decimal;
// - a number followed by K/M/G/T/P/E (or KiB…, KB…) is that number shifted, when it fits;
// - "A-B" is a range exactly when A and B are numbers with A <= B; "A+S" exactly when A is a number,
//   S a size > 0 and A + S - 1 does not pass 2^64 - 1.
import KexecModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzParse(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let number = Parse.number(text)
    let size = Parse.size(text)
    let address = Parse.address(text)
    let range = Parse.range(text)

    if let v = number {
        let isHex = text.drop { $0 == " " || $0 == "\t" }.lowercased().hasPrefix("0x")
        precondition(size?.raw == v, "number \(v) but size \(String(describing: size)) for \(text.debugDescription)")
        precondition(address?.raw == v, "number \(v) but address differs for \(text.debugDescription)")
        precondition(Parse.number(hex(v)) == v && Parse.number(String(v)) == v, "no round trip of \(v)")
        for (suffix, shift) in [("K", 10), ("M", 20), ("G", 30), ("T", 40), ("P", 50), ("E", 60)] as [(String, UInt64)]
        {
            let fits = v <= UInt64.max >> shift
            for spelled in [suffix, suffix.lowercased() + "iB", suffix + "B", " " + suffix] {
                // "0x5" + "E" is the hex number 0x5e, not 5 EiB.
                if isHex, spelled.allSatisfy(\.isHexDigit) { continue }
                let got = Parse.size(text + spelled)
                precondition(
                    got?.raw == (fits ? v << shift : nil),
                    "\(text.debugDescription)+\(spelled): \(String(describing: got))")
            }
        }
    } else {
        precondition(address == nil, "address without number for \(text.debugDescription)")
    }
    if let r = range { precondition(r.first <= r.last, "inverted range returned for \(text.debugDescription)") }

    // The two range forms, against their definitions.
    if let dash = text.firstIndex(of: "-") {
        let a = Parse.number(String(text[..<dash]))
        let b = Parse.number(String(text[text.index(after: dash)...]))
        let want: Bool = {
            guard let a, let b else { return false }
            return a <= b
        }()
        precondition((range != nil) == want, "range \(String(describing: range)) for \(text.debugDescription)")
        if let r = range, let a, let b { precondition(r.first.raw == a && r.last.raw == b, "wrong bounds") }
    } else if let plus = text.firstIndex(of: "+") {
        let a = Parse.number(String(text[..<plus]))
        let s = Parse.size(String(text[text.index(after: plus)...]))
        let want: (UInt64, UInt64)? = {
            guard let a, let s, s.raw > 0 else { return nil }
            let (last, o) = a.addingReportingOverflow(s.raw - 1)
            return o ? nil : (a, last)
        }()
        precondition(
            range?.first.raw == want?.0 && range?.last.raw == want?.1,
            "range \(String(describing: range)) for \(text.debugDescription)")
    } else {
        precondition(range == nil, "range without '-' or '+' for \(text.debugDescription)")
    }
    return 0
}
