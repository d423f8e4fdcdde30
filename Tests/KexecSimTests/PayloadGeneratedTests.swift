import KexecModel
import KexecSim
import Kimage
import Testing

/// Synthetic payloads produced where they are read (`Payload.generated`) give exactly the bytes of
/// the held form (`Payload.synthetic`) at every offset and length, the odd tail included.
@Suite struct PayloadGeneratedTests {
    @Test(arguments: [0, 1, 7, 8, 9, 13, 504, 995, 1000, 1002])
    func everySliceMatchesTheHeldBytes(_ offset: Int) {
        let size = 1003  // 125 whole words and a 3-byte tail
        let held = Payload.synthetic(name: "initrd", size: size)
        let gen = Payload.generated(name: "initrd", size: size)
        #expect(gen.count == size)
        for length in [1, 3, 8, 17, size - offset] where offset + length <= size {
            var out = [UInt8](repeating: 0xee, count: length)
            out.withUnsafeMutableBytes { gen.fill(offset, $0) }
            #expect(out == Array(held[offset..<(offset + length)]), "offset \(offset) length \(length)")
        }
    }

    /// A segment serves generated contents through copyContents, and knows their count.
    @Test func segmentCopiesGeneratedContents() {
        var s = Segment(role: .kernel, mem: PhysAddr(0x100_0000), memsz: .mib(1), bytes: [], bufsz: .kib(8))
        s.generated = Payload.generated(name: "kernel", size: 8192)
        #expect(s.contentCount == 8192 && s.bytes.isEmpty)
        var page = [UInt8](repeating: 0, count: 4096)
        page.withUnsafeMutableBytes { s.copyContents(from: 4096, into: $0) }
        #expect(page == Array(Payload.synthetic(name: "kernel", size: 8192)[4096..<8192]))
        // The tail of a word-aligned stream is words only; byte 8191 is the last word's top byte.
        #expect(page[4095] == Payload.synthetic(name: "kernel", size: 8192)[8191])
    }
}
