import KexecModel
import Kimage
import Testing

/// The preserved-memory map in both ABIs, byte by byte, read back; the KHO FDT and /chosen.
@Suite struct KhoMemoryMapTests {
    /// A bump allocator from `base` and a memory the objects are written into.
    final class Memory {
        var next: UInt64
        var pages: [UInt64: [UInt8]] = [:]
        init(_ base: UInt64) { next = base }
        func allocate(_: KhoMemoryMap.ObjectKind) -> PhysAddr {
            defer { next += 0x1000 }
            return PhysAddr(next)
        }
        func store(_ objects: [KhoMemoryMap.Object]) {
            for o in objects {
                let page = o.pa.raw & ~0xfff
                var p = pages[page] ?? [UInt8](repeating: 0, count: 0x1000)
                let off = Int(o.pa.raw & 0xfff)
                p.replaceSubrange(off..<off + o.bytes.count, with: o.bytes)
                pages[page] = p
            }
        }
        func read(_ a: PhysAddr, _ n: Int) -> [UInt8]? {
            guard let p = pages[a.raw & ~0xfff], Int(a.raw & 0xfff) + n <= 0x1000 else { return nil }
            return Array(p[Int(a.raw & 0xfff)..<Int(a.raw & 0xfff) + n])
        }
    }

    static func range(_ start: UInt64, _ size: UInt64) -> AddressRange {
        AddressRange(start: PhysAddr(start), size: ByteCount(size))!
    }

    static let blocks =
        KhoMemoryMap.blocks(of: range(0x1_2000_0000, 4 << 20)) + KhoMemoryMap.blocks(of: range(0x2_c000_3000, 0x5000))

