import Foundation
import KexecModel

/// Sparse guest physical memory: only the blocks a run needs, each backed by host memory
/// (anonymous mmap, so untouched parts cost nothing) and handed to the engine in place with
/// uc_mem_map_ptr. The host reads and verifies guest memory through the same pointers: no copies.
public final class GuestMemory {
    public struct Block {
        public let range: AddressRange
        public let pointer: UnsafeMutableRawPointer
        public let label: String
        public var size: Int { Int(range.size.raw) }
    }

    public enum Failure: Error, CustomStringConvertible {
        case misaligned(String, PhysAddr, ByteCount)
        case overlap(String, AddressRange, String)
        case outOfHostMemory(String, ByteCount)
        case tooLarge(String, ByteCount)
        public var description: String {
            switch self {
            case .misaligned(let l, let a, let s): return "guest block \(l) at \(a) size \(s) is not 4 KiB aligned"
            case .overlap(let l, let r, let o): return "guest block \(l) \(r) overlaps block \(o)"
            case .outOfHostMemory(let l, let s): return "no host memory for guest block \(l) (\(s))"
            case .tooLarge(let l, let s): return "guest block \(l) is too large to back (\(s))"
            }
        }
    }

    /// Sorted by start address.
    public private(set) var blocks: [Block] = []
    /// Called when a block is added after the engine was attached (on-demand backing).
    var onAdd: ((Block) -> Void)?
    /// Bytes of host address space reserved for guest blocks.
    public private(set) var reservedBytes: UInt64 = 0

    public init() {}

    deinit {
        for b in blocks { munmap(b.pointer, b.size) }
    }

    /// Backs [start, start+size) with zero-filled host memory. Both must be 4 KiB aligned.
    @discardableResult
    public func add(start: PhysAddr, size: ByteCount, label: String) throws(Failure) -> Block {
        guard start.isAligned(kexecPageSize), size.raw > 0, size.raw % kexecPageSize.raw == 0,
            let range = AddressRange(start: start, size: size)
        else { throw .misaligned(label, start, size) }
        guard size.raw <= UInt64(Int.max) / 2 else { throw .tooLarge(label, size) }
        if let i = indexOverlapping(range) { throw .overlap(label, range, blocks[i].label) }
        let p = mmap(nil, Int(size.raw), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { throw .outOfHostMemory(label, size) }
        let b = Block(range: range, pointer: p, label: label)
        let at = blocks.firstIndex { $0.range.first > range.first } ?? blocks.endIndex
        blocks.insert(b, at: at)
        reservedBytes &+= size.raw
        onAdd?(b)
        return b
    }

    private func indexOverlapping(_ r: AddressRange) -> Int? {
        // blocks are few (tens to a few thousand); a binary search keeps lookups cheap.
        var lo = 0
        var hi = blocks.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            let b = blocks[mid].range
            if b.overlaps(r) { return mid }
            if r.last < b.first { hi = mid - 1 } else { lo = mid + 1 }
        }
        return nil
    }

    /// The block holding `a`.
    public func block(containing a: PhysAddr) -> Block? {
        var lo = 0
        var hi = blocks.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            let b = blocks[mid].range
            if a < b.first {
                hi = mid - 1
            } else if a > b.last {
                lo = mid + 1
            } else {
                return blocks[mid]
            }
        }
        return nil
    }

    public func isBacked(_ a: PhysAddr) -> Bool { block(containing: a) != nil }

    /// Host pointer for [a, a+len) when it lies inside one block.
    public func pointer(_ a: PhysAddr, length: Int) -> UnsafeMutableRawPointer? {
        guard let b = block(containing: a) else { return nil }
        let off = Int(a.raw - b.range.first.raw)
        guard length >= 0, off + length <= b.size else { return nil }
        return b.pointer + off
    }

    public func read64(_ a: PhysAddr) -> UInt64? {
        guard let p = pointer(a, length: 8) else { return nil }
        return UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
    }

    public func write64(_ a: PhysAddr, _ v: UInt64) -> Bool {
        guard let p = pointer(a, length: 8) else { return false }
        p.storeBytes(of: v.littleEndian, as: UInt64.self)
        return true
    }

    /// Copies bytes in; the range must be backed (may span adjacent blocks).
    public func write(_ a: PhysAddr, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var addr = a
        var done = 0
        while done < bytes.count {
            guard let b = block(containing: addr) else { return false }
            let off = Int(addr.raw - b.range.first.raw)
            let n = min(bytes.count - done, b.size - off)
            (b.pointer + off).copyMemory(from: bytes.baseAddress! + done, byteCount: n)
            done += n
            addr = PhysAddr(addr.raw &+ UInt64(n))
        }
        return true
    }

    public func write(_ a: PhysAddr, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { write(a, $0) }
    }

    public func read(_ a: PhysAddr, count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var addr = a
        var done = 0
        while done < count {
            guard let b = block(containing: addr) else { return nil }
            let off = Int(addr.raw - b.range.first.raw)
            let n = min(count - done, b.size - off)
            out.withUnsafeMutableBytes { dst in
                (dst.baseAddress! + done).copyMemory(from: b.pointer + off, byteCount: n)
            }
            done += n
            addr = PhysAddr(addr.raw &+ UInt64(n))
        }
        return out
    }
}
