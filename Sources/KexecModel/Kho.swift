/// Kexec HandOver (KHO): what a fixture says about the first kernel's handover state
/// (`machine.kho`), decoded by FixtureWalker+Kho.swift.
///
/// KHO is mainline from v6.16 (kernel/kexec_handover.c, read in the stored torvalds/linux copy
/// 00c010e1, the 6.16 form with kho-v1, finalize and notifiers) and lives in
/// kernel/liveupdate/kexec_handover.c from 6.19 (read in the stored copy 019fc368, the 2026 form
/// with the kho-v2 radix tree). With `kho=on` the first kernel reserves scratch areas at boot
/// (kho_reserve_scratch), subsystems preserve pages (kho_preserve_folio / kho_preserve_pages), and
/// kexec_file_load hands the next kernel the KHO FDT and the scratch array.

/// Which scratch area an entry of the kho_scratch array is: kho_reserve_scratch allocates one
/// below ARCH_LOW_ADDRESS_LIMIT, one anywhere, then one per NUMA node with memory, in that order.
public enum KhoScratchKind: Sendable, Equatable, CustomStringConvertible {
    case lowmem
    case global
    case node(Int)

    public var description: String {
        switch self {
        case .lowmem: return "lowmem"
        case .global: return "global"
        case .node(let n): return "node\(n)"
        }
    }

    /// The kind of entry `index` of an array of `count` entries (lowmem, global, node0, node1, …).
    public static func ofEntry(_ index: Int) -> KhoScratchKind {
        switch index {
        case 0: return .lowmem
        case 1: return .global
        default: return .node(index - 2)
        }
    }
}

/// One entry of the kho_scratch array (struct kho_scratch { phys_addr_t addr; phys_addr_t size; },
/// include/linux/kexec_handover.h): a scratch area. `size` may be 0 (a scale too small to need
/// one: memblock still returns an address for it).
public struct KhoScratchArea: Sendable, Equatable, CustomStringConvertible {
    public var kind: KhoScratchKind
    public var addr: PhysAddr
    public var size: ByteCount

    public init(kind: KhoScratchKind, addr: PhysAddr, size: ByteCount) {
        self.kind = kind
        self.addr = addr
        self.size = size
    }

    /// [addr, addr + size); nil for an empty area.
    public var range: AddressRange? { AddressRange(start: addr, size: size) }

    /// sizeof(struct kho_scratch).
    public static let entrySize = 16

    public var description: String { "\(kind) \(hex(addr.raw))+\(formatSize(size.raw))" }
}

/// `kho_scratch=` of the first kernel (kernel/kexec_handover.c kho_parse_scratch_size): a scale in
/// percent of the kernel's memblock reservations (`N%`, the default 200 %), or explicit sizes for
/// the low area, the global area and each node's area (`lo,global,pernode`, memparse sizes).
public enum KhoScratchParameter: Sendable, Equatable, CustomStringConvertible {
    case scale(UInt32)
    case sizes(lowmem: ByteCount, global: ByteCount, perNode: ByteCount)

    /// scratch_scale's initial value.
    public static let `default` = KhoScratchParameter.scale(200)

    public var description: String {
        switch self {
        case .scale(let p): return "kho_scratch=\(p)%"
        case .sizes(let l, let g, let n):
            return "kho_scratch=\(Self.memparseText(l)),\(Self.memparseText(g)),\(Self.memparseText(n))"
        }
    }