    @Test func preservePagesSplitsByAlignment() {
        #expect(
            Self.blocks == [
                KhoBlock(pfn: 0x12_0000, order: 10), KhoBlock(pfn: 0x2c_0003, order: 0),
                KhoBlock(pfn: 0x2c_0004, order: 2),
            ])
        #expect(
            KhoMemoryMap.blocks(of: Self.range(0x1000, 0x7000)) == [
                KhoBlock(pfn: 1, order: 0), KhoBlock(pfn: 2, order: 1), KhoBlock(pfn: 4, order: 2),
            ])
        #expect(
            KhoMemoryMap.ranges(of: Self.blocks).map(\.description) == [
                "[0x0000000120000000-0x00000001203fffff]", "[0x00000002c0003000-0x00000002c0007fff]",
            ])
    }

    /// kho-v1 with 512-byte bitmaps: one bitmap per (order, index), then one chunk per order.
    @Test func chunkListBytes() throws {
        let mem = Memory(0x10000)
        let map = KhoMemoryMap.chunkList(blocks: Self.blocks, bitmapBytes: 512, allocate: mem.allocate)
        mem.store(map.objects)
        #expect(map.root == PhysAddr(0x13000))
        #expect(map.objects.map(\.pa.raw) == [0x11000, 0x12000, 0x10000, 0x13000, 0x14000, 0x15000])
        #expect(map.objects.map(\.bytes.count) == [512, 512, 512, 4096, 4096, 4096])
        // Bitmaps: order 0 bit 3 (pfn 0x2c0003 = 0x2c0 × 4096 + 3); order 2 bit 1 (0xb0001);
        // order 10 bit 0x480 (0x120000 >> 10).
        #expect(mem.read(PhysAddr(0x11000), 1) == [0x08])
        #expect(mem.read(PhysAddr(0x12000), 1) == [0x02])
        #expect(mem.read(PhysAddr(0x10090), 1) == [0x01])
        // Chunk headers { next, order, num_elms } and entries { phys_start, bitmap }.
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        #expect(
            mem.read(PhysAddr(0x13000), 32) == le(0x14000, 8) + le(0, 4) + le(1, 4) + le(0x2_c000_0000, 8)
                + le(0x11000, 8))
        #expect(
            mem.read(PhysAddr(0x14000), 32) == le(0x15000, 8) + le(2, 4) + le(1, 4) + le(0x2_c000_0000, 8)
                + le(0x12000, 8))
        #expect(mem.read(PhysAddr(0x15000), 32) == le(0, 8) + le(10, 4) + le(1, 4) + le(0, 8) + le(0x10000, 8))
        #expect(map.objects[0].describes(KhoBlock(pfn: 0x2c_0003, order: 0)))
        #expect(!map.objects[0].describes(KhoBlock(pfn: 0x12_0000, order: 10)))
        let back = try KhoMemoryMap.readChunkList(root: map.root, bitmapBytes: 512, read: mem.read)
        #expect(back == Self.blocks.sorted())
        // With page-sized bitmaps (a2fff99f92da) the same blocks need other indices.
        let mem4k = Memory(0x40000)
        let map4k = KhoMemoryMap.chunkList(blocks: Self.blocks, bitmapBytes: 4096, allocate: mem4k.allocate)
        mem4k.store(map4k.objects)
        #expect(
            try KhoMemoryMap.readChunkList(root: map4k.root, bitmapBytes: 4096, read: mem4k.read)
                == Self.blocks.sorted())
        #expect(mem4k.read(PhysAddr(map4k.root.raw + 16), 8) == le(0x2_c000_0000 & ~UInt64((32768 << 12) - 1), 8))
    }

    /// kho-v2: key = 1 << (52 − order) | pfn >> order; five table levels, a bitmap leaf.
    @Test func radixTreeBytes() throws {
        #expect(KhoMemoryMap.key(KhoBlock(pfn: 1, order: 0)) == 1 << 52 | 1)
        #expect(KhoMemoryMap.key(KhoBlock(pfn: 0x12_0000, order: 10)) == 1 << 42 | 0x480)
        #expect(KhoMemoryMap.block(key: 1 << 42 | 0x480) == KhoBlock(pfn: 0x12_0000, order: 10))
        #expect(KhoMemoryMap.block(key: 0) == nil)
        let mem = Memory(0x21000)
        let one = KhoMemoryMap.radixTree(
            blocks: [KhoBlock(pfn: 1, order: 0)], root: PhysAddr(0x20000), allocate: mem.allocate)
        #expect(one.map(\.pa.raw) == [0x20000, 0x21000, 0x22000, 0x23000, 0x24000, 0x25000])
        // Level 5 index = key bits 51..59 = 2; every lower table index is 0; leaf bit 1.
        #expect(Array(one[0].bytes[16..<24]) == [0x00, 0x10, 0x02, 0, 0, 0, 0, 0])
        #expect(one[0].bytes.enumerated().allSatisfy { $0.offset >= 16 && $0.offset < 24 || $0.element == 0 })
        for (i, next) in [0x22000, 0x23000, 0x24000, 0x25000].enumerated() {
            #expect(Array(one[i + 1].bytes[0..<8]) == (0..<8).map { UInt8(truncatingIfNeeded: next >> (8 * $0)) })
        }
        #expect(one[5].bytes[0] == 0x02 && one[5].what == "radix tree bitmap (level 0)")

        let all = Memory(0x31000)
        let tree = KhoMemoryMap.radixTree(blocks: Self.blocks, root: PhysAddr(0x30000), allocate: all.allocate)
        all.store(tree)
        #expect(try KhoMemoryMap.readRadixTree(root: PhysAddr(0x30000), read: all.read) == Self.blocks.sorted())
        // Order 0's key has bit 52 (root slot 2); orders 2 and 10 share root slot 0 and its level-4
        // table, then part (slots 256 and 1): the root, 5 pages for order 0, 1 + 2 × 4 for the others.
        #expect(tree.count == 15)
    }

    @Test func fdtHoldsTheMapRootInCpuOrder() throws {
        let blob = KhoMemoryMap.fdt(compatible: "kho-v2", mapRoot: PhysAddr(0x1_3fff_e000)).encode()
        let t = try Fdt.decode(blob)
        #expect(t.root.properties.map(\.name) == ["compatible", "preserved-memory-map"])
        #expect(t.root.property("compatible")?.value == Array("kho-v2".utf8) + [0])
        #expect(t.root.property("preserved-memory-map")?.value == [0x00, 0xe0, 0xff, 0x3f, 0x01, 0, 0, 0])
        let (c, root) = try KhoMemoryMap.readFdt(blob)
        #expect(c == "kho-v2" && root == PhysAddr(0x1_3fff_e000))
        #expect(throws: KhoMapError.self) { try KhoMemoryMap.readFdt([0xd0, 0x0d]) }
    }

    @Test func chosenCarriesKhoProperties() throws {
        var chosen = Dtb.Chosen(bootargs: "kho=on")
        chosen.khoFdt = Self.range(0x1_3fff_d000, 0x1000)
        chosen.khoScratch = Self.range(0xffdf_0000, 0x50)
        let map = try MemoryMap([Region(range: Self.range(0x4000_0000, 1 << 30), type: .usable)])
        let c = try #require(try Fdt.decode(Dtb.build(memory: map, chosen: chosen)).root.child("chosen"))
        #expect(c.properties.map(\.name) == ["linux,kho-fdt", "linux,kho-scratch", "bootargs"])
        #expect(
            c.property("linux,kho-fdt")?.value
                == [0, 0, 0, 1, 0x3f, 0xff, 0xd0, 0x00, 0, 0, 0, 0, 0, 0, 0x10, 0x00])
        #expect(c.property("linux,kho-scratch")?.rangesValue?.first?.0 == 0xffdf_0000)
        #expect(c.property("linux,kho-scratch")?.rangesValue?.first?.1 == 0x50)
    }
}
