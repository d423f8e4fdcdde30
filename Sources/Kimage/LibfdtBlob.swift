/// A device tree blob edited the way kexec-tools edits one: the libfdt it bundles
/// (kexec/libfdt/fdt_rw.c, fdt.c of kexec-tools 2.0.25) driven by kexec/dt-ops.c and
/// kexec/arch/arm64/kexec-arm64.c setup_2nd_dtb. Only what changes the blob's bytes and size is
/// modelled, on the blob itself:
/// - open_into + pack (`pack`): header (40 bytes), memory reservation block, structure block,
///   strings block, back to back; totalsize their sum;
/// - setprop: an existing property is resized in place (its value padded to 4 bytes); a new one
///   (12 bytes + value padded to 4) goes first in its node, and its name is appended to the strings
///   block unless some string there already ends with it (_fdt_find_string matches any suffix);
/// - delprop: the property's bytes leave the structure block; the blob's totalsize does not change
///   until the next pack;
/// - add_subnode: BEGIN_NODE, the name, END_NODE after the parent's properties.
/// NOP tags stay where they are, as libfdt leaves them.
public struct LibfdtBlob: Sendable, Equatable {
    static let beginNode: UInt32 = 1
    static let endNode: UInt32 = 2
    static let prop: UInt32 = 3
    static let nop: UInt32 = 4
    static let end: UInt32 = 9
    static let headerSize = 40

    public private(set) var reservations: [UInt8]
    public private(set) var structure: [UInt8]
    public private(set) var strings: [UInt8]
    /// fdt_totalsize: the packed size after `pack`, unchanged by `deleteProperty`.
    public private(set) var totalSize: Int
    public var bootCpuidPhys: UInt32

