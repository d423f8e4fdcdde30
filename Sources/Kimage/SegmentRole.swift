/// What a segment is for: one of the segments the in-kernel loaders (and kexec-tools) add, or a
/// kexec_load segment the fixture labels itself.
///
/// `name` is the segment's label wherever it is shown (`plan --json`, evidence, the SVG, the
/// synthetic payload's seed): `purgatory`, `boot_params`, `kernel`, `initrd`, `elfcorehdr`, `dtb`,
/// `kho_scratch`,
/// and for `.user` the fixture's label as written. Build roles from fixture labels with
/// `init(label:)` or `init(userLabel:)`, so that a label naming a loader segment always gets that
/// segment's role.
public enum SegmentRole: Sendable, Hashable, CustomStringConvertible {
    /// The purgatory (its digest is not taken, its bss may change).
    case purgatory
    /// x86_64's boot_params (zero page, e820 table, command line): `boot_params`.
    case bootParams
    case kernel
    case initrd
    /// The crash kernel's ELF core header.
    case elfcorehdr
    /// arm64's device tree blob.
    case dtb
    /// kexec-tools' x86_64 crash loads: room for the first 640 KiB of RAM, which its purgatory
    /// copies there before the crash kernel starts (`backup`).
    case backup
    /// kexec-tools' x86_64 setup_data entry of EFI values (SETUP_EFI) (`setup_data`).
    case setupData
    /// kexec-tools' x86_64 copy of the EFI runtime memory map (`efi_memmap`).
    case efiMemmap
    /// kexec-tools' x86_64 SETUP_RNG_SEED setup_data entry (`rng_seed`).
    case rngSeed
    /// kexec-tools' x86_64 SETUP_E820_EXT setup_data: e820 entries past the 128 in boot_params
    /// (`e820_ext`).
    case e820Ext
    /// Kexec HandOver's kho_scratch array (kho_fill_kimage): `kho_scratch`.
    case khoScratch
    /// A kexec_load segment whose label names none of the loader segments (`segment0`, …), or a
    /// kexec_load segment labelled `purgatory` (kexec-tools adds the purgatory itself; a user
    /// segment of that name is hashed like any other).
    case user(String)

    /// The roles kexec_file_load's loaders and the purgatory give segments, in no particular order.
    public static let loaderRoles: [SegmentRole] = [
        .purgatory, .bootParams, .kernel, .initrd, .elfcorehdr, .dtb, .backup, .setupData, .efiMemmap, .rngSeed,
        .e820Ext, .khoScratch,
    ]

    /// The label: the loader's name for the segment, or the user's label.
    public var name: String {
        switch self {
        case .purgatory: return "purgatory"
        case .bootParams: return "boot_params"
        case .kernel: return "kernel"
        case .initrd: return "initrd"
        case .elfcorehdr: return "elfcorehdr"
        case .dtb: return "dtb"
        case .backup: return "backup"
        case .setupData: return "setup_data"
        case .efiMemmap: return "efi_memmap"
        case .rngSeed: return "rng_seed"
        case .e820Ext: return "e820_ext"
        case .khoScratch: return "kho_scratch"
        case .user(let label): return label
        }
    }

    public var description: String { name }

    /// The role `label` names: one of the loader names gives that role (`purgatory` gives
    /// `.purgatory`), anything else `.user(label)`.
    public init(label: String) {
        self = Self.loaderRoles.first { $0.name == label } ?? .user(label)
    }

    /// The role of a kexec_load segment labelled `label`: as `init(label:)`, except that
    /// `purgatory` stays `.user("purgatory")` (only the purgatory the planner adds is `.purgatory`).
    public init(userLabel label: String) {
        let role = SegmentRole(label: label)
        self = role == .purgatory ? .user(label) : role
    }

    /// Every role whose `name` is `label` (what a fixture naming a segment by label, as
    /// `flip-source-byte: { segment: … }` does, may mean): `[.purgatory, .user("purgatory")]` for
    /// `purgatory`, otherwise `[SegmentRole(label: label)]`.
    public static func roles(labelled label: String) -> [SegmentRole] {
        let role = SegmentRole(label: label)
        return role == .purgatory ? [.purgatory, .user(label)] : [role]
    }
}
