import KexecModel

/// The next kernel's own view of memory, read from its console, against what kexec handed it.
///
/// arm64 (mm/page_alloc.c free_area_init, v6.1): the lines after `Early memory node ranges`,
/// `  node   N: [mem 0xSTART-0xEND]`, list memblock.memory, which the kernel builds from the
/// DTB's memory nodes, capped to `linux,usable-memory-range` in a crash kernel
/// (drivers/of/fdt.c early_init_dt_check_for_usable_mem_range, arch/arm64/mm/init.c
/// arm64_memblock_init). x86_64 (arch/x86/kernel/e820.c e820__print_table, v6.1):
/// `BIOS-e820: [mem 0xSTART-0xEND] usable` lines list the table boot_params carried. arm64 also:
/// `Memory: AK/TK available` (mm/page_alloc.c mem_init_print_info) gives T = the pages of
/// memblock.memory in KiB.
///
/// Handed over: arm64, the DTB memory nodes (the machine's usable RAM) or, for a crash kernel,
/// the usable-memory-range (the crashkernel regions); x86_64, the e820 usable entries.
public enum FollowMemoryLines {
    /// The outcome of a comparison.
    public struct Comparison: Sendable, Equatable {
        public var kernelRanges: [AddressRange]
        public var handed: [AddressRange]
        public var totalKiB: UInt64?
        public var matches: Bool
        /// What differs, in words ("" when they agree).
        public var summary: String
    }

    /// `node   0: [mem 0x…-0x…]` lines after `Early memory node ranges`.
    public static func nodeRanges(_ lines: [String]) -> [AddressRange] {
        guard let start = lines.firstIndex(where: { $0.contains("Early memory node ranges") }) else { return [] }
        var out: [AddressRange] = []
        for line in lines[(start + 1)...] {
            guard line.contains("node "), line.contains(": [mem "), let r = memRange(line) else { break }
            out.append(r)
        }
        return out
    }

    /// arm64: the zone lines after `Zone ranges:` (mm/page_alloc.c free_area_init, v6.1:
    /// `  DMA      [mem 0x…-0x…]` or `  DMA32    empty`), as "DMA [mem 0x…-0x…]; DMA32 empty".
    public static func zoneRanges(_ lines: [String]) -> String? {
        guard let start = lines.firstIndex(where: { $0.hasSuffix("Zone ranges:") }) else { return nil }
        var out: [String] = []
        for line in lines[(start + 1)...] {
            // After the printk time stamp "[    0.000000]".
            guard let close = line.firstIndex(of: "]") else { break }
            let body = line[line.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
            guard body.count >= 2, body[1] == "empty" || body[1].hasPrefix("[mem") else { break }
            out.append(body.joined(separator: " "))
        }
        return out.isEmpty ? nil : out.joined(separator: "; ")
    }

    /// `BIOS-e820: [mem 0x…-0x…] usable` lines.
    public static func e820Usable(_ lines: [String]) -> [AddressRange] {
        lines.filter { $0.contains("BIOS-e820: [mem ") && $0.hasSuffix("] usable") }.compactMap(memRange)
    }

    /// The `[mem 0xSTART-0xEND]` of a line (END inclusive).
    static func memRange(_ line: String) -> AddressRange? {
        guard let open = line.range(of: "[mem 0x") else { return nil }
        let rest = line[open.upperBound...]
        guard let dash = rest.firstIndex(of: "-"), let close = rest.firstIndex(of: "]") else { return nil }
        let a = rest[..<dash]
        var b = rest[rest.index(after: dash)..<close]
        if b.hasPrefix("0x") { b = b.dropFirst(2) }
        guard let first = UInt64(a, radix: 16), let last = UInt64(b, radix: 16), first <= last else { return nil }
        return AddressRange(first: PhysAddr(first), last: PhysAddr(last))
    }

    /// T of `Memory: AK/TK available`.
    public static func totalKiB(_ lines: [String]) -> UInt64? {
        guard let line = lines.first(where: { $0.contains("Memory: ") && $0.contains("K available") }),
            let slash = line.range(of: "K/"), let k = line.range(of: "K available")
        else { return nil }
        return UInt64(line[slash.upperBound..<k.lowerBound])
    }

    /// The kernel's ranges against the handed ones (both merged), and its total (when given)
    /// against the handed size.
    public static func compare(kernel: [AddressRange], handed: [AddressRange], totalKiB: UInt64?) -> Comparison {
        let k = RangeSet(kernel).ranges
        let h = RangeSet(handed).ranges
        var problems: [String] = []
        let extra = minus(k, h)
        let missing = minus(h, k)
        if !extra.isEmpty {
            problems.append("it uses \(extra.map(\.description).joined(separator: ", ")) it was not given")
        }
        if !missing.isEmpty {
            problems.append("it lacks \(missing.map(\.description).joined(separator: ", ")) it was given")
        }
        if let t = totalKiB {
            let want = h.reduce(UInt64(0)) { $0 + $1.size.raw } / 1024
            if t != want { problems.append("Memory: total \(t)K, handed \(want)K") }
        }
        return Comparison(
            kernelRanges: k, handed: h, totalKiB: totalKiB, matches: problems.isEmpty,
            summary: problems.joined(separator: "; "))
    }

    static func minus(_ a: [AddressRange], _ b: [AddressRange]) -> [AddressRange] {
        var s = RangeSet(a)
        for r in b { s.remove(r) }
        return s.ranges
    }

    /// What the run handed the next kernel as its RAM.
    static func handedOver(_ plan: Plan) -> [AddressRange] {
        let m = plan.scenario.machine
        if m.arch == .arm64 && plan.kimage.type == .crash { return m.crashkernelRanges }
        return m.memory.usable.ranges
    }

    /// The check of a followed run; nil while the console holds no memory lines.
    static func check(console: [String], plan: Plan) -> Comparison? {
        let arm64 = plan.scenario.machine.arch == .arm64
        let kernel = arm64 ? nodeRanges(console) : e820Usable(console)
        guard !kernel.isEmpty else { return nil }
        return compare(kernel: kernel, handed: handedOver(plan), totalKiB: arm64 ? totalKiB(console) : nil)
    }
}

extension FollowMemoryLines.Comparison {
    var evidence: [Evidence] {
        var ev = [
            Evidence(.nextKernelMemory, kernelRanges.map(\.description).joined(separator: " ")),
            Evidence(.handedMemory, handed.map(\.description).joined(separator: " ")),
        ]
        if let t = totalKiB { ev.append(Evidence(.nextKernelTotal, "\(t)K")) }
        ev.append(Evidence(.memoryCheck, matches ? "agrees" : summary))
        return ev
    }
}
