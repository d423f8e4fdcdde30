import KexecModel

/// The platform nodes an arm64 kexec DTB carries over from the first kernel's tree when the run
/// follows the next kernel (drivers/of/kexec.c, v6.1, copies the running kernel's whole tree and
/// edits only /chosen and the memory reservations; Dtb.swift builds the memory and /chosen part).
/// The devices are those of QEMU's `virt` board that a kernel needs to print its early console:
/// one CPU started through PSCI, the PSCI firmware node, the PL011 UART and its clock
/// (Documentation/devicetree/bindings: arm/psci.yaml, arm/cpus.yaml, serial/pl011.yaml,
/// clock/fixed-clock.yaml).
///
/// The interrupt controller and the timer are QEMU virt's too (hw/arm/virt.c create_gic and
/// fdt_add_timer_nodes; bindings interrupt-controller/arm,gic.yaml and timer/arm,arch_timer.yaml):
/// a GICv2 `arm,cortex-a15-gic` with #interrupt-cells 3 and the distributor and CPU interface
/// windows, and an `arm,armv8-timer` whose four PPIs (secure physical 13, non-secure physical 14,
/// virtual 11, hypervisor 10) are level-high for CPU 0 (flags 0x104). Both name the GIC as their
/// `interrupt-parent` (QEMU puts the property on the root; the kernel's of_irq_find_parent reads
/// it on the node first).
public struct DtbPlatform: Sendable, Equatable {
    /// The UART's MMIO base (QEMU virt: 0x09000000).
    public var uartBase: PhysAddr
    /// The PSCI conduit: "hvc" or "smc".
    public var psciMethod: String
    /// The CPU's compatible string.
    public var cpu: String
    /// The GICv2 distributor and CPU interface bases (QEMU virt: 0x08000000, 0x08010000).
    public var gicDistributor = PhysAddr(0x800_0000)
    public var gicCpuInterface = PhysAddr(0x801_0000)

    /// The phandle of the interrupt controller.
    static let gicPhandle: UInt32 = 0x8001
    /// The timer's PPIs as QEMU virt declares them: (type 1 = PPI, number, flags) for the secure
    /// physical, non-secure physical, virtual and hypervisor timers; flags = level-high (4) with
    /// the CPU-0 mask in bits 15:8.
    public static let timerInterrupts: [UInt32] = [1, 13, 0x104, 1, 14, 0x104, 1, 11, 0x104, 1, 10, 0x104]

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
        let gic = FdtNode(
            "intc@" + String(gicDistributor.raw, radix: 16),
            properties: [
                .string("compatible", "arm,cortex-a15-gic"), .u32("#interrupt-cells", 3),
                FdtProperty("interrupt-controller", []),
                .ranges("reg", [(gicDistributor.raw, UInt64(0x10000)), (gicCpuInterface.raw, UInt64(0x10000))]),
                .u32("phandle", Self.gicPhandle),
            ])
        let timer = FdtNode(
            "timer",
            properties: [
                .strings("compatible", ["arm,armv8-timer", "arm,armv7-timer"]),
                .u32("interrupt-parent", Self.gicPhandle),
                FdtProperty("interrupts", Self.timerInterrupts.flatMap(Self.be32)),
            ])
        return [psci, cpus, clock, uart, gic, timer]
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt32(24), 16, 8, 0].map { UInt8(truncatingIfNeeded: v >> $0) } }
}
