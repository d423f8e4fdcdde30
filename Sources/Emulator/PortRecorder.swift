import KexecModel

/// The empty ISA bus behind the modelled devices, with a record of what the guest tried there:
/// every port no device claims reads all ones (no device drives the bus) and ignores writes, and
/// the first accesses are kept, in order, as evidence of which devices the next kernel probes.
///
/// Contract: attach it after every other port device (the bus asks devices in attach order).
public final class PortRecorder: PortDevice {
    public var ports: ClosedRange<UInt16> { 0...0xffff }
    /// "in 0x61/1", "out 0x43/1 ← 0x34" … in order of first sight, at most `limit` entries.
    public private(set) var accesses: [String] = []
    public let limit: Int
    private var seen: Set<String> = []

    public init(limit: Int = 64) { self.limit = limit }

    public func portIn(_ port: UInt16, size: Int) -> UInt32 {
        note("in \(hex(UInt64(port)))/\(size)")
        return size == 1 ? 0xff : size == 2 ? 0xffff : ~0
    }

    public func portOut(_ port: UInt16, size: Int, value: UInt32) {
        note("out \(hex(UInt64(port)))/\(size)")
    }

    private func note(_ what: String) {
        guard accesses.count < limit, seen.insert(what).inserted else { return }
        accesses.append(what)
    }
}
