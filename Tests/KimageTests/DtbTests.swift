import KexecModel
import Kimage
import Testing

private func be32(_ b: [UInt8], _ off: Int) -> UInt32 {
    b[off..<off + 4].reduce(0) { ($0 << 8) | UInt32($1) }
}

private func setBE32(_ b: inout [UInt8], _ off: Int, _ v: UInt32) {
    for i in 0..<4 { b[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(3 - i))) }
}

private func dtbError(_ blob: [UInt8]) -> DtbError? {
    do {
        _ = try Fdt.decode(blob)
        return nil
    } catch {
        return error
    }
}

@Suite struct DtbTests {
    static let machineMemory = try! MemoryMap([
        Region(range: range(0x4000_0000, 0x7fff_ffff), type: .usable),
        Region(range: range(0x8000_0000, 0x800f_ffff), type: .reserved),
        Region(range: range(0x1_0000_0000, 0x1_3fff_ffff), type: .usable),
    ])

    @Test func tinyTreeHasTheExactBytes() throws {
        let fdt = Fdt(root: FdtNode("", properties: [.u32("a", 1)]))
        let blob = fdt.encode()
        let expected: [UInt8] =
            [
                0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 0x5a,  // magic, totalsize 90
                0, 0, 0, 0x38, 0, 0, 0, 0x58,  // off_dt_struct 56, off_dt_strings 88
                0, 0, 0, 0x28, 0, 0, 0, 17,  // off_mem_rsvmap 40, version 17
                0, 0, 0, 16, 0, 0, 0, 0,  // last_comp_version 16, boot_cpuid_phys 0
                0, 0, 0, 2, 0, 0, 0, 0x20,  // size_dt_strings 2, size_dt_struct 32
            ] + [UInt8](repeating: 0, count: 16)  // reservation terminator
            + [
                0, 0, 0, 1, 0, 0, 0, 0,  // FDT_BEGIN_NODE "" (padded)
                0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0,  // FDT_PROP len 4 nameoff 0
                0, 0, 0, 1,  // <1>
                0, 0, 0, 2,  // FDT_END_NODE
                0, 0, 0, 9,  // FDT_END
                0x61, 0,  // "a"
            ]
        #expect(blob == expected)
        #expect(try Fdt.decode(blob) == fdt)
    }

    @Test func kexecTreeReadsBack() throws {
        let initrd = AddressRange(start: PhysAddr(0x4800_0000), size: .kib(12))!
        let elf = AddressRange(start: PhysAddr(0x7000_0000), size: .kib(4))!
        let crash = [range(0x6000_0000, 0x6fff_ffff), range(0x1_3000_0000, 0x1_3fff_ffff)]
        let blob = Dtb.build(
            memory: Self.machineMemory,
            chosen: Dtb.Chosen(
                bootargs: "console=ttyAMA0 root=/dev/vda", initrd: initrd, elfcorehdr: elf, usableMemory: crash))
        #expect(be32(blob, 0) == 0xd00d_feed)
        #expect(be32(blob, 4) == UInt32(blob.count))
        #expect(be32(blob, 16) == 40)
        #expect(be32(blob, 20) == 17)
        #expect(be32(blob, 24) == 16)

        let fdt = try Dtb.read(blob)
        // /memreserve/ for the ELF core header, then the initrd (drivers/of/kexec.c fdt_add_mem_rsv).
        #expect(
            fdt.reservations == [
                FdtReservation(address: 0x7000_0000, size: 0x1000), FdtReservation(address: 0x4800_0000, size: 0x3000),
            ])
        #expect(fdt.root.name == "")
        #expect(fdt.root.property("compatible")?.stringValue == "linux,dummy-virt")
        #expect(fdt.root.property("#address-cells")?.u32Value == 2)
        #expect(fdt.root.property("#size-cells")?.u32Value == 2)
        #expect(fdt.root.children.map(\.name) == ["chosen", "memory@40000000", "memory@100000000"])

