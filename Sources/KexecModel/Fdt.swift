// A flattened device tree (FDT, "DTB"): the blob an arm64 kernel gets in x0.
// Format (Devicetree Specification, chapter 5; scripts/dtc/libfdt/fdt.h), all integers big endian:
//   header, 10 × u32: magic 0xd00dfeed, totalsize, off_dt_struct, off_dt_strings, off_mem_rsvmap,
//                     version (17), last_comp_version (16), boot_cpuid_phys, size_dt_strings,
//                     size_dt_struct
//   memory reservation block (8-aligned): (u64 address, u64 size) pairs ending with (0, 0)
//   structure block (4-aligned): FDT_BEGIN_NODE 1 + name NUL padded to 4, FDT_PROP 3 + u32 len +
//                     u32 nameoff + value padded to 4, FDT_END_NODE 2, FDT_NOP 4, FDT_END 9
//   strings block: NUL-terminated property names, referenced by nameoff
// kexec-sim's own encoder and reader (Kimage/Dtb.swift builds the DTB a kexec'd arm64 kernel gets;
// Importers/DtbImporter.swift reads /memory nodes from one); the reader checks every offset.

/// One property: a name and its raw value.
public struct FdtProperty: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]
    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }
    /// A string property (value NUL-terminated).
    public static func string(_ name: String, _ s: String) -> FdtProperty { FdtProperty(name, Array(s.utf8) + [0]) }
    /// A string-list property ("a\0b\0").
    public static func strings(_ name: String, _ list: [String]) -> FdtProperty {
        FdtProperty(name, list.flatMap { Array($0.utf8) + [0] })
    }
    public static func u32(_ name: String, _ v: UInt32) -> FdtProperty { FdtProperty(name, bigEndian(UInt64(v), 4)) }
    public static func u64(_ name: String, _ v: UInt64) -> FdtProperty { FdtProperty(name, bigEndian(v, 8)) }
    /// (address, size) pairs with 2 address cells and 2 size cells, as `reg` under a root with
    /// #address-cells = #size-cells = 2.
    public static func ranges(_ name: String, _ pairs: [(UInt64, UInt64)]) -> FdtProperty {
        FdtProperty(name, pairs.flatMap { bigEndian($0.0, 8) + bigEndian($0.1, 8) })
    }
    public static func empty(_ name: String) -> FdtProperty { FdtProperty(name, []) }

    /// The value as one string: the bytes before the first NUL, when the value ends with NUL.
    public var stringValue: String? {
        guard let last = value.last, last == 0, let nul = value.firstIndex(of: 0) else { return nil }
        return String(decoding: value[..<nul], as: UTF8.self)
    }
    public var stringListValue: [String]? {
        guard let last = value.last, last == 0 else { return nil }
        return value.dropLast().split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
    }
    public var u32Value: UInt32? { value.count == 4 ? UInt32(readBigEndian(value[...])) : nil }
    public var u64Value: UInt64? { value.count == 8 ? readBigEndian(value[...]) : nil }
    /// The value as (address, size) pairs of 2 + 2 cells; nil when its length is not a multiple of 16.
    public var rangesValue: [(UInt64, UInt64)]? {
        guard value.count % 16 == 0 else { return nil }
        return stride(from: 0, to: value.count, by: 16).map { i in
            (readBigEndian(value[i..<i + 8]), readBigEndian(value[i + 8..<i + 16]))
        }
    }
}

/// A node: name ("" for the root, "memory@80000000" …), properties, then child nodes.
public struct FdtNode: Sendable, Equatable {
    public var name: String
    public var properties: [FdtProperty]
    public var children: [FdtNode]
    public init(_ name: String, properties: [FdtProperty] = [], children: [FdtNode] = []) {
        self.name = name
        self.properties = properties
        self.children = children
    }
    public func property(_ name: String) -> FdtProperty? { properties.first { $0.name == name } }
    public func child(_ name: String) -> FdtNode? { children.first { $0.name == name } }
    /// The node at a path from this one: "/chosen", "/memory@40000000"; "/" is this node.
    public func node(at path: String) -> FdtNode? {
        var n = self
        for part in path.split(separator: "/") {
            guard let c = n.child(String(part)) else { return nil }
            n = c
        }
        return n
    }
}

