import KexecModel
import Kimage

/// Synthetic contents for kernels and initrds given by size: reproducible pseudo-random bytes
/// (splitmix64 seeded by the segment name), so a lost or misplaced page always shows.
public enum Payload {
    public static func synthetic(name: String, size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        out.withUnsafeMutableBytes { fillSynthetic(seed: seed(name), size: size, offset: 0, into: $0) }
        return out
    }

    /// The same bytes as `synthetic`, produced where they are read (never held whole).
    public static func generated(name: String, size: Int) -> GeneratedContents {
        let s = seed(name)
        return GeneratedContents(count: size) { off, buf in fillSynthetic(seed: s, size: size, offset: off, into: buf) }
    }

    static func seed(_ name: String) -> UInt64 {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for b in name.utf8 { seed = (seed ^ UInt64(b)) &* 0x100_0000_01B3 }
        return seed
    }

    /// Word i of the stream is splitmix64 of seed + (i + 1)·γ (so any offset is reached directly),
    /// little endian; the bytes past the last whole word are (position · 131) mod 256.
    static func fillSynthetic(seed: UInt64, size: Int, offset: Int, into buf: UnsafeMutableRawBufferPointer) {
        let words = size / 8
        @inline(__always) func word(_ i: Int) -> UInt64 {
            var z = seed &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        guard let p = buf.baseAddress else { return }
        var pos = offset
        let end = offset + buf.count
        while pos < end {
            let w = pos / 8
            if w < words && pos % 8 == 0 && pos + 8 <= end {
                p.storeBytes(of: word(w).littleEndian, toByteOffset: pos - offset, as: UInt64.self)
                pos += 8
                continue
            }
            let v =
                w < words
                ? UInt8(truncatingIfNeeded: word(w) >> (8 * UInt64(pos % 8))) : UInt8(truncatingIfNeeded: pos &* 131)
            p.storeBytes(of: v, toByteOffset: pos - offset, as: UInt8.self)
            pos += 1
        }
    }

    /// What the first kernel left in memory that becomes a destination (old contents).
    public static let oldContentsByte: UInt8 = 0xd6

    /// A boot_params "zero page" (arch/x86/include/uapi/asm/bootparam.h) followed by the command
    /// line: e820 table from the machine, cmd_line_ptr pointing just past the 4 KiB page.
    public static func bootParams(machine: Machine, cmdline: String, loadAddress: PhysAddr) -> [UInt8] {
        var bp = [UInt8](repeating: 0, count: 0x1000)
        func put(_ off: Int, _ v: UInt64, _ n: Int) {
            for i in 0..<n { bp[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        put(0x1fe, 0xAA55, 2)  // hdr.boot_flag
        put(0x202, 0x5372_6448, 4)  // hdr.header "HdrS"
        put(0x206, 0x020f, 2)  // hdr.version 2.15
        put(0x210, 0xff, 1)  // hdr.type_of_loader: undefined
        let cmdAddr = loadAddress.raw &+ 0x1000
        put(0x228, cmdAddr & 0xffff_ffff, 4)  // hdr.cmd_line_ptr
        put(0x0c8, cmdAddr >> 32, 4)  // ext_cmd_line_ptr
        put(0x238, UInt64(cmdline.utf8.count), 4)  // hdr.cmdline_size
        // e820_table: 128 entries of { u64 addr; u64 size; u32 type } at 0x2d0; count at 0x1e8.
        var n = 0
        for r in machine.memory.regions where n < 128 {
            let type: UInt64
            switch r.type {
            case .usable: type = 1
            case .reserved: type = 2
            case .acpi: type = 3
            case .nvs: type = 4
            case .unusable: type = 5
            case .persistent: type = 7
            case .softReserved: type = 0xefff_ffff
            }
            let off = 0x2d0 + n * 20
            put(off, r.range.first.raw, 8)
            put(off + 8, r.range.size.raw, 8)
            put(off + 16, type, 4)
            n += 1
        }
        put(0x1e8, UInt64(n), 1)
        return bp + Array(cmdline.utf8) + [0]
    }
}
