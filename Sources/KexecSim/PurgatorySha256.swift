import Crypto
import Emulator
import GuestCode
import KexecModel

/// Purgatory's SHA-256 on the host (`PurgatoryMode.native`): the guest's calls to
/// `sha256_init(ctx)`, `sha256_update(ctx, data, len)` and `sha256_final(ctx, out)`
/// (Sources/GuestCode/c/common/sha256.h) are intercepted at their first instruction and served
/// with swift-crypto, one host hasher per guest context. `sha256_update` hashes exactly the bytes
/// the guest would read, [data, data + len) in address order, translated page by page through the
/// guest's own tables (`Engine.withGuestMemory`): at the first byte the guest could not read, the
/// run stops with the fault the guest would take there. `sha256_final` stores the 32-byte digest at
/// `out` through the same tables. Each call then returns to its caller as the C function would.
/// purgatory_main's loop over the regions, its comparison with the stored digest, the spin on a
/// mismatch and the jump to the next kernel stay emulated (the kernel's purgatory does the same
/// steps: arch/x86/purgatory/purgatory.c verify_sha256_digest, v6.1).
final class NativePurgatorySha256<Arch: EngineArchitecture> {
    /// Entry offsets of the three routines from the purgatory's load base.
    struct Routines {
        var initial: UInt64
        var update: UInt64
        var final: UInt64
    }

    /// Host hashers by the guest address of their `struct sha256_ctx`.
    private var hashers: [UInt64: SHA256] = [:]
    /// Bytes hashed on the host.
    private(set) var bytesHashed: UInt64 = 0

    /// Intercepts the three routines of the purgatory loaded at `base` (entered at its physical
    /// address: x86_64 on the identity map, arm64 with the MMU off).
    init(engine e: Engine<Arch>, base: PhysAddr, routines r: Routines) throws(EmulatorError) {
        try e.intercept(at: VirtAddr(base.raw + r.initial), name: "sha256_init") { e in
            self.hashers[Arch.callArgument(0, engine: e)] = SHA256()
            return Self.returning(e)
        }
        try e.intercept(at: VirtAddr(base.raw + r.update), name: "sha256_update") { e in
            self.update(e)
        }
        try e.intercept(at: VirtAddr(base.raw + r.final), name: "sha256_final") { e in
            self.finish(e)
        }
    }

    private func update(_ e: Engine<Arch>) -> InterceptOutcome<Arch.Fault> {
        let ctx = Arch.callArgument(0, engine: e)
        let data = Arch.callArgument(1, engine: e)
        let length = Arch.callArgument(2, engine: e)
        var h = hashers.removeValue(forKey: ctx) ?? SHA256()
        let stop = e.withGuestMemory(VirtAddr(data), length: length, access: .read, pc: Self.pc(e)) { piece in
            h.update(bufferPointer: UnsafeRawBufferPointer(piece))
        }
        if let stop { return .stop(stop) }
        bytesHashed &+= length
        hashers[ctx] = h
        return Self.returning(e)
    }

    private func finish(_ e: Engine<Arch>) -> InterceptOutcome<Arch.Fault> {
        let ctx = Arch.callArgument(0, engine: e)
        let out = Arch.callArgument(1, engine: e)
        let digest = Array((hashers.removeValue(forKey: ctx) ?? SHA256()).finalize())
        var written = 0
        let stop = e.withGuestMemory(VirtAddr(out), length: UInt64(digest.count), access: .write, pc: Self.pc(e)) {
            piece in
            digest.withUnsafeBytes { src in
                piece.baseAddress!.copyMemory(from: src.baseAddress! + written, byteCount: piece.count)
            }
            written += piece.count
        }
        if let stop { return .stop(stop) }
        return Self.returning(e)
    }

    private static func pc(_ e: Engine<Arch>) -> VirtAddr { VirtAddr(e.read(Arch.programCounter)) }

    /// The three routines return void: the return register is left as the guest would find it
    /// after a void call (zero).
    private static func returning(_ e: Engine<Arch>) -> InterceptOutcome<Arch.Fault> {
        Arch.returnFromCall(e, value: 0)
    }
}
