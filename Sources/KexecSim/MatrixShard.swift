import Foundation

// Sharding the regression matrix: a stable hash of each run's key picks its shard.

/// FNV-1a, 64 bits: a hash that is the same in every process and on every machine (Swift's
/// Hasher is seeded per process), for sharding.
public enum FNV1a {
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    public static let prime: UInt64 = 0x100_0000_01b3
    public static func hash64(_ s: String) -> UInt64 {
        var h = offsetBasis
        for b in s.utf8 {
            h ^= UInt64(b)
            h = h &* prime
        }
        return h
    }
}

/// `--shard K/N` (1-based K): the runs whose key hashes to K-1 modulo N.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int
    public init?(index: Int, count: Int) {
        guard count >= 1, index >= 1, index <= count else { return nil }
        self.index = index
        self.count = count
    }
    /// Parses "K/N".
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0].trimmingCharacters(in: .whitespaces)),
            let n = Int(parts[1].trimmingCharacters(in: .whitespaces))
        else { return nil }
        self.init(index: k, count: n)
    }
    public var description: String { "\(index)/\(count)" }
    public func contains(key: String) -> Bool {
        FNV1a.hash64(key) % UInt64(count) == UInt64(index - 1)
    }
    public func contains(_ job: MatrixJob) -> Bool { contains(key: job.shardKey) }
}
