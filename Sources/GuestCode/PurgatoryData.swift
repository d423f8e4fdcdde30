/// Where the fields of the purgatory's `struct purgatory_data` (c/common/purgatory.c) lie, in
/// bytes from the start of `purgatory_data`.
///
/// The values are not written by hand: `scripts/build-guest-code` compiles
/// `c/common/purgatory_layout.c` for each architecture and generates them from the object
/// (`X86_64GuestCode.purgatoryDataLayout`, `Arm64GuestCode.purgatoryDataLayout`). All integer
/// fields are 64-bit little-endian.
public struct PurgatoryDataLayout: Sendable, Equatable {
    /// `entry`: the next kernel's physical entry point.
    public let entry: Int
    /// `entry_arg`: x86_64 rsi (boot_params), arm64 x0 (the DTB).
    public let entryArg: Int
    /// `nr_regions`: used entries of `regions`.
    public let nrRegions: Int
    /// `regions[0]`.
    public let regions: Int
    /// `sizeof(struct purgatory_region)`: the stride of `regions`.
    public let regionSize: Int
    /// `start` inside one region.
    public let regionStart: Int
    /// `len` inside one region.
    public let regionLength: Int
    /// Capacity of `regions` (PURGATORY_MAX_REGIONS, KEXEC_SEGMENT_MAX).
    public let maxRegions: Int
    /// `digest`: the SHA-256 the purgatory compares against.
    public let digest: Int
    /// Bytes of `digest` (32).
    public let digestSize: Int
    /// `sizeof(struct purgatory_data)`.
    public let size: Int

    init(
        entry: Int, entryArg: Int, nrRegions: Int, regions: Int, regionSize: Int, regionStart: Int,
        regionLength: Int, maxRegions: Int, digest: Int, digestSize: Int, size: Int
    ) {
        self.entry = entry
        self.entryArg = entryArg
        self.nrRegions = nrRegions
        self.regions = regions
        self.regionSize = regionSize
        self.regionStart = regionStart
        self.regionLength = regionLength
        self.maxRegions = maxRegions
        self.digest = digest
        self.digestSize = digestSize
        self.size = size
    }

    /// Offset of `regions[index].start`.
    public func regionStartOffset(_ index: Int) -> Int { regions + index * regionSize + regionStart }
    /// Offset of `regions[index].len`.
    public func regionLengthOffset(_ index: Int) -> Int { regions + index * regionSize + regionLength }
}

/// One physical range the purgatory hashes.
public struct PurgatoryRegion: Sendable, Equatable {
    public var start: UInt64
    public var length: UInt64
    public init(start: UInt64, length: UInt64) {
        self.start = start
        self.length = length
    }
}

/// Why `purgatory_data` cannot be filled in.
public enum PurgatoryDataError: Error, Equatable, CustomStringConvertible, Sendable {
    /// More regions than `regions[]` holds.
    case tooManyRegions(count: Int, max: Int)
    /// A digest that is not `digestSize` bytes.
    case digestSize(count: Int, expected: Int)
    /// `purgatory_data` does not lie inside the blob's bytes (or the blob has none).
    case outOfBounds(blob: String)

    public var description: String {
        switch self {
        case .tooManyRegions(let n, let max):
            return "purgatory_data holds at most \(max) regions, \(n) given"
        case .digestSize(let n, let expected):
            return "purgatory digest is \(n) bytes, not \(expected)"
        case .outOfBounds(let blob):
            return "\(blob): purgatory_data does not lie inside the blob's bytes"
        }
    }
}

extension GuestBlob {
    /// A copy of `bytes` with `purgatory_data` filled in: entry, entry_arg, nr_regions, the used
    /// `regions` (the rest stay as they are in the blob: zero) and the digest.
    ///
    /// Throws when the blob has no `purgatoryDataLayout` or no `purgatory_data` symbol inside
    /// its bytes, when there are more than `maxRegions` regions, or when `digest` is not
    /// `digestSize` bytes. Never traps.
    public func patchingPurgatoryData(
        entry: UInt64, entryArg: UInt64, regions: [PurgatoryRegion], digest: [UInt8]
    ) throws(PurgatoryDataError) -> [UInt8] {
        guard let layout = purgatoryDataLayout, let symbol = symbols["purgatory_data"],
            symbol <= UInt64(bytes.count), UInt64(bytes.count) - symbol >= UInt64(layout.size)
        else { throw .outOfBounds(blob: name) }
        guard regions.count <= layout.maxRegions else {
            throw .tooManyRegions(count: regions.count, max: layout.maxRegions)
        }
        guard digest.count == layout.digestSize else {
            throw .digestSize(count: digest.count, expected: layout.digestSize)
        }
        let base = Int(symbol)
        var out = bytes
        func put(_ offset: Int, _ value: UInt64) {
            for i in 0..<8 { out[base + offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        put(layout.entry, entry)
        put(layout.entryArg, entryArg)
        put(layout.nrRegions, UInt64(regions.count))
        for (i, r) in regions.enumerated() {
            put(layout.regionStartOffset(i), r.start)
            put(layout.regionLengthOffset(i), r.length)
        }
        out.replaceSubrange(base + layout.digest..<base + layout.digest + layout.digestSize, with: digest)
        return out
    }
}
