/// `crashkernel=` as the kernel parses it (kernel/crash_reserve.c parse_crashkernel) and reserves it
/// (reserve_crashkernel_generic, with x86_64's and arm64's limits from asm/crash_reserve.h).
///
/// Every number from the input goes through checked arithmetic: a value that does not fit in 64 bits
/// is an error here, where the kernel's memparse() would silently wrap.

/// Where the crash kernel goes.
public enum CrashkernelPlacement: Equatable, Sendable {
    /// `size` or the range form without `@offset` (or with `@0`): below the low limit first, then high.
    case auto
    /// `size@offset`: exactly there.
    case fixed(PhysAddr)
    /// `size,high`: above the low limit first (with a low part for DMA), then below it.
    case high
}

/// A parsed `crashkernel=` value.
public struct CrashkernelSpec: Equatable, Sendable, CustomStringConvertible {
    public var size: ByteCount
    public var placement: CrashkernelPlacement
    /// `,high` only: the `,low` size given (0: no low part); nil: the architecture's default
    /// (`CrashkernelArch.defaultLowSize`).
    public var lowSize: ByteCount?

    public init(size: ByteCount, placement: CrashkernelPlacement = .auto, lowSize: ByteCount? = nil) {
        self.size = size
        self.placement = placement
        self.lowSize = lowSize
    }

    public var description: String {
        switch placement {
        case .auto: return "\(size)"
        case .fixed(let base): return "\(size)@\(base)"
        case .high: return "\(size),high" + (lowSize.map { " \($0),low" } ?? "")
        }
    }
}

/// The architecture limits the reservation follows.
public enum CrashkernelArch: Equatable, Sendable {
    /// CRASH_ALIGN 16 MiB, CRASH_ADDR_LOW_MAX 4 GiB, CRASH_ADDR_HIGH_MAX 64 TiB (the top of RAM under
    /// 4-level paging: a kdump jump from 5-level to 4-level paging must still reach the kernel).
    case x86_64
    /// CRASH_ALIGN 2 MiB (the arm64 boot protocol), CRASH_ADDR_LOW_MAX the DMA zone limit
    /// (arm64_dma_phys_limit), CRASH_ADDR_HIGH_MAX the top of RAM.
    case arm64(dmaLimit: PhysAddr = PhysAddr(1 << 32))

    public static func of(_ arch: Arch, dmaLimit: PhysAddr? = nil) -> CrashkernelArch {
        switch arch {
        case .x86_64: return .x86_64
        case .arm64: return .arm64(dmaLimit: dmaLimit ?? PhysAddr(1 << 32))
        }
    }

    public var alignment: ByteCount {
        switch self {
        case .x86_64: return .mib(16)
        case .arm64: return .mib(2)
        }
    }

    /// Exclusive end of the low search.
    public var lowLimit: PhysAddr {
        switch self {
        case .x86_64: return PhysAddr(1 << 32)
        case .arm64(let dma): return dma
        }
    }

    /// Exclusive end of the high search on `memory`.
    public func highLimit(_ memory: MemoryMap) -> PhysAddr {
        switch self {
        case .x86_64: return PhysAddr(ByteCount.tib(64).raw)
        case .arm64: return PhysAddr(memory.usable.ranges.last?.endSaturated ?? 0)
        }
    }

    /// DEFAULT_CRASH_KERNEL_LOW_SIZE: the low part reserved with `,high` (and when a plain size falls
    /// back above the low limit).
    public var defaultLowSize: ByteCount {
        switch self {
        // max(swiotlb_size_or_default() + 8 MiB, 256 MiB): with the default 64 MiB swiotlb that is
        // max(72 MiB, 256 MiB) = 256 MiB; a swiotlb= of more than 248 MiB would raise it (not modelled).
        case .x86_64: return .mib(256)
        // include/linux/crash_reserve.h: 128 MiB (for the swiotlb buffer).
        case .arm64: return .mib(128)
        }
    }
}

public enum CrashkernelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The text is not a `crashkernel=` value; says what is wrong.
    case syntax(String)
    /// The size is at least the system RAM (parse_crashkernel: -EINVAL).
    case tooLarge(text: String, size: ByteCount, systemRAM: ByteCount)
    /// `@offset` cannot be used (unaligned, outside usable RAM, wraps).
    case badOffset(String)
    /// No free range fits (memblock_phys_alloc_range found nothing).
    case noRoom(String)

    public var description: String {
        switch self {
        case .syntax(let m), .badOffset(let m), .noRoom(let m): return m
        case .tooLarge(let text, let size, let ram):
            let exact = ram.description.contains(".") ? "\(ram) = \(hex(ram.raw)) bytes" : "\(ram)"
            return "crashkernel=\(text) is larger than the RAM that can hold it (\(size) of \(exact) of usable RAM)"
        }
    }
}

