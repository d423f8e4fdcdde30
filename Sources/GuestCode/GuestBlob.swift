/// A flat piece of guest code: bytes to load at some base, followed by `bssSize` zero bytes.
///
/// Symbol offsets are relative to the load base. The bytes are built from `asm/`, `c/` and
/// `link/` by `scripts/build-guest-code`, which writes `Generated/`.
public struct GuestBlob: Sendable {
    public let name: String
    /// Loadable image based at 0.
    public let bytes: [UInt8]
    /// Zero bytes after `bytes` (the purgatory's stack); 0 for relocate_kernel.
    public let bssSize: UInt64
    public let symbols: [String: UInt64]

    init(name: String, bytes: [UInt8], bssSize: UInt64, symbols: [String: UInt64]) {
        self.name = name
        self.bytes = bytes
        self.bssSize = bssSize
        self.symbols = symbols
    }

    /// Offset of `symbol` from the load base; the symbol must exist.
    public func offset(of symbol: String) -> UInt64 {
        guard let value = symbols[symbol] else {
            preconditionFailure("\(name) has no symbol \(symbol)")
        }
        return value
    }

    /// Bytes the blob occupies once loaded: the image plus its bss.
    public var memorySize: UInt64 { UInt64(bytes.count) + bssSize }
}

/// The x86_64 relocation routine and purgatory (see `asm/x86_64`, `c/common`).
///
/// relocate_kernel is loaded at offset 0 of the control page and entered at its high
/// kernel-virtual alias with rdi = head, rsi = alias of the page list at `pageListOffset`
/// ({ PA control page, VA control page, PA table page, PA swap page }), rdx = purgatory entry,
/// rcx = preserve_context. The purgatory's `purgatory_data` (`purgatoryDataSize` bytes) holds
/// entry, entry_arg, nr_regions, 16 × (start, len) and the 32-byte digest.
public enum X86_64GuestCode {
    public static let relocateKernel = GuestBlob(
        name: "relocate_kernel",
        bytes: X86_64Generated.relocateKernelBytes,
        bssSize: X86_64Generated.relocateKernelBssSize,
        symbols: X86_64Generated.relocateKernelSymbols
    )

    public static let purgatory = GuestBlob(
        name: "purgatory",
        bytes: X86_64Generated.purgatoryBytes,
        bssSize: X86_64Generated.purgatoryBssSize,
        symbols: X86_64Generated.purgatorySymbols
    )

    /// Probes run through the guest's tables: `store_probe` (store rax at [rbx]) and
    /// `touch_probe` (read each of rcx addresses listed at [rsi]); each stops at its `*_done` hlt.
    public static let probe = GuestBlob(
        name: "probe",
        bytes: X86_64Generated.probeBytes,
        bssSize: X86_64Generated.probeBssSize,
        symbols: X86_64Generated.probeSymbols
    )

    /// Offset of the page list inside the control page (the code must end before it).
    public static let pageListOffset: UInt64 = 0x800
    /// Size of `purgatory_data`.
    public static let purgatoryDataSize: UInt64 = 312
    /// Largest relocate_kernel accepted (KEXEC_CONTROL_CODE_MAX_SIZE).
    public static let controlCodeMaxSize: UInt64 = 2048
    /// Offsets of the fields inside `purgatory_data`.
    public enum PurgatoryDataLayout {
        public static let entryRIP: UInt64 = 0
        public static let entryRSI: UInt64 = 8
        public static let regionCount: UInt64 = 16
        public static let regions: UInt64 = 24
        public static let regionStride: UInt64 = 16
        public static let maxRegions: Int = 16
        public static let digest: UInt64 = 280
    }
}
