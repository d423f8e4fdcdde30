/// /proc/iomem (kernel/resource.c r_show: `%*s%0*llx-%0*llx : %s`, two spaces of indentation per
/// nesting level, at least 8 hex digits without 0x, both ends inclusive).
///
/// A resource named like an e820 / memblock range (e820_type_to_string, arm64's "reserved") is a
/// region unless it sits inside another such resource; those nested inside memory are annotations:
/// `Crash kernel` gives the crashkernel ranges, `Kernel code|rodata|data|bss` the first kernel's image,
/// the rest (arm64's memblock "reserved" children, "System RAM (kmem)" under a dax device…) are not
/// regions. Device and bus windows (PCI Bus, IOAPIC, HPET, "RAM buffer" padding, …) are not memory
/// and are skipped; memory nested inside them (e820 "Reserved" under a PCI bus window) still counts.
enum IomemImporter {
    static let memoryNames: [String: RegionType] = [
        "system ram": .usable,
        "reserved": .reserved,
        "acpi tables": .acpi,
        "acpi non-volatile storage": .nvs,
        "persistent memory": .persistent,
        "persistent memory (legacy)": .persistent,
        "soft reserved": .softReserved,
        "unusable memory": .unusable,
        "unknown e820 type": .reserved,
    ]
    /// Names whose type says it all (no note needed).
    static let plainNames: Set<String> = [
        "System RAM", "Reserved", "ACPI Tables", "ACPI Non-volatile Storage", "Persistent Memory", "Soft Reserved",
        "Unusable memory",
    ]
    static let kernelNames: Set<String> = ["Kernel code", "Kernel rodata", "Kernel data", "Kernel bss"]

    /// `hex-hex : name` with any indentation (for telling the format apart).
    static func isIomemLine(_ raw: Substring) -> Bool {
        let t = raw.drop { $0 == " " }
        guard let dash = t.firstIndex(of: "-"), dash > t.startIndex,
            t[..<dash].allSatisfy({ $0.isHexDigit && $0.isASCII })
        else { return false }
        return t.contains(" : ")
    }

    /// A line the iomem importer reads (and must parse): `something-something : name`, indented or not.
    static func isResourceLine(_ raw: Substring) -> Bool {
        let t = raw.drop { $0 == " " }
        guard let sep = t.range(of: " : ") else { return false }
        let head = t[..<sep.lowerBound]
        return head.contains("-") && !head.contains(" ") && t.first != "["
    }

    private struct Open {
        var depth: Int
        var range: AddressRange
        var isMemory: Bool
        var line: Int
    }

    static func parse(_ lines: [LogLine], file: String) throws(ImportError) -> ImportedMachine {
        var list = RegionList()
        var stack: [Open] = []
        var crash: [AddressRange] = []
        var crashLines: [ImportedLine] = []
        var kernel: [AddressRange] = []
        var skipped: [String] = []
        var annotations = 0
        var seen = 0
        var allZero = true

        for l in lines where isResourceLine(l.raw) {
            let spaces = l.raw.prefix { $0 == " " }.count
            guard spaces % 2 == 0 else {
                throw ImportError(l, "indentation of \(spaces) spaces (/proc/iomem indents by 2 per level)")
            }
            let depth = spaces / 2
            var c = LineCursor(l.raw.dropFirst(spaces))
            let range: AddressRange
            switch c.inclusiveRange("the resource range") {
            case .success(let r): range = r
            case .failure(let m): throw ImportError(l, m.message)
            }
            guard c.skip(" : ") else { throw ImportError(l, "expected \" : name\" after the range") }
            let name = String(c.s)
            seen += 1
            if range.first.raw != 0 || range.last.raw != 0 { allZero = false }

            while let top = stack.last, top.depth >= depth { stack.removeLast() }
            guard depth <= stack.count, depth == (stack.last.map { $0.depth + 1 } ?? 0) else {
                guard let parent = stack.last else {
                    throw ImportError(
                        l, "indented \(depth) level\(depth == 1 ? "" : "s") but no resource above encloses it")
                }
                throw ImportError(
                    l,
                    "indented \(depth) levels under a resource \(parent.depth) level\(parent.depth == 1 ? "" : "s") "
                        + "deep from line \(parent.line) (children are one level deeper)")
            }
            if let parent = stack.last, !parent.range.contains(range), !allZero {
                throw ImportError(l, "\(range) is not inside its parent \(parent.range) from line \(parent.line)")
            }
            let insideMemory = stack.contains { $0.isMemory }
            let type = memoryNames[name.lowercased()]
            let imported = ImportedLine(number: l.number, text: String(l.raw))
            if name == "Crash kernel" {
                crash.append(range)
                crashLines.append(imported)
            } else if kernelNames.contains(name) {
                kernel.append(range)
            } else if let type, !insideMemory {
                list.entries.append(
                    RegionList.Entry(
                        range: range, type: type, lines: [imported], note: plainNames.contains(name) ? nil : name))
            } else if insideMemory {
                annotations += 1
            } else if depth == 0 {
                skipped.append(name)
            }
            stack.append(Open(depth: depth, range: range, isMemory: type != nil, line: l.number))
        }
        if seen >= 2 && allZero {
            throw ImportError(
                line: nil, text: nil,
                message: "every address is 0: /proc/iomem was read without root (read it as root)")
        }
        var notes: [String] = []
        if !skipped.isEmpty {
            var order: [String] = []
            var counts: [String: Int] = [:]
            for n in skipped {
                if counts[n] == nil { order.append(n) }
                counts[n, default: 0] += 1
            }
            let named = order.map { counts[$0]! > 1 ? "\($0) (×\(counts[$0]!))" : $0 }
            let shown = named.prefix(8).joined(separator: ", ")
            let more = named.count > 8 ? ", …" : ""
            notes.append(
                "skipped \(skipped.count) top-level device/bus range\(skipped.count == 1 ? "" : "s") "
                    + "(not memory): \(shown)\(more)")
        }
        if annotations > 0 {
            notes.append("ignored \(annotations) resource\(annotations == 1 ? "" : "s") nested inside memory ranges")
        }
        let (memory, sources) = try list.build(
            file: file, field: "iomem",
            emptyMessage: "no memory ranges found (expected lines like \"00100000-7ffdefff : System RAM\")")
        let pairs = zip(crash, crashLines).sorted { $0.0 < $1.0 }
        return ImportedMachine(
            format: .iomem, memory: memory, sources: sources, crashkernelRanges: pairs.map(\.0),
            crashkernelLines: pairs.map(\.1), firstKernel: kernel, notes: notes)
    }
}