public enum Crashkernel {
    /// Parses a `crashkernel=` value: `size[KMG][@offset]`, `start-[end]:size[,...][@offset]`,
    /// `size,high`, and `size,high` with `size,low`. Several values may be given separated by spaces,
    /// each optionally written `crashkernel=…` (as on a command line): like the kernel, the last one
    /// without a suffix wins; failing that the last `,high` with the last `,low`.
    ///
    /// nil when nothing is reserved: the range form matched no range, or the size is 0.
    public static func parse(_ s: String, systemRAM: ByteCount) throws(CrashkernelError) -> CrashkernelSpec? {
        var plain: [Substring] = []
        var high: [Substring] = []
        var low: [Substring] = []
        let items = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard !items.isEmpty else {
            throw .syntax("crashkernel= is empty (expected e.g. 256M, 512M-2G:64M,2G-:128M, 1G,high)")
        }
        for raw in items {
            var item = raw
            if item.hasPrefix("crashkernel=") { item = item.dropFirst("crashkernel=".count) }
            guard !item.isEmpty else { throw .syntax("crashkernel= is empty") }
            if item.hasSuffix(",high") {
                high.append(item)
            } else if item.hasSuffix(",low") {
                low.append(item)
            } else if item.hasSuffix(",cma") {
                throw .syntax("crashkernel=\(item): the ,cma form is not modelled")
            } else {
                plain.append(item)
            }
        }
        // Check the syntax of every value, then use the ones the kernel uses.
        for item in plain { _ = try parsePlain(item, systemRAM: systemRAM, checkSizes: false) }
        for item in high { _ = try parseSuffixed(item, suffix: ",high") }
        for item in low { _ = try parseSuffixed(item, suffix: ",low") }

        if let item = plain.last {
            guard let spec = try parsePlain(item, systemRAM: systemRAM, checkSizes: true), spec.size.raw > 0 else {
                return nil
            }
            guard spec.size < systemRAM else {
                throw .tooLarge(text: String(item), size: spec.size, systemRAM: systemRAM)
            }
            return spec
        }
        if let item = high.last {
            let size = try parseSuffixed(item, suffix: ",high")
            guard size.raw > 0 else { return nil }
            guard size < systemRAM else { throw .tooLarge(text: String(item), size: size, systemRAM: systemRAM) }
            var lowSize: ByteCount?
            if let l = low.last { lowSize = try parseSuffixed(l, suffix: ",low") }
            return CrashkernelSpec(size: size, placement: .high, lowSize: lowSize)
        }
        // Only `,low`: the kernel looks for a plain value, then for `,high`, and gives up; `,low`
        // alone reserves nothing (it only sizes the low part of a `,high` reservation).
        throw .syntax(
            "crashkernel=\(low.last ?? ""): a ,low size needs a size,high too (the kernel ignores ,low on its own)")
    }

    /// Reserves `spec` the way reserve_crashkernel_generic does on `arch`; returns the reserved ranges,
    /// lowest first (the low part of a high reservation included).
    ///
    /// Only usable RAM counts as free; the kernel's own early reservations (its image, the initrd,
    /// firmware tables it copied) are not modelled, so on a real machine the reservation can end up
    /// lower than here when the top of a range is taken. On x86_64 the first 1 MiB is never used
    /// (the kernel reserves it from memblock at boot).
    public static func reserve(
        _ spec: CrashkernelSpec, in memory: MemoryMap, arch: CrashkernelArch
    ) throws(CrashkernelError) -> [AddressRange] {
        let size = spec.size
        guard size.raw > 0 else { return [] }
        var free = memory.usable
        if arch == .x86_64, let firstMiB = AddressRange(start: PhysAddr(0), size: .mib(1)) {
            free.remove(firstMiB)
        }
        let align = arch.alignment
        let lowMax = arch.lowLimit
        let highMax = arch.highLimit(memory)
        let text = spec.description

        func range(_ base: PhysAddr, _ n: ByteCount) -> AddressRange {
            // Callers only pass bases found inside RAM for n bytes: cannot fail.
            AddressRange(start: base, size: n)!
        }

        var base: PhysAddr
        var lowSize = ByteCount.zero
        switch spec.placement {
        case .fixed(let at) where at.raw != 0:
            guard at.isAligned(align) else {
                throw .badOffset(
                    "crashkernel=\(text): offset \(hex(at.raw)) is not a multiple of \(align) (CRASH_ALIGN)")
            }
            guard let r = AddressRange(start: at, size: size) else {
                throw .badOffset("crashkernel=\(text): the range wraps past 0xffffffffffffffff")
            }
            guard free.covers(r) else {
                throw .badOffset(
                    "crashkernel=\(text): \(r) is not inside usable RAM (at \(hex(at.raw)): \(memory.describe(at)))")
            }
            return [r]
        case .auto, .fixed:
            if let b = allocTopDown(free, size: size, align: align, start: PhysAddr(0), end: lowMax) {
                base = b
            } else if let b = allocTopDown(free, size: size, align: align, start: lowMax, end: highMax) {
                base = b
                lowSize = arch.defaultLowSize
            } else {
                throw noRoom(text, size, align, below: highMax)
            }
        case .high:
            if let b = allocTopDown(free, size: size, align: align, start: lowMax, end: highMax) {
                base = b
                lowSize = spec.lowSize ?? arch.defaultLowSize
            } else if let b = allocTopDown(free, size: size, align: align, start: PhysAddr(0), end: lowMax) {
                base = b
            } else {
                throw noRoom(text, size, align, below: highMax)
            }
        }
        let main = range(base, size)
        guard lowSize.raw > 0, base >= lowMax else { return [main] }
        guard let lowBase = allocTopDown(free, size: lowSize, align: align, start: PhysAddr(0), end: lowMax) else {
            throw .noRoom(
                "crashkernel=\(text): the crash kernel fits at \(main) but its low part of \(lowSize) does not "
                    + "fit in usable RAM below \(hex(lowMax.raw)) (the kernel then reserves nothing)")
        }
        return [range(lowBase, lowSize), main]
    }

