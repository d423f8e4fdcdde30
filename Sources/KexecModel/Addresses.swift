/// Typed addresses and sizes. Everything that crosses a module boundary carries its unit.

/// A guest physical address.
public struct PhysAddr: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    public static func < (a: PhysAddr, b: PhysAddr) -> Bool { a.raw < b.raw }
    public var description: String { hex(raw) }

    /// Checked offset: nil when the sum passes 2^64.
    public func adding(_ n: ByteCount) -> PhysAddr? {
        let (v, o) = raw.addingReportingOverflow(n.raw)
        return o ? nil : PhysAddr(v)
    }
    public func alignedDown(_ a: ByteCount) -> PhysAddr { PhysAddr(raw & ~(a.raw &- 1)) }
    /// nil when rounding up passes 2^64.
    public func alignedUp(_ a: ByteCount) -> PhysAddr? {
        let mask = a.raw &- 1
        let (v, o) = raw.addingReportingOverflow(mask)
        return o ? nil : PhysAddr(v & ~mask)
    }
    public func isAligned(_ a: ByteCount) -> Bool { raw & (a.raw &- 1) == 0 }
    /// Distance from `other` (self >= other).
    public func distance(from other: PhysAddr) -> ByteCount { ByteCount(raw - other.raw) }
}

/// A guest virtual address.
public struct VirtAddr: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    public static func < (a: VirtAddr, b: VirtAddr) -> Bool { a.raw < b.raw }
    public var description: String { hex(raw) }
}

/// A count of bytes.
public struct ByteCount: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: UInt64
    public init(_ raw: UInt64) { self.raw = raw }
    public static func < (a: ByteCount, b: ByteCount) -> Bool { a.raw < b.raw }
    public static let zero = ByteCount(0)
    public static func kib(_ n: UInt64) -> ByteCount { ByteCount(n << 10) }
    public static func mib(_ n: UInt64) -> ByteCount { ByteCount(n << 20) }
    public static func gib(_ n: UInt64) -> ByteCount { ByteCount(n << 30) }
    public static func tib(_ n: UInt64) -> ByteCount { ByteCount(n << 40) }
    public var description: String { formatSize(raw) }
    /// nil on overflow.
    public func alignedUp(_ a: ByteCount) -> ByteCount? {
        let mask = a.raw &- 1
        let (v, o) = raw.addingReportingOverflow(mask)
        return o ? nil : ByteCount(v & ~mask)
    }
    public var int: Int { Int(truncatingIfNeeded: raw) }
}

/// Page and leaf sizes used by the tables and the kimage.
public enum PageSize: UInt64, Sendable, CaseIterable, CustomStringConvertible {
    case size4K = 0x1000
    case size16K = 0x4000
    case size64K = 0x1_0000
    case size2M = 0x20_0000
    case size32M = 0x200_0000
    case size512M = 0x2000_0000
    case size1G = 0x4000_0000
    public var bytes: ByteCount { ByteCount(rawValue) }
    public var description: String { formatSize(rawValue) }
}

/// x86_64 / arm64 base page used by the kimage (4 KiB on x86_64).
public let kexecPageSize = ByteCount(0x1000)

public func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
public func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 16 - s.count)) + s
}

