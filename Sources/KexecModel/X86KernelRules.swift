/// The x86_64 kexec rules that changed over time, picked by the running kernel's version: what
/// init_pgtable maps with which leaves (arch/x86/kernel/machine_kexec_64.c, arch/x86/mm/ident_map.c),
/// the control page's size and how relocate_kernel moves the pages (relocate_kernel_64.S).
///
/// Stable kernels got the identity-map changes as backports, so the rule depends on X.Y.Z:
///
/// | step | mainline | stable |
/// |---|---|---|
/// | exact gbpages, d794734c9bbf (broke kexec on SEV-capable AMD: the EFI config table lost its accidental 1 GiB mapping) | merged during v6.8-rc (in v6.8 and v6.9-rc1) | 6.1.79, 6.6.18, 6.7.6 |
/// | revert, c567f2948f57 | v6.9-rc2 | 6.1.85, 6.6.26, 6.8.5 |
/// | map the EFI config table array, 5760929f6545 | v6.12-rc1 | 6.1.113, 6.6.55, 6.10.14, 6.11.3 |
/// | exact gbpages again, cc31744a2945 (CVE-2024-50017) | v6.12-rc1 | 6.1.188, 6.6.78, 6.10.14, 6.11.3 |
///
/// Sources: the 6.1 dates from Debian's linux 6.1.192-3 changelog.Debian (which lists each upstream
/// stable commit under its ChangeLog-6.1.N); 6.1.85/6.6.26/6.8.5 from the stable announcements'
/// diffstats (arch/x86/mm/ident_map.c, 23 lines); the cc31744a2945 backports from the kernel CVE
/// record of CVE-2024-50017; 6.6.55 from the 2024-10-08 linux-6.6.y push carrying only 5760929f6545;
/// d794734c9bbf in v6.8 from Linus' tree of 2024-02-22 (before v6.8) already holding it. 6.6.18 and
/// 6.7.6 are the stable round of 6.1.79 (2024-02-23); the 6.7 line ended (6.7.12) without the revert.
public struct X86IdentityMapRule: Sendable, Equatable {
    /// How ident_pud_init picks 1 GiB leaves when direct_gbpages is on.
    public enum Gbpages: String, Sendable {
        /// A 1 GiB leaf for every PUD entry not yet present, whatever part of the GiB was asked for.
        case full
        /// A 1 GiB leaf only where the request covers the whole GiB; 2 MiB leaves otherwise.
        case exact
    }

    public var gbpages: Gbpages
    /// map_efi_systab also maps `nr_tables` entries of the config table array.
    public var mapsEfiConfigTables: Bool
    /// Which change put the kernel in this state.
    public var why: String

    public init(gbpages: Gbpages, mapsEfiConfigTables: Bool, why: String) {
        self.gbpages = gbpages
        self.mapsEfiConfigTables = mapsEfiConfigTables
        self.why = why
    }

    static let original = X86IdentityMapRule(
        gbpages: .full, mapsEfiConfigTables: false, why: "full gbpages since 4.12 (66aad4fdf2bf)")
    static let broken = X86IdentityMapRule(
        gbpages: .exact, mapsEfiConfigTables: false, why: "d794734c9bbf: exact gbpages, EFI config table not mapped")
    static let reverted = X86IdentityMapRule(
        gbpages: .full, mapsEfiConfigTables: false, why: "c567f2948f57 reverted d794734c9bbf")
    static let configOnly = X86IdentityMapRule(
        gbpages: .full, mapsEfiConfigTables: true, why: "5760929f6545 maps the EFI config table; full gbpages")
    static let fixed = X86IdentityMapRule(
        gbpages: .exact, mapsEfiConfigTables: true,
        why: "cc31744a2945 exact gbpages with 5760929f6545 mapping the EFI config table")

    /// The rule of kernel `v` (see the table above). Lines not listed keep the original rule.
    public static func of(_ v: KernelVersion) -> X86IdentityMapRule {
        let p = v.patch ?? 0
        switch (v.major, v.minor) {
        case (6, 1):
            if p >= 188 { return .fixed }
            if p >= 113 { return .configOnly }
            if p >= 85 { return .reverted }
            return p >= 79 ? .broken : .original
        case (6, 6):
            if p >= 78 { return .fixed }
            if p >= 55 { return .configOnly }
            if p >= 26 { return .reverted }
            return p >= 18 ? .broken : .original
        case (6, 7): return p >= 6 ? .broken : .original
        case (6, 8):
            // d794734c9bbf was merged late in the 6.8 cycle; a 6.8 release candidate counts as before it.
            if v.rc != nil { return .original }
            return p >= 5 ? .reverted : .broken
        case (6, 9): return v.rc == 1 ? .broken : .reverted
        case (6, 10): return p >= 14 ? .fixed : .reverted
        case (6, 11): return p >= 3 ? .fixed : .reverted
        default: return v >= KernelVersion(6, 12, rc: 1) ? .fixed : .original
        }
    }

    /// The source the variant was read in, for the evidence.
    public var gbpagesSource: String {
        switch gbpages {
        case .exact: return "arch/x86/mm/ident_map.c ident_pud_init, read in 6.1.192 (Debian linux-source-6.1)"
        case .full:
            return "arch/x86/mm/ident_map.c ident_pud_init, read in torvalds/linux at 30c09233 (before d794734c9bbf)"
        }
    }
    public var configTableSource: String {
        "arch/x86/kernel/machine_kexec_64.c map_efi_systab, read in 6.1.192 (Debian linux-source-6.1)"
    }
}

/// The control page and the copy loop of relocate_kernel (arch/x86/kernel/relocate_kernel_64.S).
public struct X86RelocationRule: Sendable, Equatable {
    /// Bytes of the control code page: 8 KiB before v6.14 (the first page is the identity map's
    /// PGD, the second holds the code; arch/x86/include/asm/kexec.h KEXEC_CONTROL_PAGE_SIZE,
    /// machine_kexec_prepare's start_pgtable), 4 KiB since (the PGD is a page of its own).
    public var controlPageSize: UInt64
    /// swap_pages: a 3-way swap through the swap page for every source page (before v6.14), or a
    /// single copy source → destination unless preserve_context (9e5683e2d0b5, v6.14).
    public var swapsAlways: Bool

    public static func of(_ v: KernelVersion) -> X86RelocationRule {
        v >= KernelVersion(6, 14, rc: 1)
            ? X86RelocationRule(controlPageSize: 0x1000, swapsAlways: false)
            : X86RelocationRule(controlPageSize: 0x2000, swapsAlways: true)
    }

    public var source: String {
        swapsAlways
            ? "arch/x86/kernel/relocate_kernel_64.S swap_pages and machine_kexec_64.c machine_kexec_prepare, read in 6.1.192"
            : "arch/x86/kernel/relocate_kernel_64.S swap_pages (9e5683e2d0b5 \"only swap pages for preserve_context\"), read in the v6.14 patch"
    }
}