    /// Why a blob cannot be edited (fdt_check_header and the walks' errors).
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case badHeader(String)
        case badStructure(offset: Int)
        public var description: String {
            switch self {
            case .badHeader(let m): return "device tree header: \(m)"
            case .badStructure(let o): return "device tree structure block broken at offset \(o)"
            }
        }
    }

    private static func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
    private static func put32(_ v: UInt32) -> [UInt8] {
        [
            UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8),
            UInt8(truncatingIfNeeded: v),
        ]
    }
    static func tagAlign(_ n: Int) -> Int { (n + 3) & ~3 }

    /// Reads the blob's blocks (version 16 or 17); the structure and strings blocks are copied as
    /// they are.
    public init(_ blob: [UInt8]) throws(Failure) {
        guard blob.count >= Self.headerSize, Self.be32(blob, 0) == 0xd00d_feed else {
            throw .badHeader("no FDT magic")
        }
        let total = Int(Self.be32(blob, 4))
        let offStruct = Int(Self.be32(blob, 8))
        let offStrings = Int(Self.be32(blob, 12))
        let offRsv = Int(Self.be32(blob, 16))
        let version = Self.be32(blob, 20)
        let sizeStrings = Int(Self.be32(blob, 32))
        guard version >= 16, total <= blob.count, total >= Self.headerSize else {
            throw .badHeader("version \(version), totalsize \(total) of a \(blob.count)-byte blob")
        }
        var sizeStruct = version >= 17 ? Int(Self.be32(blob, 36)) : total - offStruct
        guard offStruct <= total, offStrings <= total, offRsv <= total, sizeStruct <= total - offStruct,
            sizeStrings <= total - offStrings
        else { throw .badHeader("a block lies outside totalsize \(total)") }
        var rsvEnd = offRsv
        while true {
            guard rsvEnd + 16 <= total else { throw .badHeader("memory reservation block unterminated") }
            let zero = blob[rsvEnd..<rsvEnd + 16].allSatisfy { $0 == 0 }
            rsvEnd += 16
            if zero { break }
        }
        if version < 17 {
            // Walk to FDT_END for the structure size (fdt_open_into does the same).
            sizeStruct = try Self.structureLength(Array(blob[offStruct..<total]))
        }
        reservations = Array(blob[offRsv..<rsvEnd])
        structure = Array(blob[offStruct..<offStruct + sizeStruct])
        strings = Array(blob[offStrings..<offStrings + sizeStrings])
        totalSize = total
        bootCpuidPhys = Self.be32(blob, 28)
    }

    private static func structureLength(_ s: [UInt8]) throws(Failure) -> Int {
        var at = 0
        while at + 4 <= s.count {
            let t = be32(s, at)
            at += 4
            switch t {
            case beginNode:
                guard let nul = s[at...].firstIndex(of: 0) else { throw .badStructure(offset: at) }
                at = tagAlign(nul + 1)
            case prop:
                guard at + 8 <= s.count else { throw .badStructure(offset: at) }
                at = tagAlign(at + 8 + Int(be32(s, at)))
            case endNode, nop: continue
            case end: return at
            default: throw .badStructure(offset: at - 4)
            }
        }
        throw .badStructure(offset: at)
    }

    /// The blob as libfdt leaves it after fdt_pack (totalsize = the blocks' sum).
    public var packedBytes: [UInt8] {
        let offRsv = Self.headerSize
        let offStruct = offRsv + reservations.count
        let offStrings = offStruct + structure.count
        let total = offStrings + strings.count
        var out: [UInt8] = []
        for v in [
            0xd00d_feed, UInt32(total), UInt32(offStruct), UInt32(offStrings), UInt32(offRsv), 17, 16, bootCpuidPhys,
            UInt32(strings.count), UInt32(structure.count),
        ] as [UInt32] {
            out += Self.put32(v)
        }
        return out + reservations + structure + strings
    }

    /// fdt_pack.
    public mutating func pack() { totalSize = Self.headerSize + reservations.count + structure.count + strings.count }

    // MARK: Nodes and properties

    /// Offset of a top-level node's BEGIN_NODE tag (`name`, or `name@unit`), nil when absent.
    func topLevelNode(_ name: String) throws(Failure) -> Int? {
        var at = 0
        var depth = 0
        while at + 4 <= structure.count {
            let tagAt = at
            let t = Self.be32(structure, at)
            at += 4
            switch t {
            case Self.beginNode:
                guard let nul = structure[at...].firstIndex(of: 0) else { throw .badStructure(offset: at) }
                let n = String(decoding: structure[at..<nul], as: UTF8.self)
                at = Self.tagAlign(nul + 1)
                depth += 1
                if depth == 2 && (n == name || n.hasPrefix(name + "@")) { return tagAt }
            case Self.prop:
                guard at + 8 <= structure.count else { throw .badStructure(offset: at) }
                at = Self.tagAlign(at + 8 + Int(Self.be32(structure, at)))
            case Self.endNode: depth -= 1
            case Self.nop: continue
            case Self.end: return nil
            default: throw .badStructure(offset: tagAt)
            }
        }
        throw .badStructure(offset: at)
    }

    /// Where the node's properties start (just past BEGIN_NODE and its name).
    private func propertiesStart(_ node: Int) throws(Failure) -> Int {
        guard let nul = structure[(node + 4)...].firstIndex(of: 0) else { throw .badStructure(offset: node) }
        return Self.tagAlign(nul + 1)
    }

    /// The node's property `name`: its tag offset and value length.
    func property(_ node: Int, _ name: String) throws(Failure) -> (offset: Int, length: Int)? {
        var at = try propertiesStart(node)
        while at + 4 <= structure.count {
            let t = Self.be32(structure, at)
            if t == Self.nop {
                at += 4
                continue
            }
            guard t == Self.prop else { return nil }
            guard at + 12 <= structure.count else { throw .badStructure(offset: at) }
            let len = Int(Self.be32(structure, at + 4))
            if stringAt(Int(Self.be32(structure, at + 8))) == name { return (at, len) }
            at = Self.tagAlign(at + 12 + len)
        }
        throw .badStructure(offset: at)
    }

    private func stringAt(_ off: Int) -> String? {
        guard off < strings.count, let nul = strings[off...].firstIndex(of: 0) else { return nil }
        return String(decoding: strings[off..<nul], as: UTF8.self)
    }

    /// _fdt_find_add_string: the offset of a string ending with `name` + NUL, else append it.
    private mutating func findAddString(_ name: String) -> Int {
        let s = Array(name.utf8) + [0]
        if strings.count >= s.count {
            for p in 0...(strings.count - s.count) where Array(strings[p..<p + s.count]) == s { return p }
        }
        strings += s
        return strings.count - s.count
    }

    /// fdt_setprop on the top-level node `node` (added first when missing, as dt-ops.c does for
    /// /chosen). The value is written as given, padded with zeros to a multiple of 4.
    public mutating func setProperty(node: String, _ name: String, _ value: [UInt8]) throws(Failure) {
        let at: Int
        if let n = try topLevelNode(node) {
            at = n
        } else {
            at = try addTopLevelNode(node)
        }
        let padded = value + [UInt8](repeating: 0, count: Self.tagAlign(value.count) - value.count)
        if let p = try property(at, name) {
            let old = Self.tagAlign(p.length)
            structure.replaceSubrange(p.offset + 4..<p.offset + 8, with: Self.put32(UInt32(value.count)))
            structure.replaceSubrange(p.offset + 12..<p.offset + 12 + old, with: padded)
        } else {
            let off = findAddString(name)
            let entry =
                Self.put32(Self.prop) + Self.put32(UInt32(value.count)) + Self.put32(UInt32(off)) + padded
            structure.insert(contentsOf: entry, at: try propertiesStart(at))
        }
    }

    /// fdt_delprop; true when the property was there.
    @discardableResult
    public mutating func deleteProperty(node: String, _ name: String) throws(Failure) -> Bool {
        guard let n = try topLevelNode(node), let p = try property(n, name) else { return false }
        structure.removeSubrange(p.offset..<p.offset + 12 + Self.tagAlign(p.length))
        return true
    }

    /// The value of a top-level node's property, nil when absent.
    public func value(node: String, _ name: String) throws(Failure) -> [UInt8]? {
        guard let n = try topLevelNode(node), let p = try property(n, name) else { return nil }
        return Array(structure[p.offset + 12..<p.offset + 12 + p.length])
    }

    /// fdt_add_subnode(fdt, 0, name): after the root's properties.
    private mutating func addTopLevelNode(_ name: String) throws(Failure) -> Int {
        var at = try propertiesStart(0)
        while at + 4 <= structure.count {
            let t = Self.be32(structure, at)
            if t == Self.prop {
                at = Self.tagAlign(at + 12 + Int(Self.be32(structure, at + 4)))
            } else if t == Self.nop {
                at += 4
            } else {
                break
            }
        }
        let nameBytes = Array(name.utf8) + [0]
        let padded = nameBytes + [UInt8](repeating: 0, count: Self.tagAlign(nameBytes.count) - nameBytes.count)
        structure.insert(contentsOf: Self.put32(Self.beginNode) + padded + Self.put32(Self.endNode), at: at)
        return at
    }
}