/// 12MiB, 4GiB, 96.2MiB: exact in the largest unit that fits, else one decimal.
public func formatSize(_ v: UInt64) -> String {
    let units: [(UInt64, String)] = [
        (1 << 60, "EiB"), (1 << 50, "PiB"), (1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"),
    ]
    guard let (u, name) = units.first(where: { v >= $0.0 }) else { return "\(v)B" }
    if v % u == 0 { return "\(v / u)\(name)" }
    let tenths = Int((Double(v) / Double(u) * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)\(name)"
}

/// An inclusive physical range [first, last], the way dmesg and /proc/iomem print them.
/// Inclusive ends let a range reach 0xffff_ffff_ffff_ffff without overflow.
public struct AddressRange: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let first: PhysAddr
    public let last: PhysAddr

    /// nil when last < first.
    public init?(first: PhysAddr, last: PhysAddr) {
        guard first <= last else { return nil }
        self.first = first
        self.last = last
    }
    /// [start, start+size): nil when size is 0 or the end passes 2^64.
    public init?(start: PhysAddr, size: ByteCount) {
        guard size.raw > 0 else { return nil }
        let (l, o) = start.raw.addingReportingOverflow(size.raw - 1)
        guard !o else { return nil }
        self.first = start
        self.last = PhysAddr(l)
    }
    /// [start, end) with end exclusive (end > start).
    public init?(start: PhysAddr, end: PhysAddr) {
        guard end > start else { return nil }
        self.first = start
        self.last = PhysAddr(end.raw - 1)
    }
    public var start: PhysAddr { first }
    /// Exclusive end; nil when the range ends at 2^64 - 1.
    public var end: PhysAddr? { last.raw == .max ? nil : PhysAddr(last.raw + 1) }
    /// Exclusive end, saturated at 2^64 - 1 (for drawing and sorting only).
    public var endSaturated: UInt64 { last.raw == .max ? .max : last.raw + 1 }
    /// Size; saturates at 2^64 - 1 for the whole space.
    public var size: ByteCount {
        let (s, o) = (last.raw - first.raw).addingReportingOverflow(1)
        return ByteCount(o ? .max : s)
    }
    public func contains(_ a: PhysAddr) -> Bool { a >= first && a <= last }
    public func contains(_ r: AddressRange) -> Bool { r.first >= first && r.last <= last }
    public func overlaps(_ r: AddressRange) -> Bool { r.first <= last && first <= r.last }
    public func intersection(_ r: AddressRange) -> AddressRange? {
        AddressRange(first: max(first, r.first), last: min(last, r.last))
    }
    public static func < (a: AddressRange, b: AddressRange) -> Bool {
        a.first != b.first ? a.first < b.first : a.last < b.last
    }
    public var description: String { "[\(hex16(first.raw))-\(hex16(last.raw))]" }
    /// Shrinks to whole pages of `page` size inside the range; nil if none is left.
    public func pageTrimmed(_ page: ByteCount = kexecPageSize) -> AddressRange? {
        guard let s = first.alignedUp(page) else { return nil }
        let e = PhysAddr((last.raw &+ 1) & ~(page.raw - 1))  // 2^64 wraps to 0 → handled below
        if last.raw == .max { return AddressRange(start: s, end: PhysAddr(UInt64.max & ~(page.raw - 1))) }
        return AddressRange(start: s, end: e)
    }
    /// Grows to whole units of `a` around the range; saturates at the top of the space.
    public func alignedOut(_ a: ByteCount) -> AddressRange {
        let f = first.alignedDown(a)
        let (l, o) = last.raw.addingReportingOverflow(a.raw)
        let lastOut = o ? UInt64.max : ((l & ~(a.raw - 1)) &- 1)
        return AddressRange(first: f, last: PhysAddr(max(lastOut, last.raw)))!
    }
}

/// A sorted set of disjoint, non-adjacent ranges.
public struct RangeSet: Sendable, Equatable, CustomStringConvertible {
    public private(set) var ranges: [AddressRange] = []
    public init() {}
    public init(_ rs: [AddressRange]) { for r in rs { insert(r) } }

    public mutating func insert(_ r: AddressRange) {
        var lo = r.first.raw
        var hi = r.last.raw
        var kept: [AddressRange] = []
        kept.reserveCapacity(ranges.count + 1)
        for x in ranges {
            let touches =
                x.first.raw <= (hi == .max ? .max : hi + 1) && lo <= (x.last.raw == .max ? .max : x.last.raw + 1)
            if touches {
                lo = min(lo, x.first.raw)
                hi = max(hi, x.last.raw)
            } else {
                kept.append(x)
            }
        }
        kept.append(AddressRange(first: PhysAddr(lo), last: PhysAddr(hi))!)
        kept.sort()
        ranges = kept
    }
    public mutating func remove(_ r: AddressRange) {
        var out: [AddressRange] = []
        for x in ranges {
            guard x.overlaps(r) else {
                out.append(x)
                continue
            }
            if x.first < r.first, let left = AddressRange(first: x.first, last: PhysAddr(r.first.raw - 1)) {
                out.append(left)
            }
            if x.last > r.last, let right = AddressRange(first: PhysAddr(r.last.raw + 1), last: x.last) {
                out.append(right)
            }
        }
        ranges = out
    }
    public func contains(_ a: PhysAddr) -> Bool { ranges.contains { $0.contains(a) } }
    public func covers(_ r: AddressRange) -> Bool { ranges.contains { $0.contains(r) } }
    public func overlaps(_ r: AddressRange) -> Bool { ranges.contains { $0.overlaps(r) } }
    public var totalSize: ByteCount { ByteCount(ranges.reduce(0) { $0 &+ $1.size.raw }) }
    public var isEmpty: Bool { ranges.isEmpty }
    public var description: String { ranges.map(\.description).joined(separator: " ") }
}
