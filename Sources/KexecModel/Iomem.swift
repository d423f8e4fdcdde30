/// The first kernel's /proc/iomem as user space reads it line by line (kexec-tools does, with
/// `sscanf("%llx-%llx : %n")`): every resource with its name and nesting depth, parents before
/// children, in address order (kernel/resource.c r_show, two spaces of indentation per level).
///
/// A machine carries one when it was imported or recorded (`Machine.iomem`); otherwise
/// `Machine.iomemView` derives one from the memory map as the running kernel would register it.
public struct IomemResource: Sendable, Equatable, CustomStringConvertible {
    public var range: AddressRange
    public var name: String
    /// 0 for a top-level resource, 1 for its children, …
    public var depth: Int

    public init(range: AddressRange, name: String, depth: Int = 0) {
        self.range = range
        self.name = name
        self.depth = depth
    }

    public var description: String {
        String(repeating: "  ", count: depth) + "\(range.first)-\(range.last) : \(name)"
    }

    /// Parses /proc/iomem text (`start-end : name`, hex without 0x, both ends inclusive, two spaces
    /// of indentation per level). Lines that are not resources are skipped; nil when a resource
    /// line's bounds cannot be read.
    public static func parse(_ lines: [String]) -> [IomemResource]? {
        var out: [IomemResource] = []
        for raw in lines {
            let indent = raw.prefix { $0 == " " }.count
            let t = raw.dropFirst(indent)
            guard let sep = t.range(of: " : ") else { continue }
            let bounds = t[..<sep.lowerBound].split(separator: "-")
            guard bounds.count == 2, let a = UInt64(bounds[0], radix: 16), let b = UInt64(bounds[1], radix: 16),
                let r = AddressRange(first: PhysAddr(a), last: PhysAddr(b))
            else { return nil }
            out.append(IomemResource(range: r, name: String(t[sep.upperBound...]), depth: indent / 2))
        }
        return out
    }
}

extension Machine {
    /// /proc/iomem as this machine's first kernel shows it: the recorded one (`iomem`), else one
    /// derived from the memory map.
    ///
    /// - x86_64 (arch/x86/kernel/e820.c e820__reserve_resources and e820_type_to_string, setup.c
    ///   trim_bios_range, read in 6.1.192): one top-level resource per e820 entry of the kernel's
    ///   table, named "System RAM", "Reserved", "ACPI Tables", "ACPI Non-volatile Storage",
    ///   "Persistent Memory", "Soft Reserved", "Unusable memory"; trim_bios_range turns the first
    ///   page from RAM to reserved; the crashkernel ranges are "Crash kernel" children.
    /// - arm64 (arch/arm64/kernel/setup.c request_standard_resources and
    ///   reserve_memblock_reserved_regions, 6.1): one "System RAM" per memory region (NOMAP regions,
    ///   here every non-usable region, are "reserved"), "Crash kernel" children, and "reserved"
    ///   children over memblock.reserved (page-rounded, split around the crash kernel).
    public var iomemView: [IomemResource] {
        if let iomem { return iomem }
        var out: [IomemResource] = []
        switch arch {
        case .x86_64:
            let page = ByteCount(0x1000)
            for region in memory.regions {
                var r = region.range
                if region.type == .usable, r.first.raw == 0, let zero = AddressRange(start: PhysAddr(0), size: page) {
                    out.append(IomemResource(range: zero, name: "Reserved"))
                    guard let rest = AddressRange(first: PhysAddr(0x1000), last: r.last) else { continue }
                    r = rest
                }
                out.append(IomemResource(range: r, name: Self.x86IomemName(region.type)))
                for c in crashkernelRanges where r.contains(c) {
                    out.append(IomemResource(range: c, name: "Crash kernel", depth: 1))
                }
            }
        case .arm64:
            for region in memory.regions {
                let r = region.range
                guard region.type == .usable else {
                    out.append(IomemResource(range: r, name: "reserved"))
                    continue
                }
                out.append(IomemResource(range: r, name: "System RAM"))
                var children: [IomemResource] = crashkernelRanges.filter { r.contains($0) }.map {
                    IomemResource(range: $0, name: "Crash kernel", depth: 1)
                }
                var reserved = RangeSet()
                for m in memblockReserved {
                    let first = m.first.raw & ~UInt64(0xfff)
                    let last = m.last.raw | 0xfff
                    if let p = AddressRange(first: PhysAddr(first), last: PhysAddr(last)), let i = p.intersection(r) {
                        reserved.insert(i)
                    }
                }
                for c in crashkernelRanges { reserved.remove(c) }
                children += reserved.ranges.map { IomemResource(range: $0, name: "reserved", depth: 1) }
                out += children.sorted { $0.range.first < $1.range.first }
            }
        }
        return out
    }

    /// e820_type_to_string (arch/x86/kernel/e820.c, 6.1.192).
    static func x86IomemName(_ t: RegionType) -> String {
        switch t {
        case .usable: return "System RAM"
        case .reserved: return "Reserved"
        case .acpi: return "ACPI Tables"
        case .nvs: return "ACPI Non-volatile Storage"
        case .persistent: return "Persistent Memory"
        case .softReserved: return "Soft Reserved"
        case .unusable: return "Unusable memory"
        }
    }
}
