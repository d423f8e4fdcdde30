import KexecModel

/// The device tree kexec hands an arm64 kernel (drivers/of/kexec.c of_kexec_alloc_and_setup_fdt
/// edits the first kernel's tree the same way, read in mainline 6.x): memory nodes from the
/// machine's System RAM, and /chosen with, in the kernel's order, linux,elfcorehdr and
/// linux,usable-memory-range (crash kernels: crashk_res, then crashk_low_res), linux,kho-fdt and
/// linux,kho-scratch (Kexec HandOver), bootargs,
/// linux,initrd-start / -end, kaslr-seed (u64) and rng-seed (RNG_SEED_SIZE = 128 bytes); the
/// memory reservation block gets the elfcorehdr (fdt_add_mem_rsv, "avoid elfcorehdr from being
/// stomped on in kdump kernel") and the initrd. The seeds are the kernel's get_random_* output:
/// fixed values here, so that runs are reproducible.
public enum Dtb {
    /// The /chosen contents.
    public struct Chosen: Sendable {
        public var bootargs: String
        /// [start, end) of the initrd: linux,initrd-start / linux,initrd-end (u64, end exclusive).
        public var initrd: AddressRange?
        /// linux,elfcorehdr = <address size> (crash kernels).
        public var elfcorehdr: AddressRange?
        /// linux,usable-memory-range = <address size>… (crash kernels: crashk_res first, then
        /// crashk_low_res), in the order given.
        public var usableMemory: [AddressRange]
        /// kaslr-seed and rng-seed (set when the first kernel's RNG is initialized).
        public var seeds: Bool
        /// Kexec HandOver: linux,kho-fdt = <fdt PAGE_SIZE> and linux,kho-scratch = <scratch
        /// segment, its bufsz> (drivers/of/kexec.c kho_add_chosen, after the crash properties).
        public var khoFdt: AddressRange?
        public var khoScratch: AddressRange?
        public init(
            bootargs: String, initrd: AddressRange? = nil, elfcorehdr: AddressRange? = nil,
            usableMemory: [AddressRange] = [], seeds: Bool = false
        ) {
            self.bootargs = bootargs
            self.initrd = initrd
            self.elfcorehdr = elfcorehdr
            self.usableMemory = usableMemory
            self.seeds = seeds
        }
    }

    /// The tree: / (compatible, #address-cells = #size-cells = 2), /chosen, one
    /// /memory@<address> node (device_type "memory", reg) per usable range of `memory`, then
    /// `devices` (the platform nodes the first kernel's tree carried, when the run follows the
    /// next kernel: `DtbPlatform`).
    public static func tree(
        memory: MemoryMap, chosen: Chosen, compatible: String = "linux,dummy-virt", devices: [FdtNode] = []
    ) -> Fdt {
        func pair(_ r: AddressRange) -> (UInt64, UInt64) { (r.first.raw, r.size.raw) }
        var chosenProps: [FdtProperty] = []
        var reservations: [FdtReservation] = []
        if let e = chosen.elfcorehdr {
            chosenProps.append(.ranges("linux,elfcorehdr", [pair(e)]))
            reservations.append(FdtReservation(address: e.first.raw, size: e.size.raw))
        }
        if !chosen.usableMemory.isEmpty {
            chosenProps.append(.ranges("linux,usable-memory-range", chosen.usableMemory.map(pair)))
        }
        if let f = chosen.khoFdt, let s = chosen.khoScratch {
            chosenProps.append(.ranges("linux,kho-fdt", [pair(f)]))
            chosenProps.append(.ranges("linux,kho-scratch", [pair(s)]))
        }
        chosenProps.append(.string("bootargs", chosen.bootargs))
        if let i = chosen.initrd {
            chosenProps.append(.u64("linux,initrd-start", i.first.raw))
            chosenProps.append(.u64("linux,initrd-end", i.endSaturated))
            reservations.append(FdtReservation(address: i.first.raw, size: i.size.raw))
        }
        if chosen.seeds {
            chosenProps.append(.u64("kaslr-seed", kaslrSeed))
            chosenProps.append(FdtProperty("rng-seed", rngSeed))
        }
        var children = [FdtNode("chosen", properties: chosenProps)]
        for r in memory.usable.ranges {
            children.append(
                FdtNode(
                    "memory@" + String(r.first.raw, radix: 16),
                    properties: [.string("device_type", "memory"), .ranges("reg", [pair(r)])]))
        }
        children += devices
        let root = FdtNode(
            "",
            properties: [
                .string("compatible", compatible), .u32("#address-cells", 2), .u32("#size-cells", 2),
            ],
            children: children)
        return Fdt(root: root, reservations: reservations)
    }

    /// The kaslr-seed this tool writes (the kernel writes get_random_u64()).
    public static let kaslrSeed: UInt64 = 0x6b65_7865_632d_7369
    /// The rng-seed this tool writes: RNG_SEED_SIZE (128) bytes 0, 1, 2, … (the kernel writes
    /// get_random_bytes()).
    public static let rngSeed: [UInt8] = (0..<128).map { UInt8($0) }

    /// The blob of `tree(memory:chosen:compatible:)`.
    public static func build(
        memory: MemoryMap, chosen: Chosen, compatible: String = "linux,dummy-virt", devices: [FdtNode] = []
    ) -> [UInt8] {
        tree(memory: memory, chosen: chosen, compatible: compatible, devices: devices).encode()
    }

    /// Reads a blob (see `Fdt.decode`).
    public static func read(_ blob: [UInt8]) throws(DtbError) -> Fdt { try Fdt.decode(blob) }
}
