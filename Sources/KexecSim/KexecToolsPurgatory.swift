import GuestCode
import KexecModel
import Kimage

/// The purgatory Debian 12's kexec-tools carries (1:2.0.25-3+deb12u3): a relocatable ELF object
/// built into /sbin/kexec, which elf_rel_build_load places as one segment (kexec/kexec-elf-rel.c
/// elf_rel_load, 2.0.25).
///
/// Its size cannot be derived from the source (it is the compiler's output), so the SHF_ALLOC
/// sections of the object embedded in Debian's binaries are recorded here, as `readelf -S` shows
/// them for the ELF image found inside /sbin/kexec of the amd64 and arm64 packages; the segment's
/// size, alignment and entry follow from them by elf_rel_load's rules:
/// - bufsz: the PROGBITS sections one after another, each at its own alignment;
/// - memsz: bufsz, padded to the bss alignment, plus the NOBITS sections;
/// - the buffer's alignment: the largest section alignment;
/// - the entry: `e_entry` inside its executable section (purgatory_start).
/// The x86_64 numbers agree with every recorded `kexec -d` (bufsz 0x70e0, memsz 0x9000, entry at
/// +0x760).
///
/// Our own purgatory (sha256 over the segments, spin on a mismatch, then the jump) runs inside
/// that segment: its bytes are copied so that its entry lies at the real entry's offset; the rest
/// of the segment is zeros.
struct KexecToolsPurgatory: Sendable {
    struct Section: Sendable {
        var name: String
        var size: UInt64
        var align: UInt64
        var nobits: Bool
    }
    var arch: Arch
    var sections: [Section]
    /// `e_entry`, relative to the start of `.text` (the first executable section).
    var entry: UInt64

    /// amd64: purgatory/arch/x86_64 objects linked by `ld -r` (entry64.S's entry64 at .text+0x760).
    static let x86_64 = KexecToolsPurgatory(
        arch: .x86_64,
        sections: [
            Section(name: ".text", size: 0x3e3c, align: 16, nobits: false),
            Section(name: ".rodata", size: 0x110, align: 16, nobits: false),
            Section(name: ".rodata.str1.1", size: 0x88, align: 1, nobits: false),
            Section(name: ".eh_frame", size: 0x3dc, align: 8, nobits: false),
            Section(name: ".data", size: 0x20e0, align: 4096, nobits: false),
            Section(name: ".bss", size: 0x1000, align: 4096, nobits: true),
        ], entry: 0x760)

    /// arm64: purgatory/arch/arm64 (entry.S purgatory_start at .text+0x6a0, no .bss).
    static let arm64 = KexecToolsPurgatory(
        arch: .arm64,
        sections: [
            Section(name: ".text", size: 0x3080, align: 16, nobits: false),
            Section(name: ".rodata.str1.1", size: 0xb4, align: 1, nobits: false),
            Section(name: ".eh_frame", size: 0x29c, align: 8, nobits: false),
            Section(name: ".data", size: 0x178, align: 8, nobits: false),
            Section(name: "data", size: 0x8, align: 8, nobits: false),
            Section(name: ".bss", size: 0, align: 1, nobits: true),
        ], entry: 0x6a0)

    static func of(_ arch: Arch) -> KexecToolsPurgatory { arch == .x86_64 ? .x86_64 : .arm64 }

    private static func align(_ v: UInt64, _ a: UInt64) -> UInt64 { (v + a - 1) & ~(a - 1) }

    /// elf_rel_load's footprint: (bufsz, memsz before page rounding, buffer alignment).
    var footprint: (bufsz: UInt64, memsz: UInt64, align: UInt64) {
        var bufAlign: UInt64 = 1
        var bssAlign: UInt64 = 1
        var bufsz: UInt64 = 0
        var bsssz: UInt64 = 0
        for s in sections {
            if s.nobits {
                bssAlign = max(bssAlign, s.align)
                bsssz = Self.align(bsssz, s.align) + s.size
            } else {
                bufAlign = max(bufAlign, s.align)
                bufsz = Self.align(bufsz, s.align) + s.size
            }
        }
        bufAlign = max(bufAlign, bssAlign)
        let pad = bufsz & (bssAlign - 1) == 0 ? 0 : bssAlign - (bufsz & (bssAlign - 1))
        return (bufsz, bufsz + pad + bsssz, bufAlign)
    }

    /// Our purgatory blob for this architecture.
    var blob: GuestBlob { arch == .x86_64 ? X86_64GuestCode.purgatory : Arm64GuestCode.purgatory }
    /// Offset of our blob's entry (`purgatory_start`) in our blob.
    var blobStart: UInt64 {
        arch == .x86_64 ? X86_64GuestCode.Purgatory.purgatoryStart : Arm64GuestCode.Purgatory.purgatoryStart
    }

    /// Where our blob starts inside the segment: its entry at the real purgatory's entry. Nil when
    /// it does not fit there with its bss (a purgatory rebuilt larger than Debian's).
    var blobOffset: UInt64? {
        guard entry >= blobStart else { return nil }
        let at = entry - blobStart
        return at + blob.memorySize <= footprint.memsz ? at : nil
    }
}