/// A memory reservation block entry.
public struct FdtReservation: Sendable, Equatable {
    public var address: UInt64
    public var size: UInt64
    public init(address: UInt64, size: UInt64) {
        self.address = address
        self.size = size
    }
}

/// A device tree: the root node, the memory reservations and the boot CPU.
public struct Fdt: Sendable, Equatable {
    public static let magic: UInt32 = 0xd00d_feed
    public static let version: UInt32 = 17
    public static let lastCompatibleVersion: UInt32 = 16
    public static let headerSize = 40
    /// Deepest node nesting the reader accepts.
    public static let maxDepth = 64

    static let tokenBeginNode: UInt32 = 1
    static let tokenEndNode: UInt32 = 2
    static let tokenProp: UInt32 = 3
    static let tokenNop: UInt32 = 4
    static let tokenEnd: UInt32 = 9

    public var root: FdtNode
    public var reservations: [FdtReservation]
    public var bootCpuidPhys: UInt32

    public init(root: FdtNode, reservations: [FdtReservation] = [], bootCpuidPhys: UInt32 = 0) {
        self.root = root
        self.reservations = reservations
        self.bootCpuidPhys = bootCpuidPhys
    }

    /// The FDT v17 blob. Names are written up to their first NUL (a name cannot hold one).
    public func encode() -> [UInt8] {
        var strings: [UInt8] = []
        var nameOffsets: [String: UInt32] = [:]
        func nameOffset(_ name: String) -> UInt32 {
            if let o = nameOffsets[name] { return o }
            let o = UInt32(strings.count)
            strings += cString(name)
            nameOffsets[name] = o
            return o
        }
        var structure: [UInt8] = []
        func put32(_ v: UInt32) { structure += bigEndian(UInt64(v), 4) }
        func pad() { while structure.count % 4 != 0 { structure.append(0) } }
        // Iterative walk: no recursion depth to worry about for deep trees.
        var stack: [(node: FdtNode, nextChild: Int)] = []
        func open(_ n: FdtNode) {
            put32(Self.tokenBeginNode)
            structure += cString(n.name)
            pad()
            for p in n.properties {
                put32(Self.tokenProp)
                put32(UInt32(truncatingIfNeeded: p.value.count))
                put32(nameOffset(p.name))
                structure += p.value
                pad()
            }
            stack.append((n, 0))
        }
        open(root)
        while let top = stack.last {
            if top.nextChild < top.node.children.count {
                stack[stack.count - 1].nextChild += 1
                open(top.node.children[top.nextChild])
            } else {
                put32(Self.tokenEndNode)
                stack.removeLast()
            }
        }
        put32(Self.tokenEnd)

        var rsv: [UInt8] = []
        for r in reservations { rsv += bigEndian(r.address, 8) + bigEndian(r.size, 8) }
        rsv += [UInt8](repeating: 0, count: 16)

        let offRsv = Self.headerSize  // 40: 8-aligned
        let offStruct = offRsv + rsv.count  // 4-aligned (16-byte entries)
        let offStrings = offStruct + structure.count
        let total = offStrings + strings.count
        var out: [UInt8] = []
        out.reserveCapacity(total)
        for v in [
            Self.magic, UInt32(total), UInt32(offStruct), UInt32(offStrings), UInt32(offRsv), Self.version,
            Self.lastCompatibleVersion, bootCpuidPhys, UInt32(strings.count), UInt32(structure.count),
        ] {
            out += bigEndian(UInt64(v), 4)
        }
        out += rsv
        out += structure
        out += strings
        return out
    }

