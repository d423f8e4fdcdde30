/// The fields of ID_AA64MMFR0_EL1 the stage-1 walk depends on: the CPU's physical address size
/// and which granules implement 52-bit addresses (FEAT_LPA2).
///
/// Field layout and encodings as the kernel reads them (arch/arm64/tools/sysreg, ID_AA64MMFR0_EL1,
/// read in 6.12.117; Arm ARM DDI 0487, D19 "ID_AA64MMFR0_EL1"):
/// - PARange [3:0]: 0b0000 32 bits, 0b0001 36, 0b0010 40, 0b0011 42, 0b0100 44, 0b0101 48,
///   0b0110 52 (0b0111, 56, is FEAT_D128's and not modelled: read as 52);
/// - TGran16 [23:20], unsigned: 0b0000 not implemented, 0b0001 implemented, 0b0010 implemented
///   with 52-bit input and output addresses (FEAT_LPA2);
/// - TGran4 [31:28], signed: 0b0000 implemented, 0b0001 implemented with 52-bit addresses
///   (FEAT_LPA2), 0b1111 not implemented.
/// The kernel's own test is the same: cpu_has_lpa2() takes TGran4 (4K kernels) or TGran16 (16K)
/// and compares it with the 52_BIT value (arch/arm64/include/asm/cpufeature.h, 6.12.117).
public struct Arm64MMFR0: Sendable, Equatable, CustomStringConvertible {
    /// The register's value.
    public var raw: UInt64

    public init(raw: UInt64) { self.raw = raw }

    /// A CPU with `physicalAddressBits` of PA (32 … 52) and, with `lpa2`, FEAT_LPA2 for both the
    /// 4K and 16K granules; 4K, 16K and 64K are all implemented.
    public init(physicalAddressBits: Int, lpa2: Bool = false) {
        raw = 0
        self.physicalAddressBits = physicalAddressBits
        tgran4 = lpa2 ? 0b0001 : 0b0000
        tgran16 = lpa2 ? 0b0010 : 0b0001
    }

    /// PARange decoded to bits; setting picks the largest encoding not above the value.
    public var physicalAddressBits: Int {
        get {
            let sizes = [32, 36, 40, 42, 44, 48, 52]
            let i = Int(raw & 0xf)
            return i < sizes.count ? sizes[i] : 52
        }
        set {
            let sizes = [32, 36, 40, 42, 44, 48, 52]
            let i = sizes.lastIndex { $0 <= newValue } ?? 0
            raw = (raw & ~0xf) | UInt64(i)
        }
    }

    /// TGran4, the raw 4-bit field.
    public var tgran4: UInt64 {
        get { (raw >> 28) & 0xf }
        set { raw = (raw & ~(0xf << 28)) | ((newValue & 0xf) << 28) }
    }

    /// TGran16, the raw 4-bit field.
    public var tgran16: UInt64 {
        get { (raw >> 20) & 0xf }
        set { raw = (raw & ~(0xf << 20)) | ((newValue & 0xf) << 20) }
    }

    /// Whether the granule implements FEAT_LPA2 (52-bit addresses under TCR_EL1.DS = 1). The 64K
    /// granule never does: its 52-bit form is FEAT_LPA, which PARange = 52 implies.
    public func lpa2(_ g: Granule) -> Bool {
        switch g {
        case .g4k:
            // Signed: 0b1111 (-1) is "not implemented"; 1 … 7 are 52-bit capable.
            let v = tgran4
            return v >= 1 && v <= 7
        case .g16k: return tgran16 >= 2
        case .g64k: return false
        }
    }

    public var description: String {
        "ID_AA64MMFR0_EL1 \(hex(raw)) (PARange \(physicalAddressBits) bits, TGran4 \(hex(tgran4)), "
            + "TGran16 \(hex(tgran16)))"
    }
}
