/// The x86_64 CPU a followed next kernel runs on (`machine.cpu: { vendor: amd | intel, sev: … }`):
/// what CPUID reports where the kernel's early code decides by it.
///
/// The one decision modelled today: the bzImage decompressor's SEV probe (arch/x86/boot/compressed/
/// sev.c sev_check_cpu_support, v6.1.192) runs only when CPUID 0x80000000 reports leaf 0x8000001f
/// and that leaf's EAX bit 1 (SEV) is set; then sev_enable calls snp_init, which reads the EFI
/// system table and configuration table array (find_cc_blob_efi) before the decompressor has a
/// page-fault handler. AMD EPYC parts report SME and SEV there; Intel parts stop at 0x80000008.
/// nil (no `cpu:`) keeps the engine's own CPU model (Unicorn's qemu64).
public struct X86CpuModel: Sendable, Equatable {
    public enum Vendor: String, Sendable, CaseIterable {
        case amd, intel
    }

    public var vendor: Vendor
    /// CPUID Fn8000_001F EAX bit 1 (and bit 0, SME, as EPYC parts report both).
    public var sev: Bool

    public init(vendor: Vendor, sev: Bool = false) {
        self.vendor = vendor
        self.sev = sev
    }

    /// The vendor string of CPUID leaf 0 (EBX, EDX, ECX in that order).
    public var vendorString: String { vendor == .amd ? "AuthenticAMD" : "GenuineIntel" }
}