    /// Reads a blob back, checking the header, every block's bounds and alignment, every token,
    /// name and string offset. Never traps on hostile input: every failure is a `DtbError`.
    public static func decode(_ blob: [UInt8]) throws(DtbError) -> Fdt {
        guard blob.count >= headerSize else { throw .truncatedHeader(length: blob.count) }
        func u32(_ off: Int) -> UInt32 { UInt32(readBigEndian(blob[off..<off + 4])) }
        let magic = u32(0)
        guard magic == Self.magic else { throw .badMagic(magic) }
        let total = u32(4)
        let offStruct = u32(8)
        let offStrings = u32(12)
        let offRsv = u32(16)
        let version = u32(20)
        let lastComp = u32(24)
        let bootCpu = u32(28)
        let sizeStrings = u32(32)
        guard Int(total) >= headerSize && Int(total) <= blob.count else {
            throw .totalSizeMismatch(totalsize: total, length: blob.count)
        }
        // Version 16 is the oldest with the layout read here; 17 added size_dt_struct.
        guard version >= 16 && lastComp <= Self.version else {
            throw .unsupportedVersion(version: version, lastCompatible: lastComp)
        }
        let sizeStruct = version >= 17 ? u32(36) : (offStruct <= total ? total - offStruct : 0)
        func block(_ name: String, _ off: UInt32, _ size: UInt32, align: UInt32) throws(DtbError) -> Range<Int> {
            guard off % align == 0 else { throw .misaligned(block: name, offset: off) }
            let (end, o) = off.addingReportingOverflow(size)
            guard !o, off >= UInt32(headerSize), end <= total else {
                throw .blockOutOfBounds(block: name, offset: off, size: size, totalsize: total)
            }
            return Int(off)..<Int(end)
        }
        let structRange = try block("structure", offStruct, sizeStruct, align: 4)
        let stringsRange = try block("strings", offStrings, sizeStrings, align: 1)
        _ = try block("memory reservation", offRsv, 16, align: 8)

        // Memory reservations: pairs up to (0, 0), inside the blob.
        var reservations: [FdtReservation] = []
        var at = Int(offRsv)
        while true {
            guard at + 16 <= Int(total) else { throw .reservationUnterminated }
            let a = readBigEndian(blob[at..<at + 8])
            let s = readBigEndian(blob[at + 8..<at + 16])
            at += 16
            if a == 0 && s == 0 { break }
            reservations.append(FdtReservation(address: a, size: s))
        }

        func name(at off: UInt32) throws(DtbError) -> String {
            guard off < sizeStrings else { throw .badStringOffset(nameoff: off) }
            let start = stringsRange.lowerBound + Int(off)
            guard let nul = blob[start..<stringsRange.upperBound].firstIndex(of: 0) else {
                throw .badStringOffset(nameoff: off)
            }
            return String(decoding: blob[start..<nul], as: UTF8.self)
        }

        // Structure block walk with an explicit stack.
        var pos = structRange.lowerBound
        let end = structRange.upperBound
        func token() throws(DtbError) -> UInt32 {
            guard pos + 4 <= end else { throw .truncatedStructure(offset: pos) }
            let t = UInt32(readBigEndian(blob[pos..<pos + 4]))
            pos += 4
            return t
        }
        func aligned4(_ v: Int) -> Int { (v + 3) & ~3 }
        var stack: [FdtNode] = []
        var root: FdtNode?
        while true {
            let tokenAt = pos
            let t = try token()
            switch t {
            case Self.tokenNop:
                continue
            case Self.tokenBeginNode:
                guard root == nil else { throw .unexpectedToken(t, offset: tokenAt) }
                guard stack.count < Self.maxDepth else { throw .tooDeep(offset: tokenAt) }
                guard let nul = blob[pos..<end].firstIndex(of: 0) else { throw .badNodeName(offset: pos) }
                let n = String(decoding: blob[pos..<nul], as: UTF8.self)
                pos = aligned4(nul + 1)
                guard pos <= end else { throw .truncatedStructure(offset: nul) }
                stack.append(FdtNode(n))
            case Self.tokenProp:
                guard !stack.isEmpty else { throw .propertyOutsideNode(offset: tokenAt) }
                guard stack[stack.count - 1].children.isEmpty else { throw .propertyAfterSubnode(offset: tokenAt) }
                let len = try token()
                let nameoff = try token()
                guard Int(len) <= end - pos else { throw .truncatedStructure(offset: pos) }
                let value = Array(blob[pos..<pos + Int(len)])
                pos = aligned4(pos + Int(len))
                guard pos <= end else { throw .truncatedStructure(offset: pos) }
                stack[stack.count - 1].properties.append(FdtProperty(try name(at: nameoff), value))
            case Self.tokenEndNode:
                guard let done = stack.popLast() else { throw .unbalanced(offset: tokenAt) }
                if stack.isEmpty {
                    root = done
                } else {
                    stack[stack.count - 1].children.append(done)
                }
            case Self.tokenEnd:
                guard stack.isEmpty, let root else { throw .unbalanced(offset: tokenAt) }
                return Fdt(root: root, reservations: reservations, bootCpuidPhys: bootCpu)
            default:
                throw .unexpectedToken(t, offset: tokenAt)
            }
        }
    }
}

