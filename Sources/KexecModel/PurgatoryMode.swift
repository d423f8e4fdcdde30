/// How the run executes purgatory's SHA-256 over the loaded segments (`run --purgatory`, the
/// fixture's top-level `purgatory:`). Everything else purgatory does (the loop over the regions,
/// the comparison with the stored digest, the spin on a mismatch, the jump to the next kernel) is
/// emulated in both modes.
public enum PurgatoryMode: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The guest's calls to sha256_init, sha256_update and sha256_final are served by the host
    /// (swift-crypto) over exactly the bytes the guest would read, through the guest's own tables,
    /// with the fault the guest would take at the first byte it could not read.
    case native
    /// Every instruction of the guest's sha256 runs in the emulator.
    case emulated

    public var description: String { rawValue }
}