    private static func noRoom(_ text: String, _ size: ByteCount, _ align: ByteCount, below: PhysAddr)
        -> CrashkernelError
    {
        .noRoom(
            "crashkernel=\(text): no \(align)-aligned free range of \(size) in usable RAM below \(hex(below.raw))")
    }

    /// memblock_phys_alloc_range(size, align, start, end) with memblock's default direction.
    ///
    /// memblock allocates top-down unless `movable_node` switched it to bottom-up: the highest aligned
    /// fit below `end` wins, walking the free ranges from the top. Top-down keeps early allocations away
    /// from low memory, which ISA/DMA-limited devices and the real-mode trampoline need, and (for the
    /// crash kernel) leaves the lowest memory to the first kernel's own early users.
    static func allocTopDown(
        _ free: RangeSet, size: ByteCount, align: ByteCount, start: PhysAddr, end: PhysAddr
    ) -> PhysAddr? {
        guard size.raw > 0 else { return nil }
        // memblock_find_in_range_node never hands out page 0.
        let lo = max(start.raw, kexecPageSize.raw)
        for r in free.ranges.reversed() {
            let thisStart = max(r.first.raw, lo)
            let thisEnd = min(r.endSaturated, end.raw)
            guard thisEnd > thisStart, thisEnd - thisStart >= size.raw else { continue }
            let cand = PhysAddr(thisEnd - size.raw).alignedDown(align)
            if cand.raw >= thisStart { return cand }
        }
        return nil
    }
}

// MARK: - Parsing

extension Crashkernel {
    /// `size[@offset]` or `start-[end]:size[,...][@offset]`; nil when no range matches.
    /// `checkSizes`: apply the range form's "size below RAM" check (the kernel checks the entries up to the match).
    static func parsePlain(_ item: Substring, systemRAM: ByteCount, checkSizes: Bool) throws(CrashkernelError)
        -> CrashkernelSpec?
    {
        let text = String(item)
        var sc = Scanner(item)
        func fail(_ what: String) -> CrashkernelError { .syntax("crashkernel=\(text): \(what)") }

        if !item.contains(":") {
            let size = try sc.memparse(text, what: "a size (e.g. 256M)")
            var placement = CrashkernelPlacement.auto
            if sc.peek == UInt8(ascii: "@") {
                sc.advance()
                placement = .fixed(PhysAddr(try sc.memparse(text, what: "an offset after '@'")))
            }
            try sc.expectEnd(text)
            return CrashkernelSpec(size: ByteCount(size), placement: placement)
        }

        // The range form. parse_crashkernel_mem rounds the RAM size up to 128 MiB before matching
        // ("firmware sometimes reserves some memory"): 4095.5 MiB of usable RAM matches 4G-.
        let mask = ByteCount.mib(128).raw - 1
        let (sum, over) = systemRAM.raw.addingReportingOverflow(mask)
        let totalMem = over ? UInt64.max : sum & ~mask
        var matched: UInt64?
        while true {
            let entryStart = sc.i
            let start = try sc.memparse(text, what: "the start of a range (e.g. 512M-2G:64M)")
            guard sc.peek == UInt8(ascii: "-") else { throw fail("'-' expected after the range start \(sc.lastToken)") }
            sc.advance()
            var end = UInt64.max
            if sc.peek != UInt8(ascii: ":") {
                end = try sc.memparse(text, what: "the end of a range (or nothing, as in 2G-:128M)")
                guard end > start else {
                    throw fail("range end \(formatSize(end)) is not above its start \(formatSize(start))")
                }
            }
            guard sc.peek == UInt8(ascii: ":") else {
                throw fail("':' expected after the range \(sc.text(from: entryStart))")
            }
            sc.advance()
            let size = try sc.memparse(text, what: "a size after ':'")
            if matched == nil {
                if checkSizes, size >= totalMem {
                    throw fail(
                        "size \(formatSize(size)) is not smaller than the RAM (\(formatSize(totalMem)) "
                            + "once rounded up to 128MiB)")
                }
                if totalMem >= start && totalMem < end { matched = size }
            }
            guard sc.peek == UInt8(ascii: ",") else { break }
            sc.advance()
        }
        var placement = CrashkernelPlacement.auto
        if sc.peek == UInt8(ascii: "@") {
            sc.advance()
            placement = .fixed(PhysAddr(try sc.memparse(text, what: "an offset after '@'")))
        }
        try sc.expectEnd(text)
        guard let size = matched, size > 0 else { return nil }
        return CrashkernelSpec(size: ByteCount(size), placement: placement)
    }