/// Why a blob is not a device tree this reader accepts; offsets are byte offsets in the blob.
public enum DtbError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncatedHeader(length: Int)
    case badMagic(UInt32)
    case totalSizeMismatch(totalsize: UInt32, length: Int)
    case unsupportedVersion(version: UInt32, lastCompatible: UInt32)
    case misaligned(block: String, offset: UInt32)
    case blockOutOfBounds(block: String, offset: UInt32, size: UInt32, totalsize: UInt32)
    case reservationUnterminated
    case truncatedStructure(offset: Int)
    case unexpectedToken(UInt32, offset: Int)
    case badNodeName(offset: Int)
    case badStringOffset(nameoff: UInt32)
    case unbalanced(offset: Int)
    case tooDeep(offset: Int)
    case propertyOutsideNode(offset: Int)
    case propertyAfterSubnode(offset: Int)

    public var description: String {
        switch self {
        case .truncatedHeader(let n): return "blob of \(n) bytes is shorter than the 40-byte FDT header"
        case .badMagic(let m): return "not a device tree: magic \(hex(UInt64(m))), not 0xd00dfeed"
        case .totalSizeMismatch(let t, let n):
            return "header totalsize \(t) does not fit the \(n)-byte blob (or is smaller than the header)"
        case .unsupportedVersion(let v, let l):
            return "FDT version \(v) (last compatible \(l)): this reader reads versions 16 and 17"
        case .misaligned(let b, let o): return "\(b) block at \(hex(UInt64(o))) is misaligned"
        case .blockOutOfBounds(let b, let o, let s, let t):
            return "\(b) block [\(hex(UInt64(o))), +\(hex(UInt64(s)))) is outside the header and totalsize \(t)"
        case .reservationUnterminated: return "memory reservation block runs past the blob without a (0, 0) entry"
        case .truncatedStructure(let o): return "structure block ends inside a token or value at \(hex(UInt64(o)))"
        case .unexpectedToken(let t, let o): return "unexpected token \(hex(UInt64(t))) at \(hex(UInt64(o)))"
        case .badNodeName(let o): return "node name at \(hex(UInt64(o))) has no NUL inside the structure block"
        case .badStringOffset(let n):
            return "property name offset \(hex(UInt64(n))) is not a string in the strings block"
        case .unbalanced(let o): return "FDT_BEGIN_NODE / FDT_END_NODE do not balance at \(hex(UInt64(o)))"
        case .tooDeep(let o): return "nodes nest deeper than \(Fdt.maxDepth) at \(hex(UInt64(o)))"
        case .propertyOutsideNode(let o): return "property at \(hex(UInt64(o))) is outside any node"
        case .propertyAfterSubnode(let o):
            return "property at \(hex(UInt64(o))) follows a subnode (properties come first)"
        }
    }
}

func bigEndian(_ v: UInt64, _ n: Int) -> [UInt8] {
    (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64(n - 1 - $0))) }
}

func readBigEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.reduce(0) { ($0 << 8) | UInt64($1) }
}

/// A name as FDT stores it: up to its first NUL, then NUL.
func cString(_ s: String) -> [UInt8] {
    Array(s.utf8.prefix { $0 != 0 }) + [0]
}
