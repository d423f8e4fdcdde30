import KexecModel

/// The device tree kexec hands an arm64 kernel (drivers/of/kexec.c of_kexec_alloc_and_setup_fdt
/// edits the first kernel's tree the same way): memory nodes from the machine's System RAM, and
/// /chosen with the command line, the initrd and, for a crash kernel, the ELF core header and the
/// memory it may use.
public enum Dtb {
    /// The /chosen contents.
    public struct Chosen: Sendable {
        public var bootargs: String
        /// [start, end) of the initrd: linux,initrd-start / linux,initrd-end (u64, end exclusive).
        public var initrd: AddressRange?
        /// linux,elfcorehdr = <address size> (crash kernels).
        public var elfcorehdr: AddressRange?
        /// linux,usable-memory-range = <address size>… (crash kernels: the crashkernel ranges).
        public var usableMemory: [AddressRange]
        public init(
            bootargs: String, initrd: AddressRange? = nil, elfcorehdr: AddressRange? = nil,
            usableMemory: [AddressRange] = []
        ) {
            self.bootargs = bootargs
            self.initrd = initrd
            self.elfcorehdr = elfcorehdr
            self.usableMemory = usableMemory
        }
    }

    /// The tree: / (compatible, #address-cells = #size-cells = 2), /chosen, and one
    /// /memory@<address> node (device_type "memory", reg) per usable range of `memory`.
    public static func tree(memory: MemoryMap, chosen: Chosen, compatible: String = "linux,dummy-virt") -> Fdt {
        func pair(_ r: AddressRange) -> (UInt64, UInt64) { (r.first.raw, r.size.raw) }
        var chosenProps: [FdtProperty] = [.string("bootargs", chosen.bootargs)]
        if let i = chosen.initrd {
            chosenProps.append(.u64("linux,initrd-start", i.first.raw))
            chosenProps.append(.u64("linux,initrd-end", i.endSaturated))
        }
        if let e = chosen.elfcorehdr { chosenProps.append(.ranges("linux,elfcorehdr", [pair(e)])) }
        if !chosen.usableMemory.isEmpty {
            chosenProps.append(.ranges("linux,usable-memory-range", chosen.usableMemory.map(pair)))
        }
        var children = [FdtNode("chosen", properties: chosenProps)]
        for r in memory.usable.ranges {
            children.append(
                FdtNode(
                    "memory@" + String(r.first.raw, radix: 16),
                    properties: [.string("device_type", "memory"), .ranges("reg", [pair(r)])]))
        }
        let root = FdtNode(
            "",
            properties: [
                .string("compatible", compatible), .u32("#address-cells", 2), .u32("#size-cells", 2),
            ],
            children: children)
        return Fdt(root: root)
    }

    /// The blob of `tree(memory:chosen:compatible:)`.
    public static func build(memory: MemoryMap, chosen: Chosen, compatible: String = "linux,dummy-virt") -> [UInt8] {
        tree(memory: memory, chosen: chosen, compatible: compatible).encode()
    }

    /// Reads a blob (see `Fdt.decode`).
    public static func read(_ blob: [UInt8]) throws(DtbError) -> Fdt { try Fdt.decode(blob) }
}
