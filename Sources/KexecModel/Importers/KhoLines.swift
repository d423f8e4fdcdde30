/// What a boot log says about Kexec HandOver scratch (pr_fmt "KHO: ", kernel/kexec_handover.c,
/// the same wording in the stored 6.16 copy 00c010e1 and the 2026 copy 019fc368):
///
/// - `KHO: scratch scale is N%` (kho_parse_scratch_size, pr_notice): `kho_scratch=N%`.
/// - `KHO: scratch areas: lowmem: NMiB global: NMiB pernode: NMiB` (pr_notice): explicit sizes.
/// - `KHO: Marked 0x…+0x… as scratch` (kho_populate, pr_debug: printed with dynamic debug on a
///   kernel booted through KHO): one area handed over, in kho_scratch array order. The format is
///   "Marked 0x%pa+0x%pa as scratch" and %pa prints its own 0x, so the line reads "0x0x…"; both
///   forms are read.
/// - `KHO: found kexec handover data` (6.19+; 6.16 adds ". Will skip init for some devices"):
///   the kernel was booted through KHO.
public struct ImportedKho: Sendable, Equatable {
    /// Areas a KHO-booted kernel marked, in order.
    public var scratch: [AddressRange] = []
    /// `kho_scratch=` as the log reports it.
    public var parameter: KhoScratchParameter?
    /// Whether the log says the kernel was booted through KHO.
    public var handedOver = false
    /// The lines read.
    public var lines: [ImportedLine] = []

    public init() {}
    public var isEmpty: Bool { scratch.isEmpty && parameter == nil && !handedOver }
}

enum KhoLines {
    static func scan(_ lines: [LogLine]) throws(ImportError) -> ImportedKho? {
        var k = ImportedKho()
        for l in lines {
            let body = l.body
            guard body.hasPrefix("KHO: ") else { continue }
            let msg = body.dropFirst("KHO: ".count)
            let line = ImportedLine(number: l.number, text: String(l.raw))
            if msg.hasPrefix("scratch scale is ") {
                let v = msg.dropFirst("scratch scale is ".count)
                guard v.hasSuffix("%"), let n = UInt32(v.dropLast()) else {
                    throw ImportError(l, "expected \"scratch scale is N%\"")
                }
                k.parameter = .scale(n)
                k.lines.append(line)
            } else if msg.hasPrefix("scratch areas: ") {
                k.parameter = try sizes(msg.dropFirst("scratch areas: ".count), l)
                k.lines.append(line)
            } else if msg.hasPrefix("Marked ") {
                k.scratch.append(try marked(msg.dropFirst("Marked ".count), l))
                k.lines.append(line)
            } else if msg.hasPrefix("found kexec handover data") {
                k.handedOver = true
                k.lines.append(line)
            }
        }
        return k.isEmpty ? nil : k
    }

    /// "lowmem: 16MiB global: 64MiB pernode: 32MiB" (each printed as size >> 20).
    static func sizes(_ s: Substring, _ l: LogLine) throws(ImportError) -> KhoScratchParameter {
        var values: [ByteCount] = []
        for label in ["lowmem:", "global:", "pernode:"] {
            guard let at = s.range(of: label) else { throw ImportError(l, "expected \(label) in the scratch sizes") }
            let rest = s[at.upperBound...].drop { $0 == " " }
            let digits = rest.prefix { $0.isNumber }
            guard let n = UInt64(digits), rest.dropFirst(digits.count).hasPrefix("MiB"), n <= UInt64.max >> 20 else {
                throw ImportError(l, "expected \(label) NMiB")
            }
            values.append(.mib(n))
        }
        return .sizes(lowmem: values[0], global: values[1], perNode: values[2])
    }

    /// "0x0x0000000100000000+0x0x0000000010000000 as scratch".
    static func marked(_ s: Substring, _ l: LogLine) throws(ImportError) -> AddressRange {
        func number(_ t: Substring) -> UInt64? {
            var t = t
            while t.hasPrefix("0x") { t = t.dropFirst(2) }
            guard !t.isEmpty, t.count <= 16 else { return nil }
            return UInt64(t, radix: 16)
        }
        guard let plus = s.firstIndex(of: "+"), let end = s.range(of: " as scratch"),
            let addr = number(s[..<plus]), let size = number(s[s.index(after: plus)..<end.lowerBound]), size > 0,
            let r = AddressRange(start: PhysAddr(addr), size: ByteCount(size))
        else { throw ImportError(l, "expected \"Marked 0x<addr>+0x<size> as scratch\"") }
        return r
    }
}

extension KhoLines {
    /// The `kho:` section a machine fixture gets from an imported log: the marked areas (a kernel
    /// booted through KHO reuses them), else the reported `kho_scratch=`; each line quoted.
    static func fixtureLines(_ k: ImportedKho) -> [String] {
        var out = ["# Kexec HandOver (KHO) lines:"]
        for l in k.lines { out.append("#   line \(l.number): \(MachineFixtureWriter.comment(l.message))") }
        if !k.scratch.isEmpty {
            out.append("kho:")
            out.append("  scratch:")
            for r in k.scratch { out.append("    - \(hex16(r.first.raw))-\(hex16(r.last.raw))") }
        } else if let p = k.parameter {
            out.append("kho:")
            out.append("  param: \"\(p)\"")
        } else {
            out.append("# booted through KHO; its scratch areas are printed with dynamic debug (\"KHO: Marked …\")")
        }
        return out
    }
}
