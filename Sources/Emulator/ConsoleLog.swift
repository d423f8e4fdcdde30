/// What a guest printed on its early console, in lines, as the UART models collect it.
///
/// Contract: bytes arrive one at a time (`put`); a line ends at LF (a CR before it is dropped).
/// `onLine` is called with every completed line, on the engine's thread, while the guest runs
/// (a follower uses it to stop at a milestone). The text is capped at `limit` bytes (a guest that
/// prints forever must not eat the host): past it, bytes are counted but not kept.
public final class ConsoleLog {
    public private(set) var lines: [String] = []
    private var current: [UInt8] = []
    public private(set) var bytesSeen = 0
    public let limit: Int
    public var onLine: ((String) -> Void)?

    public init(limit: Int = 4 << 20) { self.limit = limit }

    public func put(_ byte: UInt8) {
        bytesSeen += 1
        guard bytesSeen <= limit else { return }
        switch byte {
        case 0x0a:
            let line = String(decoding: current, as: UTF8.self)
            current.removeAll(keepingCapacity: true)
            lines.append(line)
            onLine?(line)
        case 0x0d: break
        default: current.append(byte)
        }
    }

    /// Every complete line, then the partial one (if any).
    public var text: String {
        (lines + (current.isEmpty ? [] : [String(decoding: current, as: UTF8.self)])).joined(separator: "\n")
    }

    /// The last `n` lines (the partial one included).
    public func tail(_ n: Int) -> [String] {
        let all = lines + (current.isEmpty ? [] : [String(decoding: current, as: UTF8.self)])
        return Array(all.suffix(n))
    }
}