    /// A size as a command line would give it (`64M`, `1G`, `0`).
    static func memparseText(_ s: ByteCount) -> String {
        let v = s.raw
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] where v != 0 && v % (1 << UInt64(shift)) == 0
        {
            return "\(v >> UInt64(shift))\(unit)"
        }
        return "\(v)"
    }

    /// Parses the value after `kho_scratch=` as the kernel does: `N%` (a decimal unsigned int,
    /// kstrtouint) or three memparse sizes separated by commas, fully consumed, not all zero.
    /// The 6.16 copy refuses any zero size; the 6.18-era and newer copies accept zeros as long as
    /// the total is not, and refuse trailing text (kexec-sim takes the newer rule).
    /// The kernel ignores a malformed value (early_param returns -EINVAL, the default stays);
    /// kexec-sim refuses it so the fixture says what it means.
    public static func parse(_ value: String) -> Result<KhoScratchParameter, KhoParameterError> {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty else { return .failure(.init("kho_scratch= has no value")) }
        if bytes.last == UInt8(ascii: "%") {
            // s_scale[11]: at most 10 digits before the '%'.
            let digits = bytes.dropLast()
            guard bytes.count <= 11, !digits.isEmpty, digits.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let n = UInt32(String(decoding: digits, as: UTF8.self))
            else {
                return .failure(.init("kho_scratch=\(value): expected a percentage (decimal, at most 4294967295)"))
            }
            return .success(.scale(n))
        }
        var sizes: [UInt64] = []
        var sc = Crashkernel.Scanner(Substring(value))
        for k in 0..<3 {
            if k > 0 {
                guard sc.peek == UInt8(ascii: ",") else {
                    return .failure(
                        .init("kho_scratch=\(value): expected three sizes lowmem,global,pernode (e.g. 16M,512M,256M)"))
                }
                sc.advance()
            }
            guard let v = try? sc.memparse("kho_scratch", what: "a size") else {
                return .failure(.init("kho_scratch=\(value): size \(k + 1) of 3 is not a number"))
            }
            sizes.append(v)
        }
        guard sc.atEnd else {
            return .failure(.init("kho_scratch=\(value): unexpected \"\(sc.rest)\" after the third size"))
        }
        let (t1, o1) = sizes[0].addingReportingOverflow(sizes[1])
        let (total, o2) = t1.addingReportingOverflow(sizes[2])
        guard o1 || o2 || total > 0 else { return .failure(.init("kho_scratch=\(value): all three sizes are 0")) }
        return .success(.sizes(lowmem: ByteCount(sizes[0]), global: ByteCount(sizes[1]), perNode: ByteCount(sizes[2])))
    }
}

/// A `kho_scratch=` value the kernel would not take.
public struct KhoParameterError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Memory a subsystem preserved for the next kernel (kho_preserve_pages / kho_preserve_folio: a
/// memfd's folios, a LUO session's data): page aligned, in RAM, byte-identical after the kexec.
public struct KhoPreservation: Sendable, Equatable {
    public var range: AddressRange
    /// Who preserved it, as the fixture names it ("memfd session 1").
    public var owner: String
    public var source: SourceLocation?

    public init(range: AddressRange, owner: String, source: SourceLocation? = nil) {
        self.range = range
        self.owner = owner
        self.source = source
    }
}

/// `machine.kho`: the first kernel booted with `kho=on`.
public struct KhoConfig: Sendable, Equatable {
    /// Where the scratch areas come from.
    public enum Scratch: Sendable, Equatable {
        /// The areas as given (a kernel booted through KHO reuses the ones it was handed; or what
        /// a log printed), in kho_scratch array order: lowmem, global, then one per node.
        case given([AddressRange])
        /// Reserved by this kernel at boot from `kho_scratch=` (kho_reserve_scratch).
        case parameter(KhoScratchParameter)
        /// Handed over by the previous kexec of a chain: the kho_scratch array as it was (empty
        /// areas included) and where its segment lies (kho_populate memblock-reserves it).
        case handedOver([KhoScratchArea], array: AddressRange)
    }

    public var scratch: Scratch
    public var preserved: [KhoPreservation]
    /// The KFENCE pool (`kfence_pool`, KFENCE_POOL_SIZE = (CONFIG_KFENCE_NUM_OBJECTS + 1) × 2
    /// pages, memblock_alloc'ed early in boot). On a KHO boot memblock allocates in scratch only, so
    /// the pool lies in scratch; before the October 2025 fix KHO's metadata came from kzalloc and
    /// KFENCE could serve it from there.
    public var kfencePool: AddressRange?
    /// CONFIG_KEXEC_HANDOVER_DEBUG (`debug_checks`, default on): the kho_scratch_overlap checks
    /// that refuse preserved memory or metadata in scratch with EINVAL (kernels with the fix).
    public var debugChecks: Bool
    public var source: SourceLocation?

    public init(
        scratch: Scratch = .parameter(.default), preserved: [KhoPreservation] = [], kfencePool: AddressRange? = nil,
        debugChecks: Bool = true, source: SourceLocation? = nil
    ) {
        self.scratch = scratch
        self.preserved = preserved
        self.kfencePool = kfencePool
        self.debugChecks = debugChecks
        self.source = source
    }

    /// KHO is in mainline from v6.16 (kernel/kexec_handover.c, merged for 6.16).
    public static let firstVersion = KernelVersion(6, 16)
    /// The most preserved memory a fixture may give (every page is laid out and hashed).
    public static let maxPreservedBytes: UInt64 = 1 << 30
}
