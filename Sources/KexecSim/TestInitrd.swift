import GuestCode
import KexecModel
import Kimage

/// The initrds the tool builds itself (`kexec.initrd: { builtin: … }`).
///
/// `test-init` (arm64, x86_64): an uncompressed newc cpio (NewcArchive) holding /dev with the two nodes
/// /init needs before it mounts anything — /dev/console (c 5 1, which kernel_init opens for fd
/// 0–2, init/main.c console_on_rootfs) and /dev/kmsg (c 1 11, drivers/char/mem.c devlist, where
/// /init writes its lines) — an empty /proc for procfs, and /init itself (Arm64TestInit / X86TestInit, built
/// from Sources/GuestCode/c/test-init/init.c). The kernel runs /init from the rootfs
/// (init/main.c kernel_init: ramdisk_execute_command "/init", v6.1).
public enum TestInitrd {
    public static func archive(_ which: BuiltinInitrd, arch: Arch = .arm64) -> NewcArchive {
        let initELF = arch == .x86_64 ? X86TestInit.elf : Arm64TestInit.elf
        switch which {
        case .testInit:
            return NewcArchive(entries: [
                .init(name: "dev", permissions: 0o755, kind: .directory),
                .init(name: "dev/console", permissions: 0o600, kind: .characterDevice(major: 5, minor: 1)),
                .init(name: "dev/kmsg", permissions: 0o644, kind: .characterDevice(major: 1, minor: 11)),
                .init(name: "proc", permissions: 0o555, kind: .directory),
                .init(name: "init", permissions: 0o755, kind: .file(initELF)),
            ])
        }
    }
}

extension RealImages {
    /// The initrd a request names by contents: a file's bytes or a built-in one's, with the words
    /// the evidence gives it; nil for none or a synthetic size.
    static func initrdContents(_ spec: PayloadSpec?, scenario: Scenario) throws(PlanError) -> (
        label: String, bytes: [UInt8]
    )? {
        if let b = spec?.builtin {
            return ("builtin \(b.rawValue)", TestInitrd.archive(b, arch: scenario.machine.arch).bytes)
        }
        guard let path = spec?.file else { return nil }
        return (path, try readInitrd(path, scenario: scenario))
    }
}
