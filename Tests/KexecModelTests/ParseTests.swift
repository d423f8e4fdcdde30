import Testing

@testable import KexecModel

@Suite("Parse")
struct ParseTests {
    @Test(
        "numbers",
        arguments: [
            ("0", 0),
            ("4096", 4096),
            ("0x1f", 0x1f),
            ("0X1F", 0x1f),
            ("1_000", 1000),
            ("0xffff_ffff", 0xffff_ffff),
            ("0100", 100),
            (" 42 ", 42),
            ("18446744073709551615", UInt64.max),
            ("0xffffffffffffffff", UInt64.max),
            ("0x0000000000000000ffffffffffffffff", UInt64.max),
        ] as [(String, UInt64)])
    func numbers(_ s: String, _ v: UInt64) {
        #expect(Parse.number(s) == v)
    }

    @Test(
        "malformed or overflowing numbers are nil",
        arguments: [
            "", " ", "0x", "_1", "1_", "1__0", "0x_1", "12a", "-1", "+1", "1.0", "1e3", "0b101", "4K",
            "18446744073709551616", "0x1_0000_0000_0000_0000", "99999999999999999999999",
        ])
    func badNumbers(_ s: String) {
        #expect(Parse.number(s) == nil)
    }

    @Test(
        "sizes",
        arguments: [
            ("12MiB", 12 << 20),
            ("256M", 256 << 20),
            ("4G", 4 << 30),
            ("4GiB", 4 << 30),
            ("1T", 1 << 40),
            ("16K", 16 << 10),
            ("512KiB", 512 << 10),
            ("4096", 4096),
            ("0x1000", 0x1000),
            ("12 MiB", 12 << 20),
            ("2gib", 2 << 30),
            ("3MB", 3 << 20),
            ("1P", 1 << 50),
            ("15EiB", 15 << 60),
            ("0x10M", 0x10 << 20),
            ("0x1eb", 0x1eb),
            ("100B", 100),
            ("0", 0),
            ("1_024K", 1024 << 10),
        ] as [(String, UInt64)])
    func sizes(_ s: String, _ v: UInt64) {
        #expect(Parse.size(s) == ByteCount(v))
    }

    @Test(
        "malformed or overflowing sizes are nil",
        arguments: [
            "", "1.5G", "-1", "-4K", "12XB", "MiB", "K", "0x", "4 G B", "12MiBs", "1_K",
            "16EiB", "16E", "18446744073709551616", "17179869184G",
        ])
    func badSizes(_ s: String) {
        #expect(Parse.size(s) == nil)
    }

    @Test func addresses() {
        #expect(Parse.address("0x7fe00000") == PhysAddr(0x7fe0_0000))
        #expect(Parse.address("0xffffffffffffffff") == PhysAddr(.max))
        #expect(Parse.address("0x10000000000000000") == nil)
        #expect(Parse.address("2G") == nil)
    }

    @Test func inclusiveRanges() throws {
        let r = try #require(Parse.range("0x100000-0x7fffffff"))
        #expect(r.first == PhysAddr(0x10_0000))
        #expect(r.last == PhysAddr(0x7fff_ffff))
        #expect(r.size == ByteCount(0x7ff0_0000))

        let one = try #require(Parse.range("0x0-0x0"))
        #expect(one.first == PhysAddr(0))
        #expect(one.last == PhysAddr(0))
        #expect(one.size == ByteCount(1))

        let top = try #require(Parse.range("0xfffffffffffff000-0xffffffffffffffff"))
        #expect(top.last == PhysAddr(.max))
        #expect(top.size == ByteCount(0x1000))
        #expect(top.end == nil)

        let all = try #require(Parse.range("0x0-0xffffffffffffffff"))
        #expect(all.first == PhysAddr(0))
        #expect(all.last == PhysAddr(.max))

        let spaced = try #require(Parse.range(" 0x1000 - 0x1fff "))
        #expect(spaced == AddressRange(first: PhysAddr(0x1000), last: PhysAddr(0x1fff)))
    }

    @Test func startSizeRanges() throws {
        let r = try #require(Parse.range("0x100000+2GiB"))
        #expect(r.first == PhysAddr(0x10_0000))
        #expect(r.last == PhysAddr(0x800f_ffff))

        let top = try #require(Parse.range("0xfffffffffffff000+4K"))
        #expect(top.last == PhysAddr(.max))
        #expect(top.size == ByteCount(0x1000))

        let byte = try #require(Parse.range("0xffffffffffffffff+1"))
        #expect(byte.first == PhysAddr(.max))
        #expect(byte.last == PhysAddr(.max))
    }

    @Test(
        "bad ranges are nil",
        arguments: [
            "0x2000-0x1000",  // inverted
            "0x1000+0",  // size 0
            "0xfffffffffffff000+8K",  // wraps past 2^64
            "0xffffffffffffffff+2",  // wraps by one byte
            "0x2+0xffffffffffffffff",  // wraps by one byte
            "0x1000-0xfff",  // inverted by one byte
            "0x0-0x10000000000000000",  // end does not fit
            "18446744073709551616+1",  // start does not fit
            "0x1000+16EiB",  // size does not fit
            "", "abc", "0x1000", "0x1000-", "-0x1000", "+4K", "1-2-3", "0x1000+1.5K", "0x1000..0x2000",
        ])
    func badRanges(_ s: String) {
        #expect(Parse.range(s) == nil)
    }

    @Test func rangeProblemsAreTold() {
        #expect(Parse.checkedRange("0x2000-0x1000") == .failure(.inverted(first: 0x2000, last: 0x1000)))
        #expect(Parse.checkedRange("0xfffffffffffff000+8K") == .failure(.wraps))
        #expect(Parse.checkedRange("0x1000+0") == .failure(.zeroSize))
        #expect(Parse.checkedRange("0x0-0x10000000000000000") == .failure(.overflow))
        #expect(Parse.checkedRange("0x0-zz") == .failure(.malformed))
        #expect(Parse.checkedSize("16EiB") == .failure(.overflow))
        #expect(Parse.checkedSize("12XB") == .failure(.malformed))
        #expect(Parse.checkedNumber("18446744073709551616") == .failure(.overflow))
        #expect(Parse.checkedNumber("18446744073709551616x") == .failure(.malformed))
    }
}
