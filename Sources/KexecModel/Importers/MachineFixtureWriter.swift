/// Writes an imported machine as a bare machine fixture (the YAML FixtureDecoder.loadMachine reads),
/// with comments quoting the log line behind every region.
public enum MachineFixtureWriter {
    public static func yaml(_ m: ImportedMachine, name: String, arch: Arch, logFile: String) -> String {
        var out: [String] = []
        out.append("# Imported by kexec-sim import from \(comment(logFile)) (format: \(m.format.rawValue)).")
        for n in m.notes { out.append("# note: \(comment(n))") }
        out.append("name: \(quoted(name))")
        out.append("arch: \(arch.rawValue)")
        if let v = m.kernel {
            if let l = m.kernelLine { out.append("# line \(l.number): \(comment(l.message))") }
            if v < KernelVersion.oldestModelled {
                out.append(
                    "# Linux \(v) is older than any modelled version: \(KernelVersion.oldestModelled)'s rules are the nearest."
                )
            }
            out.append("kernel: \"\(max(v, KernelVersion.oldestModelled))\"")
        }
        out.append("memory:")
        for (i, r) in m.memory.regions.enumerated() {
            let src = i < m.sources.count ? m.sources[i] : RegionSource(lines: [])
            for l in src.lines {
                // A device tree has nodes, not lines: the comment names the node and reg entry.
                let at = m.format == .dtb ? "dtb" : "line \(l.number)"
                out.append("  # \(at): \(comment(l.message))")
            }
            let note = src.note.map { "  # \(comment($0))" } ?? ""
            out.append(
                "  - { range: \(hex16(r.range.first.raw))-\(hex16(r.range.last.raw)), type: \(r.type.rawValue) }\(note)"
            )
        }
        if !m.crashkernelRanges.isEmpty {
            out.append("crashkernel_ranges:")
            for (i, r) in m.crashkernelRanges.enumerated() {
                if i < m.crashkernelLines.count {
                    let l = m.crashkernelLines[i]
                    out.append("  # line \(l.number): \(comment(l.message))")
                }
                out.append("  - \(hex16(r.first.raw))-\(hex16(r.last.raw))")
            }
        }
        let early = m.earlyReservations
        if !early.ranges.isEmpty || !early.allocations.isEmpty {
            out.append("# What the first kernel reserved before crashkernel= (the reservation goes around it):")
            for l in m.earlyReservationLines { out.append("#   line \(l.number): \(comment(l.message))") }
        }
        if !early.ranges.isEmpty {
            out.append("memblock_reserved:")
            for r in early.ranges { out.append("  - \(hex16(r.first.raw))-\(hex16(r.last.raw))") }
        }
        if let len = early.allocations.first { out.append("log_buf_len: \(hex(len.raw))") }
        if !m.firstKernel.isEmpty {
            out.append("# The running kernel's image (Kernel code / rodata / data / bss):")
            for r in m.firstKernel { out.append("#   \(hex16(r.first.raw))-\(hex16(r.last.raw))") }
        }
        if let d = m.dmaZoneLimit { out.append("# DMA zone limit: \(hex16(d.raw))") }
        if let k = m.kho { out += KhoLines.fixtureLines(k) }
        return out.joined(separator: "\n") + "\n"
    }

    /// Text safe inside a YAML comment: one line, printable.
    static func comment(_ s: String) -> String {
        LogText.printable(Substring(s.replacingNewlines))
    }

    /// A YAML double-quoted scalar.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    out += "\\x" + (u.value < 0x10 ? "0" : "") + String(u.value, radix: 16)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate var replacingNewlines: String {
        String(map { $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }
}
