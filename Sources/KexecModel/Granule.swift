/// An AArch64 translation granule (the kernel's PAGE_SIZE): what fixtures name in
/// `policy.linear_map.granule`, what the page-table builder lays tables out in and what the MMU
/// walker decodes from TCR_EL1.TG0 / TG1.
///
/// Contract: the raw value is the fixture spelling ("4k", "16k", "64k") and the description; the
/// geometry below is the VMSAv8-64 one (`startLevel` and `levelShift` also give level -1 for a
/// 4k walk over 52 VA bits, FEAT_LPA2). What only one layer needs lives in that layer: memstartAlign in PageTables, TGn decoding in Emulator.
public enum Granule: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case g4k = "4k"
    case g16k = "16k"
    case g64k = "64k"

    /// log2 of the page size: 12, 14, 16.
    public var shift: Int {
        switch self {
        case .g4k: return 12
        case .g16k: return 14
        case .g64k: return 16
        }
    }
    /// Bytes per page, and per table page.
    public var size: UInt64 { 1 << UInt64(shift) }
    /// Index bits a full table resolves: 9, 11, 13.
    public var stride: Int { shift - 3 }
    /// Entries per table page: 512, 2048, 8192.
    public var entriesPerTable: Int { 1 << stride }
    /// The fixture spelling ("4k").
    public var description: String { rawValue }

    /// The VA bit where `level`'s index starts (4k: 39 30 21 12; 16k: 47 36 25 14; 64k: 55 42 29 16).
    public func levelShift(_ level: Int) -> Int { shift + stride * (3 - level) }

    /// The first level of a walk over `vaBits` VA bits: 4k and 16k start at 0 for 48 bits, 64k at
    /// 1; fewer bits start lower in the tree (4k, 39 bits: 1); 4k over 49–52 bits starts at -1
    /// (FEAT_LPA2), 16k over 52 bits at 0 (a 32-entry L0).
    public func startLevel(vaBits: Int) -> Int { 4 - (vaBits - shift + stride - 1) / stride }

    /// Whether a block descriptor is legal at `level`: 4k L1 (1 GiB) and L2 (2 MiB); 16k L2
    /// (32 MiB); 64k L2 (512 MiB), and L1 (4 TiB) only with 52-bit output addresses (FEAT_LPA).
    /// With FEAT_LPA2 in effect (TCR_EL1.DS = 1) also 4k L0 (512 GiB) and 16k L1 (64 GiB); never at
    /// level -1 (Arm ARM DDI 0487 D8, block descriptors and FEAT_LPA2). Without DS these are also
    /// the levels the kernel puts blocks at.
    public func blockAllowed(level: Int, outputBits52: Bool = false, lpa2: Bool = false) -> Bool {
        switch self {
        case .g4k: return level == 1 || level == 2 || (level == 0 && lpa2)
        case .g16k: return level == 2 || (level == 1 && lpa2)
        case .g64k: return level == 2 || (level == 1 && outputBits52)
        }
    }

    /// The TCR_EL1.TG0 encoding: 0b00 4k, 0b01 64k, 0b10 16k.
    public var tg0: UInt64 {
        switch self {
        case .g4k: return 0
        case .g64k: return 1
        case .g16k: return 2
        }
    }
    /// The TCR_EL1.TG1 encoding (not TG0's): 0b01 16k, 0b10 4k, 0b11 64k.
    public var tg1: UInt64 {
        switch self {
        case .g16k: return 1
        case .g4k: return 2
        case .g64k: return 3
        }
    }
}
