/// The arm64 test initrd's /init (c/test-init/init.c, built by scripts/build-guest-code): a static
/// AArch64 ELF that prints `kexec-sim: /init reached`, the command line, /proc/vmcore's size (or
/// why it is absent) and `kexec-sim: /init done` through /dev/kmsg, then powers off with reboot(2).
public enum Arm64TestInit {
    public static var elf: [UInt8] { Arm64TestInitGenerated.elfBytes }
}

/// The x86_64 test initrd's /init (the same c/test-init/init.c, built for x86_64 by
/// scripts/build-guest-code): the same lines through /dev/kmsg, then reboot(2) POWER_OFF, which a
/// kernel without ACPI power-off turns into a halt (kernel/reboot.c, v6.1).
public enum X86TestInit {
    public static var elf: [UInt8] { X86TestInitGenerated.elfBytes }
}
