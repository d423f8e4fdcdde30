/// Physical memory map: typed regions, sorted, never overlapping.

public enum RegionType: String, Sendable, CaseIterable, Codable {
    case usable
    case reserved
    case acpi
    case nvs
    case persistent
    case softReserved = "soft-reserved"
    case unusable

    /// RAM the kernel hands to its page allocator (and direct-maps).
    public var isRAM: Bool { self == .usable }
}

public struct Region: Hashable, Sendable, CustomStringConvertible {
    public var range: AddressRange
    public var type: RegionType
    /// Where this region came from (fixture line, boot-log line), for messages.
    public var source: SourceLocation?
    public init(range: AddressRange, type: RegionType, source: SourceLocation? = nil) {
        self.range = range
        self.type = type
        self.source = source
    }
    public var description: String { "\(range) \(type.rawValue)" }
    public static func == (a: Region, b: Region) -> Bool { a.range == b.range && a.type == b.type }
    public func hash(into h: inout Hasher) {
        h.combine(range)
        h.combine(type)
    }
}

/// A place in an input file: file name, 1-based line, and the field it concerns.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var field: String
    public init(file: String, line: Int, field: String) {
        self.file = file
        self.line = line
        self.field = field
    }
    public var description: String { "\(file):\(line): \(field)" }
}

public enum MemoryMapError: Error, Equatable, CustomStringConvertible {
    case overlap(Region, Region)
    case empty
    public var description: String {
        switch self {
        case .overlap(let a, let b):
            let where_ = b.source.map { "\($0): " } ?? ""
            return "\(where_)region \(b) overlaps \(a)" + (a.source.map { " (from line \($0.line))" } ?? "")
        case .empty: return "memory map has no regions"
        }
    }
}

public struct MemoryMap: Sendable, Equatable {
    public let regions: [Region]

    /// Sorts the regions; overlapping regions are an error (they are ambiguous).
    public init(_ regions: [Region]) throws(MemoryMapError) {
        guard !regions.isEmpty else { throw .empty }
        let sorted = regions.sorted { $0.range < $1.range }
        for i in sorted.indices.dropFirst() where sorted[i - 1].range.overlaps(sorted[i].range) {
            throw .overlap(sorted[i - 1], sorted[i])
        }
        self.regions = sorted
    }

    public func ranges(of type: RegionType) -> RangeSet {
        RangeSet(regions.filter { $0.type == type }.map(\.range))
    }
    public var usable: RangeSet { ranges(of: .usable) }
    public var totalRAM: ByteCount { usable.totalSize }

    /// The region holding `a`, if any (nil: a hole, no device or memory there).
    public func region(containing a: PhysAddr) -> Region? {
        var lo = 0
        var hi = regions.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            let r = regions[mid].range
            if a < r.first {
                hi = mid - 1
            } else if a > r.last {
                lo = mid + 1
            } else {
                return regions[mid]
            }
        }
        return nil
    }

    /// Describes what lives at `a`: "usable [0x…-0x…]" or "a hole (no region)".
    public func describe(_ a: PhysAddr) -> String {
        if let r = region(containing: a) { return "\(r.type.rawValue) \(r.range)" }
        return "a hole (no region)"
    }

    /// Highest address + 1 of any region (saturating).
    public var top: UInt64 { regions.map(\.range.endSaturated).max() ?? 0 }
}
