import Crypto
import Emulator
import Foundation
import GuestCode

/// What `kexec-sim --version` reports: the tool, the emulator it is linked with, and a digest of
/// the guest code it runs (so two builds that replay differently can be told apart).
public enum KexecSimVersion {
    /// The tool's own version.
    public static let tool = "0.4.0"

    /// The guest-code blobs in digest order: x86_64 relocate_kernel, purgatory, probe, then
    /// arm64 relocate_kernel, purgatory, probe.
    public static var guestCodeBlobs: [GuestBlob] {
        [
            X86_64GuestCode.relocateKernel, X86_64GuestCode.purgatory, X86_64GuestCode.probe,
            Arm64GuestCode.relocateKernel, Arm64GuestCode.purgatory, Arm64GuestCode.probe,
        ]
    }

    /// SHA-256 over the bytes of `guestCodeBlobs`, concatenated in that order, as lowercase hex.
    public static var guestCodeDigest: String {
        var sha = SHA256()
        for blob in guestCodeBlobs { sha.update(data: blob.bytes) }
        return sha.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The emulator as linked at run time, e.g. "Unicorn 2.1.4".
    public static var engine: String { EngineVersion.current.description }

    /// Three lines (no final newline):
    /// `kexec-sim 0.4.0`, `engine: Unicorn 2.1.4`, `guest code: sha256 <64 hex digits>`.
    public static var text: String {
        "kexec-sim \(tool)\nengine: \(engine)\nguest code: sha256 \(guestCodeDigest)"
    }
}
