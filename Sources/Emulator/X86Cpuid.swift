import CUnicorn
import KexecModel

/// CPUID answered from a CPU description (`X86CpuModel`) where it differs from the engine's own CPU
/// model (Unicorn 2.1.4's default x86_64 model, measured by X86CpuidTests: vendor GenuineIntel,
/// basic leaves to 0xd, extended leaves to 0x80000008); every other leaf is the engine's.
///
/// Answered (AMD64 APM vol. 3, appendix E "CPUID"; Intel SDM vol. 2A CPUID):
/// - leaf 0: the vendor string, EAX the engine's highest basic leaf (0xd);
/// - leaf 0x80000000: EAX the highest extended leaf, 0x8000001f with SEV, else 0x80000008 (where
///   Intel parts and the engine stop); EBX/EDX/ECX the vendor string on AMD, zero on Intel;
/// - leaf 0x8000001f with SEV: EAX bits 0 (SME) and 1 (SEV); EBX 5:0 the C-bit position 47 and
///   11:6 a physical address reduction of 1 (an EPYC 7002 part); ECX 509 encrypted guests; EDX 1
///   (the lowest SEV ASID).
public final class X86Cpuid {
    public let model: X86CpuModel
    /// Leaves asked, in order of first use (the evidence of what the kernel probed).
    public private(set) var leavesAsked: [UInt32] = []

    static let engineBasicMax: UInt32 = 0xd
    static let engineExtendedMax: UInt32 = 0x8000_0008

    public init(model: X86CpuModel) { self.model = model }

    /// The registers (EAX, EBX, ECX, EDX) of `leaf`, or nil where the engine's model answers.
    public func answer(leaf: UInt32, subleaf: UInt32) -> (UInt32, UInt32, UInt32, UInt32)? {
        let v = Array(model.vendorString.utf8)
        func word(_ i: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(v[i + $1]) << (8 * UInt32($1)) } }
        let (vb, vd, vc) = (word(0), word(4), word(8))
        switch leaf {
        case 0:
            return (Self.engineBasicMax, vb, vc, vd)
        case 0x8000_0000:
            if model.vendor == .intel { return (Self.engineExtendedMax, 0, 0, 0) }
            return (model.sev ? 0x8000_001f : Self.engineExtendedMax, vb, vc, vd)
        case 0x8000_001f where model.sev:
            return (0b11, 47 | 1 << 6, 509, 1)
        default:
            return nil
        }
    }

    func noteAsked(_ leaf: UInt32) {
        if !leavesAsked.contains(leaf) { leavesAsked.append(leaf) }
    }
}

extension Engine where Arch == X86 {
    /// Answers the guest's CPUID instructions from `cpuid` (a hook on the CPUID instruction).
    public func attachCpuid(_ cpuid: X86Cpuid) throws(EmulatorError) {
        mmioOwners.append(cpuid)
        let ud = Unmanaged.passUnretained(cpuid).toOpaque()
        var hh: uc_hook = 0
        try check(
            ks_hook_add_x86_cpuid(
                uc, &hh,
                { uc, ud in
                    let c = Unmanaged<X86Cpuid>.fromOpaque(ud!).takeUnretainedValue()
                    func get(_ r: uc_x86_reg) -> UInt32 {
                        var v: UInt64 = 0
                        _ = uc_reg_read(uc, Int32(r.rawValue), &v)
                        return UInt32(truncatingIfNeeded: v)
                    }
                    func set(_ r: uc_x86_reg, _ x: UInt32) {
                        var v = UInt64(x)
                        _ = uc_reg_write(uc, Int32(r.rawValue), &v)
                    }
                    let leaf = get(UC_X86_REG_RAX)
                    c.noteAsked(leaf)
                    guard let (a, b, cc, d) = c.answer(leaf: leaf, subleaf: get(UC_X86_REG_RCX)) else { return 0 }
                    set(UC_X86_REG_RAX, a)
                    set(UC_X86_REG_RBX, b)
                    set(UC_X86_REG_RCX, cc)
                    set(UC_X86_REG_RDX, d)
                    return 1
                }, ud), "uc_hook_add(UC_HOOK_INSN CPUID)")
    }
}
