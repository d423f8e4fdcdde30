import Testing

@testable import KexecModel

/// Device tree blobs: memory nodes, linux,usable-memory, no-map reserved memory, cell counts.
@Suite("Importer: device tree blob")
struct ImporterDtbTests {
    static func board(
        addressCells: UInt32 = 2, sizeCells: UInt32 = 2, extraMemory: [FdtProperty] = [], status: String? = nil
    ) -> [UInt8] {
        func reg(_ pairs: [(UInt64, UInt64)]) -> FdtProperty {
            var v: [UInt8] = []
            for (a, s) in pairs {
                v += bigEndian(a, Int(addressCells) * 4)
                v += bigEndian(s, Int(sizeCells) * 4)
            }
            return FdtProperty("reg", v)
        }
        var second: [FdtProperty] = [.string("device_type", "memory"), reg([(0x8_8000_0000, 0x4000_0000)])]
        if let status { second.append(.string("status", status)) }
        let root = FdtNode(
            "",
            properties: [
                .u32("#address-cells", addressCells), .u32("#size-cells", sizeCells),
                .string("compatible", "linux,dummy-virt"),
            ],
            children: [
                FdtNode("chosen", properties: [.string("bootargs", "console=ttyAMA0")]),
                FdtNode(
                    "memory@40000000",
                    properties: [.string("device_type", "memory"), reg([(0x4000_0000, 0x8000_0000)])] + extraMemory),
                FdtNode("memory@880000000", properties: second),
                FdtNode(
                    "reserved-memory",
                    properties: [.u32("#address-cells", 2), .u32("#size-cells", 2), .empty("ranges")],
                    children: [
                        FdtNode("tee@50000000", properties: [reg([(0x5000_0000, 0x20_0000)]), .empty("no-map")]),
                        FdtNode("cma@60000000", properties: [reg([(0x6000_0000, 0x400_0000)]), .empty("reusable")]),
                    ]),
            ])
        return Fdt(root: root, reservations: [FdtReservation(address: 0x4800_0000, size: 0x1000)]).encode()
    }

    @Test func memoryNodesAndNoMapCarveOuts() throws {
        let m = try BootLog.parse(bytes: Self.board(), file: "board.dtb")
        #expect(m.format == .dtb)
        #expect(m.suggestedArch == .arm64)
        #expect(
            m.memory.regions == [
                reg(0x4000_0000, 0x4fff_ffff, .usable), reg(0x5000_0000, 0x501f_ffff, .reserved),
                reg(0x5020_0000, 0xbfff_ffff, .usable), reg(0x8_8000_0000, 0x8_bfff_ffff, .usable),
            ])
        #expect(
            m.sourceLines.map(\.text) == [
                "/memory@40000000 reg[0] [0x0000000040000000-0x00000000bfffffff]",
                "/reserved-memory/tee@50000000 reg[0] [0x0000000050000000-0x00000000501fffff]",
                "/memory@40000000 reg[0] [0x0000000040000000-0x00000000bfffffff]",
                "/memory@880000000 reg[0] [0x0000000880000000-0x00000008bfffffff]",
            ])
        #expect(
            m.notes == [
                "/reserved-memory/cma@60000000: [0x0000000060000000-0x0000000063ffffff] reserved but still RAM (no no-map)",
                "memreserve 0x48000000 size 0x1000: RAM the kernel keeps for itself",
            ])
    }

    /// A crash kernel's tree: linux,usable-memory wins over reg, as early_init_dt_scan_memory reads it.
    @Test func usableMemoryWinsAndDisabledNodesDoNotCount() throws {
        let usable = FdtProperty("linux,usable-memory", bigEndian(0x7000_0000, 8) + bigEndian(0x1000_0000, 8))
        let m = try BootLog.parse(bytes: Self.board(extraMemory: [usable], status: "disabled"), file: "crash.dtb")
        #expect(m.memory.regions == [reg(0x7000_0000, 0x7fff_ffff, .usable)])
        #expect(m.notes.first == "/memory@880000000: status \"disabled\", not memory the kernel uses")
    }

    @Test func oneCellAddresses() throws {
        // #address-cells = 1, #size-cells = 1: the second node's base is written in one cell
        // (0x80000000), so it lies inside the first node; the two merge as memblock_add merges them.
        let m = try BootLog.parse(bytes: Self.board(addressCells: 1, sizeCells: 1), file: "b.dtb")
        #expect(
            m.memory.regions == [
                reg(0x4000_0000, 0x4fff_ffff, .usable), reg(0x5000_0000, 0x501f_ffff, .reserved),
                reg(0x5020_0000, 0xbfff_ffff, .usable),
            ])
    }

    @Test func badBlobsAreImportErrors() throws {
        var truncated = Self.board()
        truncated.removeLast(100)
        #expect(throws: ImportError.self) { try BootLog.parse(bytes: truncated, format: .dtb, file: "t.dtb") }
        let oddReg = Fdt(
            root: FdtNode(
                "", properties: [.u32("#address-cells", 2), .u32("#size-cells", 2)],
                children: [
                    FdtNode("memory@0", properties: [.string("device_type", "memory"), FdtProperty("reg", [1, 2, 3])])
                ]
            )
        ).encode()
        do {
            _ = try BootLog.parse(bytes: oddReg, file: "odd.dtb")
            Issue.record("a 3-byte reg was accepted")
        } catch {
            #expect(error.message == "/memory@0 reg: 3 bytes is not a whole number of (2 address + 2 size) cells")
        }
        let noMemory = Fdt(root: FdtNode("", children: [FdtNode("chosen")])).encode()
        do {
            _ = try BootLog.parse(bytes: noMemory, file: "none.dtb")
            Issue.record("a tree without memory was accepted")
        } catch {
            #expect(error.message == "device tree blob: no memory node with a reg (device_type = \"memory\")")
        }
        let wrap = Fdt(
            root: FdtNode(
                "", properties: [.u32("#address-cells", 2), .u32("#size-cells", 2)],
                children: [
                    FdtNode(
                        "memory@0",
                        properties: [
                            .string("device_type", "memory"),
                            FdtProperty("reg", bigEndian(0xffff_ffff_ffff_f000, 8) + bigEndian(0x2000, 8)),
                        ])
                ])
        ).encode()
        do {
            _ = try BootLog.parse(bytes: wrap, file: "wrap.dtb")
            Issue.record("a wrapping reg was accepted")
        } catch {
            #expect(error.message == "/memory@0 reg[0]: base 0xfffffffffffff000 + size 0x2000 runs past 2^64")
        }
    }
}
