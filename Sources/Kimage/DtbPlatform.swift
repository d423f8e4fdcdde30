import KexecModel

/// The platform nodes an arm64 kexec DTB carries over from the first kernel's tree when the run
/// follows the next kernel (drivers/of/kexec.c, v6.1, copies the running kernel's whole tree and
/// edits only /chosen and the memory reservations; Dtb.swift builds the memory and /chosen part).
/// The devices are those of QEMU's `virt` board that a kernel needs to print its early console:
/// one CPU started through PSCI, the PSCI firmware node, the PL011 UART and its clock
/// (Documentation/devicetree/bindings: arm/psci.yaml, arm/cpus.yaml, serial/pl011.yaml,
/// clock/fixed-clock.yaml).
///
/// No interrupt controller and no timer node: the follow machine has no interrupt model, so a
/// kernel stops in init_IRQ ("No interrupt controller found"), after its memory lines.
public struct DtbPlatform: Sendable, Equatable {
    /// The UART's MMIO base (QEMU virt: 0x09000000).
    public var uartBase: PhysAddr
    /// The PSCI conduit: "hvc" or "smc".
    public var psciMethod: String
    /// The CPU's compatible string.
    public var cpu: String

    /// QEMU virt's layout: PL011 at 0x9000000, PSCI over HVC, a Cortex-A72 (Unicorn's default model).
    public static func virt() -> DtbPlatform {
        DtbPlatform(uartBase: PhysAddr(0x900_0000), psciMethod: "hvc", cpu: "arm,cortex-a72")
    }

    /// The phandle of the UART's clock.
    static let clockPhandle: UInt32 = 0x8000

    /// The kernel command-line option that starts the early console on this UART.
    public var earlycon: String { "earlycon=pl011,\(hex(uartBase.raw))" }

    public var nodes: [FdtNode] {
        let clock = FdtNode(
            "apb-pclk",
            properties: [
                .string("compatible", "fixed-clock"), .u32("#clock-cells", 0), .u32("clock-frequency", 24_000_000),
                .string("clock-output-names", "clk24mhz"), .u32("phandle", Self.clockPhandle),
            ])
        let uart = FdtNode(
            "pl011@" + String(uartBase.raw, radix: 16),
            properties: [
                .strings("compatible", ["arm,pl011", "arm,primecell"]),
                .ranges("reg", [(uartBase.raw, UInt64(0x1000))]),
                FdtProperty("clocks", [Self.clockPhandle, Self.clockPhandle].flatMap(Self.be32)),
                .strings("clock-names", ["uartclk", "apb_pclk"]),
            ])
        let psci = FdtNode(
            "psci",
            properties: [
                .strings("compatible", ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]), .string("method", psciMethod),
            ])
        let cpus = FdtNode(
            "cpus", properties: [.u32("#address-cells", 1), .u32("#size-cells", 0)],
            children: [
                FdtNode(
                    "cpu@0",
                    properties: [
                        .string("device_type", "cpu"), .string("compatible", cpu), .u32("reg", 0),
                        .string("enable-method", "psci"),
                    ])
            ])
        return [psci, cpus, clock, uart]
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt32(24), 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
}
