/// The lines the kernel prints when it reserves the crash kernel:
///
/// - x86 before the generic code (arch/x86/kernel/setup.c):
///   `Reserving %ldMB of memory at %ldMB for crashkernel (System RAM: %ldMB)` and
///   `Reserving %ldMB of low memory at %ldMB for crashkernel (low RAM limit: %ldMB)`
/// - arm64, and every architecture on the generic code (kernel/crash_reserve.c):
///   `crashkernel reserved: 0x%016llx - 0x%016llx (%lld MB)` and
///   `crashkernel low memory reserved: 0x%08llx - 0x%08llx (%lld MB)`; the second address is
///   base + size, one past the end.
enum CrashkernelLines {
    /// The reserved range of a crashkernel line; nil when `body` is not one; an error when it is one
    /// that does not parse.
    static func parse(_ l: LogLine) throws(ImportError) -> AddressRange? {
        let body = l.body
        if body.hasPrefix("Reserving "), body.contains(" for crashkernel") {
            return try reserving(l)
        }
        for p in ["crashkernel reserved: ", "crashkernel low memory reserved: "] where body.hasPrefix(p) {
            return try reserved(l, prefix: p)
        }
        return nil
    }

    private static func reserving(_ l: LogLine) throws(ImportError) -> AddressRange {
        var c = LineCursor(l.body)
        _ = c.skip("Reserving ")
        func number(_ what: String) throws(ImportError) -> UInt64 {
            switch c.decimal() {
            case .success(let v): return v
            case .failure(.missing): throw ImportError(l, "expected \(what) in MB")
            case .failure(.overflow(let d)): throw ImportError(l, "\(d) does not fit in 64 bits")
            }
        }
        let sizeMB = try number("the size")
        guard c.skip("MB of ") else { throw ImportError(l, "expected \"MB of memory at\" after the size") }
        guard c.skip("memory at ") || c.skip("low memory at ") else {
            throw ImportError(l, "expected \"memory at\" or \"low memory at\"")
        }
        let baseMB = try number("the base")
        guard c.skip("MB for crashkernel") else {
            throw ImportError(l, "expected \"MB for crashkernel\" after the base")
        }
        guard sizeMB > 0 else { throw ImportError(l, "a crashkernel of 0MB") }
        guard sizeMB <= UInt64.max >> 20, baseMB <= UInt64.max >> 20,
            let r = AddressRange(start: PhysAddr(baseMB << 20), size: ByteCount(sizeMB << 20))
        else {
            throw ImportError(l, "the range \(baseMB)MB + \(sizeMB)MB passes the end of the address space")
        }
        return r
    }

    private static func reserved(_ l: LogLine, prefix: String) throws(ImportError) -> AddressRange {
        var c = LineCursor(l.body)
        _ = c.skip(prefix)
        func address(_ what: String) throws(ImportError) -> UInt64 {
            switch c.hex() {
            case .success(let v): return v
            case .failure(.missing): throw ImportError(l, "expected the \(what) address (0x…)")
            case .failure(.overflow(let d)): throw ImportError(l, "address \(d) does not fit in 64 bits")
            }
        }
        let start = try address("start")
        guard c.skip(" - ") else { throw ImportError(l, "expected \" - \" between the two addresses") }
        let end = try address("end")
        guard end > start, let r = AddressRange(start: PhysAddr(start), end: PhysAddr(end)) else {
            throw ImportError(l, "the end \(hex(end)) is not above the start \(hex(start))")
        }
        c.skipBlanks()
        guard c.skip("(") else { throw ImportError(l, "expected \"(N MB)\" after the range") }
        let mb: UInt64
        switch c.decimal() {
        case .success(let v): mb = v
        case .failure: throw ImportError(l, "expected the size in MB inside the parentheses")
        }
        guard c.skip(" MB)") else { throw ImportError(l, "expected \" MB)\" after the size") }
        guard mb == (end - start) >> 20 else {
            throw ImportError(
                l,
                "the size \(mb) MB does not match the range (\((end - start) >> 20) MB; the end is one past the last byte)"
            )
        }
        return r
    }
}

/// Collects crashkernel lines for the dmesg importers.
struct CrashkernelCollector {
    var ranges: [AddressRange] = []
    var lines: [ImportedLine] = []

    /// true when `l` was a crashkernel line.
    mutating func take(_ l: LogLine) throws(ImportError) -> Bool {
        guard let r = try CrashkernelLines.parse(l) else { return false }
        if !ranges.contains(r) {
            ranges.append(r)
            lines.append(ImportedLine(number: l.number, text: String(l.raw)))
        }
        return true
    }

    /// Lowest first, with the lines in the same order.
    var sorted: (ranges: [AddressRange], lines: [ImportedLine]) {
        let pairs = zip(ranges, lines).sorted { $0.0 < $1.0 }
        return (pairs.map(\.0), pairs.map(\.1))
    }
}
