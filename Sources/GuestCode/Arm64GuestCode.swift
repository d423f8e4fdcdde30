/// The arm64 relocation routine, purgatory and probes (see `asm/arm64`, `c/common`, `link/arm64`).
///
/// `relocateKernel` is loaded at offset 0 of the control code page and has two entry points:
/// `arm64_relocate_new_kernel` (offset 0; MMU off, pre-v5.15) and
/// `arm64_relocate_new_kernel_mmu_on` (MMU on: TTBR0 = identity map of the control page, the
/// routine switches TTBR1 to the linear-map copy). Registers on entry, both:
///
/// | reg | meaning |
/// |---|---|
/// | x0 | kimage head (first IND_* entry: physical address \| flags) |
/// | x1 | entry point, physical (purgatory or kernel) |
/// | x2 | DTB, physical |
/// | x3 | phys_offset = PHYS_OFFSET − PAGE_OFFSET (mod 2^64); linear VA = PA − x3 (mmu-on) |
/// | x4 | TTBR1: physical root of the linear-map copy, 0 = keep (mmu-on) |
/// | x5 | physical zero page for the break-before-make TTBR1 switch (mmu-on) |
/// | x6 | kimage page size in bytes (4096, 16384, 65536; 0 = 4096) |
///
/// On exit: MMU off, PC = entry, x0 = DTB, x1 = x2 = x3 = 0.
///
/// The purgatory's `purgatory_data` (`purgatoryDataSize` bytes) holds entry, dtb, nr_regions,
/// 16 × (start, len) and the 32-byte digest; it runs with the MMU off, and a digest mismatch spins
/// at `sha256_mismatch_spin` (a branch-to-self).
public enum Arm64GuestCode {
    public static let relocateKernel = GuestBlob(
        name: "arm64_relocate_new_kernel",
        bytes: Arm64Generated.relocateKernelBytes,
        bssSize: Arm64Generated.relocateKernelBssSize,
        symbols: Arm64Generated.relocateKernelSymbols
    )

    public static let purgatory = GuestBlob(
        name: "arm64 purgatory",
        bytes: Arm64Generated.purgatoryBytes,
        bssSize: Arm64Generated.purgatoryBssSize,
        symbols: Arm64Generated.purgatorySymbols
    )

    /// Probes run through the guest's translation regime: `store_probe` (str x1, [x0]) and
    /// `touch_probe` (read each of x1 addresses listed at [x0]); each stops at its `*_done` label.
    public static let probe = GuestBlob(
        name: "arm64 probe",
        bytes: Arm64Generated.probeBytes,
        bssSize: Arm64Generated.probeBssSize,
        symbols: Arm64Generated.probeSymbols
    )

    /// Entry symbols of `relocateKernel`.
    public static let mmuOffEntry = "arm64_relocate_new_kernel"
    public static let mmuOnEntry = "arm64_relocate_new_kernel_mmu_on"
    /// The instruction after the MMU-on variant's `msr sctlr_el1` + `isb` (MMU off from here).
    public static let mmuOffPoint = "arm64_relocate_mmu_off"

    /// Largest relocation routine accepted (arm64 KEXEC_CONTROL_PAGE_SIZE).
    public static let controlCodeMaxSize: UInt64 = 4096
    /// Size of `purgatory_data`.
    public static let purgatoryDataSize: UInt64 = 312
    /// Offsets of the fields inside `purgatory_data`.
    public enum PurgatoryDataLayout {
        public static let entry: UInt64 = 0
        public static let dtb: UInt64 = 8
        public static let regionCount: UInt64 = 16
        public static let regions: UInt64 = 24
        public static let regionStride: UInt64 = 16
        public static let maxRegions: Int = 16
        public static let digest: UInt64 = 280
    }
}