        let chosen = try #require(fdt.root.node(at: "/chosen"))
        #expect(
            chosen.properties.map(\.name) == [
                "linux,elfcorehdr", "linux,usable-memory-range", "bootargs", "linux,initrd-start", "linux,initrd-end",
            ])
        #expect(chosen.property("bootargs")?.stringValue == "console=ttyAMA0 root=/dev/vda")
        #expect(chosen.property("linux,initrd-start")?.u64Value == 0x4800_0000)
        #expect(chosen.property("linux,initrd-end")?.u64Value == 0x4800_3000)
        #expect(chosen.property("linux,elfcorehdr")?.rangesValue?.map { [$0.0, $0.1] } == [[0x7000_0000, 0x1000]])
        #expect(
            chosen.property("linux,usable-memory-range")?.rangesValue?.map { [$0.0, $0.1] } == [
                [0x6000_0000, 0x1000_0000], [0x1_3000_0000, 0x1000_0000],
            ])

        let low = try #require(fdt.root.node(at: "/memory@40000000"))
        #expect(low.property("device_type")?.stringValue == "memory")
        #expect(low.property("reg")?.rangesValue?.map { [$0.0, $0.1] } == [[0x4000_0000, 0x4000_0000]])
        let high = try #require(fdt.root.node(at: "memory@100000000"))
        #expect(high.property("reg")?.value == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0])
        // Round trip through the blob once more: identical bytes.
        #expect(fdt.encode() == blob)
    }

    @Test func chosenWithoutInitrdOrCrashProperties() throws {
        let fdt = try Dtb.read(Dtb.build(memory: Self.machineMemory, chosen: Dtb.Chosen(bootargs: "")))
        #expect(fdt.root.node(at: "/chosen")?.properties == [FdtProperty("bootargs", [0])])
    }

    @Test func roundTripOfANestedTreeWithReservations() throws {
        let tree = Fdt(
            root: FdtNode(
                "",
                properties: [.strings("compatible", ["vendor,board", "vendor,soc"]), .empty("ranges")],
                children: [
                    FdtNode(
                        "soc",
                        properties: [.u32("#address-cells", 1)],
                        children: [
                            FdtNode("uart@9000000", properties: [FdtProperty("reg", [0, 0x90, 0, 0, 0, 0, 0x10, 0])]),
                            FdtNode("empty"),
                            FdtNode("odd", properties: [FdtProperty("three", [1, 2, 3]), .string("s", "x")]),
                        ]),
                    FdtNode("cpus", children: [FdtNode("cpu@0", properties: [.u64("cpu-release-addr", 0x8000_fff8)])]),
                ]),
            reservations: [
                FdtReservation(address: 0x4000_0000, size: 0x1_0000), FdtReservation(address: 0, size: 0x1000),
            ],
            bootCpuidPhys: 3)
        let blob = tree.encode()
        let back = try Fdt.decode(blob)
        #expect(back == tree)
        #expect(back.root.property("compatible")?.stringListValue == ["vendor,board", "vendor,soc"])
        #expect(back.root.node(at: "/soc/odd")?.property("three")?.value == [1, 2, 3])
        #expect(back.root.node(at: "/cpus/cpu@0")?.property("cpu-release-addr")?.u64Value == 0x8000_fff8)
        // Property names are stored once in the strings block.
        #expect(
            be32(blob, 32) == UInt32("compatible\0ranges\0#address-cells\0reg\0three\0s\0cpu-release-addr\0".utf8.count)
        )
    }

    @Test func nopTokensAreSkipped() throws {
        var blob = Fdt(root: FdtNode("", properties: [.u32("a", 1)])).encode()
        // An FDT_NOP after the root's FDT_BEGIN_NODE and its (padded) empty name.
        let off = Int(be32(blob, 8))
        blob.insert(contentsOf: [0, 0, 0, 4], at: off + 8)
        setBE32(&blob, 4, be32(blob, 4) + 4)
        setBE32(&blob, 12, be32(blob, 12) + 4)
        setBE32(&blob, 36, be32(blob, 36) + 4)
        #expect(try Fdt.decode(blob).root.property("a")?.u32Value == 1)
    }

    @Test func everyTruncationIsAnError() {
        let blob = Dtb.build(memory: Self.machineMemory, chosen: Dtb.Chosen(bootargs: "console=ttyAMA0"))
        for n in 0..<blob.count {
            let e = dtbError(Array(blob.prefix(n)))
            if n < 40 {
                #expect(e == .truncatedHeader(length: n))
            } else {
                #expect(e == .totalSizeMismatch(totalsize: UInt32(blob.count), length: n))
            }
        }
        #expect(dtbError(blob) == nil)
    }

    @Test func headerErrors() {
        let good = Fdt(root: FdtNode("", properties: [.u32("a", 1)])).encode()
        var b = good
        b[0] = 0xd1
        #expect(dtbError(b) == .badMagic(0xd10d_feed))
        b = good
        setBE32(&b, 4, 39)
        #expect(dtbError(b) == .totalSizeMismatch(totalsize: 39, length: 90))
        b = good
        setBE32(&b, 20, 15)
        #expect(dtbError(b) == .unsupportedVersion(version: 15, lastCompatible: 16))
        b = good
        setBE32(&b, 24, 18)
        #expect(dtbError(b) == .unsupportedVersion(version: 17, lastCompatible: 18))
        b = good
        setBE32(&b, 8, 58)
        #expect(dtbError(b) == .misaligned(block: "structure", offset: 58))
        b = good
        setBE32(&b, 36, 0xffff_fff0)
        #expect(
            dtbError(b) == .blockOutOfBounds(block: "structure", offset: 56, size: 0xffff_fff0, totalsize: 90))
        b = good
        setBE32(&b, 12, 0xffff_ffff)
        setBE32(&b, 32, 2)
        #expect(dtbError(b) == .blockOutOfBounds(block: "strings", offset: 0xffff_ffff, size: 2, totalsize: 90))
        b = good
        setBE32(&b, 16, 8)
        #expect(dtbError(b) == .blockOutOfBounds(block: "memory reservation", offset: 8, size: 16, totalsize: 90))
        b = good
        setBE32(&b, 16, 64)  // reads the property as a non-zero entry, then runs off the end
        #expect(dtbError(b) == .reservationUnterminated)
    }

    @Test func structureErrors() {
        let good = Fdt(root: FdtNode("", properties: [.u32("a", 1)])).encode()
        // Offsets: struct at 56: BEGIN_NODE 56, name 60, PROP 64, len 68, nameoff 72, value 76,
        // END_NODE 80, END 84; strings at 88.
        var b = good
        setBE32(&b, 56, 7)
        #expect(dtbError(b) == .unexpectedToken(7, offset: 56))
        b = good
        setBE32(&b, 56, 3)
        #expect(dtbError(b) == .propertyOutsideNode(offset: 56))
        b = good
        setBE32(&b, 72, 2)
        #expect(dtbError(b) == .badStringOffset(nameoff: 2))
        b = good
        setBE32(&b, 72, 1)  // points at the NUL ending "a": an empty name, allowed
        #expect(dtbError(b) == nil)
        b = good
        setBE32(&b, 68, 0x7fff_ffff)
        #expect(dtbError(b) == .truncatedStructure(offset: 76))
        b = good
        setBE32(&b, 80, 9)  // FDT_END while the root is open
        #expect(dtbError(b) == .unbalanced(offset: 80))
        b = good
        setBE32(&b, 84, 2)  // a second FDT_END_NODE
        #expect(dtbError(b) == .unbalanced(offset: 84))
        b = good
        setBE32(&b, 84, 1)  // a second root
        #expect(dtbError(b) == .unexpectedToken(1, offset: 84))
        b = good
        setBE32(&b, 36, 28)  // struct block ends before FDT_END
        #expect(dtbError(b) == .truncatedStructure(offset: 84))
        b = good
        b[60] = 0x61
        b[61] = 0x61
        b[62] = 0x61
        b[63] = 0x61  // root name "aaaa" ends at the PROP token's first 0 byte; the walk goes on
        // mid-property: len 4 reads as FDT_NOP, nameoff 0 is no token.
        #expect(dtbError(b) == .unexpectedToken(0, offset: 72))
    }

    @Test func nameWithoutNulInsideTheBlock() {
        var b = Fdt(root: FdtNode("")).encode()
        // struct at 56: BEGIN_NODE, name word, END_NODE, END. Make the block end inside the name.
        setBE32(&b, 36, 6)
        b[60] = 0x61
        b[61] = 0x61
        #expect(dtbError(b) == .badNodeName(offset: 60))
    }

    @Test func propertyAfterASubnode() {
        var b = Fdt(root: FdtNode("", children: [FdtNode("c")])).encode()
        // BEGIN "" @56, name @60, BEGIN "c" @64, name @68, END_NODE @72, END_NODE @76, END @80;
        // insert a property of the root after its child, and its name "a".
        let prop: [UInt8] = [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]  // PROP len 0 nameoff 0
        b.insert(contentsOf: prop, at: 76)
        b.append(contentsOf: [0x61, 0])
        setBE32(&b, 4, be32(b, 4) + 14)
        setBE32(&b, 12, be32(b, 12) + 12)
        setBE32(&b, 32, 2)
        setBE32(&b, 36, be32(b, 36) + 12)
        #expect(dtbError(b) == .propertyAfterSubnode(offset: 76))
    }

    @Test func depthIsLimited() {
        var node = FdtNode("leaf")
        for i in 0..<Fdt.maxDepth { node = FdtNode("n\(i)", children: [node]) }
        let blob = Fdt(root: node).encode()
        #expect(dtbError(blob) == .tooDeep(offset: 56 + 8 * Fdt.maxDepth))
        var shallower = FdtNode("leaf")
        for i in 0..<(Fdt.maxDepth - 1) { shallower = FdtNode("n\(i)", children: [shallower]) }
        #expect(dtbError(Fdt(root: shallower).encode()) == nil)
    }

    /// Every single-byte change and a few thousand random multi-byte ones: the reader returns a
    /// tree or a DtbError, never traps.
    @Test func garbageNeverTraps() {
        let blob = Dtb.build(
            memory: Self.machineMemory,
            chosen: Dtb.Chosen(
                bootargs: "console=ttyAMA0", initrd: range(0x4800_0000, 0x4800_0fff),
                elfcorehdr: range(0x7000_0000, 0x7000_0fff)))
        var decoded = 0
        for i in blob.indices {
            for v: UInt8 in [0x00, 0x01, 0x7f, 0xff] {
                var b = blob
                b[i] = v
                if dtbError(b) == nil { decoded += 1 }
            }
        }
        var state: UInt64 = 0x2545_f491_4f6c_dd1d
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        for _ in 0..<3000 {
            var b = blob
            for _ in 0..<(1 + Int(next() % 8)) {
                b[Int(next() % UInt64(b.count))] = UInt8(truncatingIfNeeded: next())
            }
            if next() % 4 == 0 { b = Array(b.prefix(Int(next() % UInt64(b.count + 1)))) }
            _ = dtbError(b)
        }
        for n in [0, 1, 40, 41, 100, 4096] {
            let random = (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) }
            _ = dtbError(random)
            var withMagic = random
            if n >= 40 {
                setBE32(&withMagic, 0, 0xd00d_feed)
                setBE32(&withMagic, 4, UInt32(n))
                _ = dtbError(withMagic)
            }
        }
        // Changing a byte of a value or of padding still decodes: some mutations must.
        #expect(decoded > 0)
    }
}