    /// `size,high` / `size,low`.
    static func parseSuffixed(_ item: Substring, suffix: String) throws(CrashkernelError) -> ByteCount {
        let text = String(item)
        let body = item.dropLast(suffix.count)
        var sc = Scanner(body)
        let size = try sc.memparse(text, what: "a size before \(suffix)")
        guard sc.atEnd else {
            throw .syntax("crashkernel=\(text): unexpected \"\(sc.rest)\" between the size and \(suffix)")
        }
        return ByteCount(size)
    }

    /// Reads the kernel's memparse() syntax over ASCII bytes.
    struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var tokenStart = 0

        init(_ s: Substring) { bytes = Array(s.utf8) }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }
        var atEnd: Bool { i >= bytes.count }
        var rest: String { String(decoding: bytes[min(i, bytes.count)...], as: UTF8.self) }
        var lastToken: String { String(decoding: bytes[tokenStart..<i], as: UTF8.self) }
        func text(from start: Int) -> String { String(decoding: bytes[start..<i], as: UTF8.self) }
        mutating func advance() { i += 1 }

        func expectEnd(_ text: String) throws(CrashkernelError) {
            guard atEnd else {
                let c = rest
                if c.hasPrefix("B") || c.hasPrefix("b") || c.hasPrefix("i") {
                    throw .syntax(
                        "crashkernel=\(text): unexpected \"\(c)\" (sizes take K, M, G, T, P or E without \"B\" or \"iB\")"
                    )
                }
                throw .syntax("crashkernel=\(text): unexpected \"\(c)\"")
            }
        }

        /// simple_strtoull(base 0: 0x… hex, 0… octal, else decimal) then one K/M/G/T/P/E (any case).
        mutating func memparse(_ text: String, what: String) throws(CrashkernelError) -> UInt64 {
            tokenStart = i
            var radix: UInt64 = 10
            if peek == UInt8(ascii: "0") {
                if i + 2 < bytes.count, bytes[i + 1] | 0x20 == UInt8(ascii: "x"),
                    Parse.digit(bytes[i + 2], radix: 16) != nil
                {
                    radix = 16
                    i += 2
                } else {
                    radix = 8
                }
            }
            var value: UInt64 = 0
            var digits = 0
            var overflow = false
            while let c = peek, let d = Parse.digit(c, radix: radix) {
                let (m, o1) = value.multipliedReportingOverflow(by: radix)
                let (a, o2) = m.addingReportingOverflow(d)
                if o1 || o2 { overflow = true }
                value = a
                digits += 1
                i += 1
            }
            guard digits > 0 else {
                let found = atEnd ? "nothing" : "\"\(rest)\""
                throw .syntax("crashkernel=\(text): expected \(what), found \(found)")
            }
            var shift: UInt64 = 0
            if let c = peek {
                switch c | 0x20 {
                case UInt8(ascii: "k"): shift = 10
                case UInt8(ascii: "m"): shift = 20
                case UInt8(ascii: "g"): shift = 30
                case UInt8(ascii: "t"): shift = 40
                case UInt8(ascii: "p"): shift = 50
                case UInt8(ascii: "e"): shift = 60
                default: break
                }
                if shift > 0 { i += 1 }
            }
            guard !overflow, value <= UInt64.max >> shift else {
                throw .syntax("crashkernel=\(text): \(lastToken) does not fit in 64 bits")
            }
            return value << shift
        }
    }
}
