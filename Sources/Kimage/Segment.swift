import KexecModel

/// The errno a kexec syscall returns when the kernel refuses a load.
public enum Errno: String, Sendable, Equatable, CaseIterable {
    case EINVAL, EADDRNOTAVAIL, ENOMEM, EBUSY
    /// Not an image the loader knows (kexec_file_load's probe, e.g. bzImage64_probe).
    case ENOEXEC
    /// kexec-tools gave up before making the syscall (kexec/kexec.h EFAILED, or one of its die()s:
    /// locate_hole found no hole, a segment outside its memory ranges, overlapping segments).
    case EFAILED
}

/// A refusal, as the kernel would give it, with the check that failed.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var errno: Errno
    public var check: String
    public var detail: String
    public init(_ errno: Errno, check: String, _ detail: String) {
        self.errno = errno
        self.check = check
        self.detail = detail
    }
    public var description: String { "\(errno.rawValue) from \(check): \(detail)" }
}

/// What a loader asks kexec_add_buffer for (struct kexec_buf).
public struct BufferRequest: Sendable {
    public var name: String
    public var memsz: ByteCount
    public var align: ByteCount
    public var bufMin: PhysAddr
    public var bufMax: PhysAddr
    /// kexec_buf.top_down when the loader sets it per buffer (arm64's image_load and
    /// load_other_segments do); nil takes the placer's order.
    public var topDown: Bool?
    public init(
        name: String, memsz: ByteCount, align: ByteCount, bufMin: PhysAddr, bufMax: PhysAddr = PhysAddr(.max),
        topDown: Bool? = nil
    ) {
        self.name = name
        self.memsz = memsz
        self.align = align
        self.bufMin = bufMin
        self.bufMax = bufMax
        self.topDown = topDown
    }
    /// A request for the segment `role` stands for, named by its label.
    public init(
        role: SegmentRole, memsz: ByteCount, align: ByteCount, bufMin: PhysAddr, bufMax: PhysAddr = PhysAddr(.max),
        topDown: Bool? = nil
    ) {
        self.init(name: role.name, memsz: memsz, align: align, bufMin: bufMin, bufMax: bufMax, topDown: topDown)
    }
}

/// A segment with its destination and contents (struct kexec_segment + the buffer).
public struct Segment: Sendable {
    /// What the segment is for; `name` and `isPurgatory` follow from it.
    public var role: SegmentRole
    public var mem: PhysAddr
    public var memsz: ByteCount
    /// The buffer; bytes past it up to memsz are zero. bytes.count is bufsz. Empty when the
    /// contents are `generated`.
    public var bytes: [UInt8]
    /// Contents produced on demand instead of held (a large synthetic payload): read them with
    /// `copyContents`, which serves both forms.
    public var generated: GeneratedContents?
    public var source: SourceLocation?
    /// Size of the buffer userspace passes; `bytes` holds it once contents are generated.
    public var bufsz: ByteCount
    public init(
        role: SegmentRole, mem: PhysAddr, memsz: ByteCount, bytes: [UInt8], bufsz: ByteCount? = nil,
        source: SourceLocation? = nil
    ) {
        self.role = role
        self.mem = mem
        self.memsz = memsz
        self.bytes = bytes
        self.bufsz = bufsz ?? ByteCount(UInt64(bytes.count))
        self.source = source
    }
    /// How many content bytes there are (the buffer's, or the generator's).
    public var contentCount: Int { generated?.count ?? bytes.count }

    /// Copies content bytes [offset, offset + dst.count) into `dst`; the range must lie within
    /// `contentCount`.
    public func copyContents(from offset: Int, into dst: UnsafeMutableRawBufferPointer) {
        guard dst.count > 0 else { return }
        precondition(offset >= 0 && offset + dst.count <= contentCount, "segment contents out of range")
        if let g = generated {
            g.fill(offset, dst)
        } else {
            bytes.withUnsafeBytes { dst.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: dst.count) }
        }
    }

    /// Calls `body` with content bytes [offset, offset + count): the held buffer in place, or the
    /// generator's bytes produced into `scratch` (grown as needed), so readers that only look at
    /// the bytes (digest, verification) never copy a held buffer.
    public func withContents<R>(
        from offset: Int, count: Int, scratch: inout [UInt8], _ body: (UnsafeRawBufferPointer) -> R
    ) -> R {
        precondition(offset >= 0 && count >= 0 && offset + count <= contentCount, "segment contents out of range")
        guard generated != nil else {
            return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
        }
        if scratch.count < count { scratch = [UInt8](repeating: 0, count: count) }
        return scratch.withUnsafeMutableBytes { buf in
            let part = UnsafeMutableRawBufferPointer(rebasing: buf[0..<count])
            copyContents(from: offset, into: part)
            return body(UnsafeRawBufferPointer(part))
        }
    }

    /// The role's label (`role.name`), as reports, evidence and the SVG show it.
    public var name: String { role.name }
    /// True for the purgatory segment: its digest is not taken and its bss may change.
    public var isPurgatory: Bool { role == .purgatory }
    /// [mem, mem+memsz); nil when empty or wrapping.
    public var range: AddressRange? { AddressRange(start: mem, size: memsz) }
}

/// Limits of the architecture that the checks use.
public struct ArchLimits: Sendable {
    /// KEXEC_DESTINATION_MEMORY_LIMIT + 1 (x86_64: MAXMEM, 2^46 with 4-level paging, 2^52 with 5-level).
    public var destinationLimit: UInt64
    public var segmentMax: Int
    public init(destinationLimit: UInt64, segmentMax: Int) {
        self.destinationLimit = destinationLimit
        self.segmentMax = segmentMax
    }
    /// arm64: destinations below the 48-bit physical address limit.
    public static let arm64 = ArchLimits(destinationLimit: 1 << 48, segmentMax: 16)
    public static func x86_64(fiveLevel: Bool) -> ArchLimits {
        ArchLimits(destinationLimit: fiveLevel ? 1 << 52 : 1 << 46, segmentMax: 16)
    }
}

/// A segment's contents given by a pure function of the offset: a synthetic payload of hundreds of
/// MiB is never held in host memory, only produced where it is read (guest layout, the digest,
/// verification), so a run holds the payload in guest memory alone.
public struct GeneratedContents: Sendable {
    public let count: Int
    /// Writes bytes [offset, offset + buffer.count) of the contents into the buffer.
    public let fill: @Sendable (_ offset: Int, _ into: UnsafeMutableRawBufferPointer) -> Void
    public init(count: Int, fill: @escaping @Sendable (Int, UnsafeMutableRawBufferPointer) -> Void) {
        self.count = count
        self.fill = fill
    }
}
