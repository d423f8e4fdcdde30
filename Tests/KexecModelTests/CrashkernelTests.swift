import Testing

@testable import KexecModel

private func r(_ first: UInt64, _ last: UInt64) -> AddressRange {
    AddressRange(first: PhysAddr(first), last: PhysAddr(last))!
}

private func machine(_ usable: [(UInt64, UInt64)], reserved: [(UInt64, UInt64)] = []) -> MemoryMap {
    let regions =
        usable.map { Region(range: r($0.0, $0.1), type: .usable) }
        + reserved.map { Region(range: r($0.0, $0.1), type: .reserved) }
    return try! MemoryMap(regions)
}

/// 4 GiB: usable 0-0x9ffff, 0x100000-0xbffdffff, 0x100000000-0x13fffffff (4095.5 MiB of RAM).
private let m4 = machine(
    [(0, 0x9_ffff), (0x10_0000, 0xbffd_ffff), (0x1_0000_0000, 0x1_3fff_ffff)],
    reserved: [(0xbffe_0000, 0xbfff_ffff), (0xfffc_0000, 0xffff_ffff)])
/// 24 TiB with 2 GiB below 4 GiB.
private let m24 = machine([(0, 0x9_ffff), (0x10_0000, 0x7fff_ffff), (0x1_0000_0000, 0x1800_0000_0000 - 1)])
/// 80 TiB: RAM runs past x86_64's 64 TiB crashkernel limit.
private let m80 = machine([(0x10_0000, 0x7fff_ffff), (0x1_0000_0000, 0x5000_0000_0000 - 1)])
/// arm64 QEMU virt: 4 GiB at 1 GiB.
private let arm = machine([(0x4000_0000, 0x1_3fff_ffff)])

private func reserve(_ s: String, _ m: MemoryMap = m4, arch: CrashkernelArch = .x86_64) throws(CrashkernelError)
    -> [AddressRange]
{
    guard let spec = try Crashkernel.parse(s, systemRAM: m.totalRAM) else { return [] }
    return try Crashkernel.reserve(spec, in: m, arch: arch)
}

private func error(_ s: String, _ m: MemoryMap = m4, arch: CrashkernelArch = .x86_64) -> CrashkernelError? {
    do throws(CrashkernelError) {
        _ = try reserve(s, m, arch: arch)
        return nil
    } catch {
        return error
    }
}

@Suite("Crashkernel")
struct CrashkernelTests {
    // MARK: Parsing

    @Test func parsesEveryForm() throws {
        let ram = ByteCount.gib(4)
        #expect(try Crashkernel.parse("256M", systemRAM: ram) == CrashkernelSpec(size: .mib(256)))
        #expect(try Crashkernel.parse("0x10000000", systemRAM: ram) == CrashkernelSpec(size: .mib(256)))
        #expect(try Crashkernel.parse("262144k", systemRAM: ram) == CrashkernelSpec(size: .mib(256)))
        #expect(
            try Crashkernel.parse("256M@16M", systemRAM: ram)
                == CrashkernelSpec(size: .mib(256), placement: .fixed(PhysAddr(16 << 20))))
        #expect(
            try Crashkernel.parse("1G,high", systemRAM: ram) == CrashkernelSpec(size: .gib(1), placement: .high))
        #expect(
            try Crashkernel.parse("crashkernel=1G,high crashkernel=128M,low", systemRAM: ram)
                == CrashkernelSpec(size: .gib(1), placement: .high, lowSize: .mib(128)))
        #expect(
            try Crashkernel.parse("1G,high 0,low", systemRAM: ram)
                == CrashkernelSpec(size: .gib(1), placement: .high, lowSize: .zero))
        // The plain form wins over ,high, and the last plain one over earlier ones.
        #expect(try Crashkernel.parse("1G,high 256M", systemRAM: ram) == CrashkernelSpec(size: .mib(256)))
        #expect(try Crashkernel.parse("128M crashkernel=256M", systemRAM: ram) == CrashkernelSpec(size: .mib(256)))
        // Octal, as simple_strtoull with base 0 reads a leading 0.
        #expect(try Crashkernel.parse("0400M", systemRAM: ram) == CrashkernelSpec(size: .mib(256)))
    }

    @Test func rangeFormMatchesRoundedRAM() throws {
        let ram = m4.totalRAM
        #expect(ram == ByteCount(0xfff8_0000))
        #expect(
            try Crashkernel.parse("512M-2G:64M,2G-:128M", systemRAM: ram) == CrashkernelSpec(size: .mib(128)))
        // 4095.5 MiB rounds up to 4 GiB: it matches 4G-, not 512M-4G (start <= RAM < end).
        #expect(
            try Crashkernel.parse("512M-4G:64M,4G-:192M", systemRAM: ram) == CrashkernelSpec(size: .mib(192)))
        #expect(
            try Crashkernel.parse("1G-4G:192M,4G-64G:256M,64G-:512M@0x20000000", systemRAM: ram)
                == CrashkernelSpec(size: .mib(256), placement: .fixed(PhysAddr(0x2000_0000))))
        // No range matches, or the match says 0: nothing to reserve.
        #expect(try Crashkernel.parse("512M-2G:64M", systemRAM: ram) == nil)
        #expect(try Crashkernel.parse("4G-:0M", systemRAM: ram) == nil)
        #expect(try Crashkernel.parse("0M", systemRAM: ram) == nil)
        #expect(try Crashkernel.parse("0,high", systemRAM: ram) == nil)
        // Exactly at a boundary: start <= RAM.
        #expect(try Crashkernel.parse("2G-:64M", systemRAM: .gib(2)) == CrashkernelSpec(size: .mib(64)))
        #expect(try Crashkernel.parse("1G-2G:64M", systemRAM: .gib(2)) == nil)
    }

    @Test func malformedValues() {
        func message(_ s: String) -> String? {
            do throws(CrashkernelError) {
                _ = try Crashkernel.parse(s, systemRAM: .gib(4))
                return nil
            } catch {
                guard case .syntax(let m) = error else { return "not a syntax error: \(error)" }
                return m
            }
        }
        #expect(message("")?.contains("empty") == true)
        #expect(message("crashkernel=")?.contains("empty") == true)
        #expect(
            message("256MB")
                == "crashkernel=256MB: unexpected \"B\" (sizes take K, M, G, T, P or E without \"B\" or \"iB\")")
        #expect(message("256MiB")?.contains("unexpected \"iB\"") == true)
        #expect(message("abc") == "crashkernel=abc: expected a size (e.g. 256M), found \"abc\"")
        #expect(message("256M@") == "crashkernel=256M@: expected an offset after '@', found nothing")
        #expect(message("256M@x") == "crashkernel=256M@x: expected an offset after '@', found \"x\"")
        #expect(message("1G-2G")?.contains("unexpected \"-2G\"") == true)
        #expect(message("-1G:256M")?.contains("expected the start of a range") == true)
        #expect(message("2G-1G:256M") == "crashkernel=2G-1G:256M: range end 1GiB is not above its start 2GiB")
        #expect(message("1G-2G:") == "crashkernel=1G-2G:: expected a size after ':', found nothing")
        #expect(message("1G-2Gx:64M")?.contains("':' expected after the range 1G-2G") == true)
        #expect(message("1G:64M")?.contains("'-' expected after the range start 1G") == true)
        #expect(message("1G-2G:64M;") == "crashkernel=1G-2G:64M;: unexpected \";\"")
        #expect(message("1G-2G:64M,")?.contains("expected the start of a range") == true)
        #expect(message("99999999999999999999M")?.contains("does not fit in 64 bits") == true)
        #expect(message("16E")?.contains("16E does not fit in 64 bits") == true)
        #expect(message("0x1ffffffffffffffff")?.contains("does not fit in 64 bits") == true)
        #expect(message("1G,high,low")?.contains("unexpected \",high\" between the size and ,low") == true)
        #expect(message("x,high")?.contains("expected a size before ,high") == true)
        #expect(message("256M,cma")?.contains(",cma form is not modelled") == true)
        #expect(message("256M,high@4G")?.contains("unexpected \",high@4G\"") == true)
        #expect(message("128M,low")?.contains("needs a size,high too") == true)
        // A bad value is an error even when a later one would win.
        #expect(message("25x6M 256M") != nil)
    }

    @Test func tooLarge() {
        #expect(
            error("8G")
                == .tooLarge(text: "8G", size: .gib(8), systemRAM: ByteCount(0xfff8_0000)))
        #expect(
            error("8G")?.description
                == "crashkernel=8G is larger than the RAM that can hold it (8GiB of 4.0GiB = 0xfff80000 bytes of usable RAM)"
        )
        #expect(error("4G") == .tooLarge(text: "4G", size: .gib(4), systemRAM: ByteCount(0xfff8_0000)))
        #expect(error("5G,high") == .tooLarge(text: "5G,high", size: .gib(5), systemRAM: ByteCount(0xfff8_0000)))
        // The range form checks each size up to the match against the rounded RAM size.
        #expect(error("1G-:8G").map { "\($0)" }?.contains("size 8GiB is not smaller than the RAM (4GiB") == true)
        #expect(error("64T", m24) != nil)
    }

    // MARK: Reserving, x86_64, 4 GiB

    @Test func x86AutoIsTopDownBelow4G() throws {
        // Top of the usable range below 4 GiB (0xbffe0000) minus 256 MiB, rounded down to 16 MiB.
        #expect(try reserve("256M") == [r(0xaf00_0000, 0xbeff_ffff)])
        #expect(try reserve("256M@0") == [r(0xaf00_0000, 0xbeff_ffff)])
        #expect(try reserve("512M-2G:64M,2G-:128M") == [r(0xb700_0000, 0xbeff_ffff)])
        #expect(try reserve("1536M") == [r(0x5f00_0000, 0xbeff_ffff)])
        #expect(try reserve("512M-2G:64M") == [])
    }

    @Test func x86FixedOffset() throws {
        #expect(try reserve("256M@16M") == [r(0x100_0000, 0x10ff_ffff)])
        #expect(try reserve("256M@4G") == [r(0x1_0000_0000, 0x1_0fff_ffff)])
        #expect(
            error("256M@3G")
                == .badOffset(
                    "crashkernel=256MiB@0xc0000000: [0x00000000c0000000-0x00000000cfffffff] is not inside usable RAM "
                        + "(at 0xc0000000: a hole (no region))"))
        #expect(
            error("256M@24M")
                == .badOffset("crashkernel=256MiB@0x1800000: offset 0x1800000 is not a multiple of 16MiB (CRASH_ALIGN)")
        )
        // Runs past the end of the usable range.
        #expect(error("512M@0xb0000000").map { "\($0)" }?.contains("is not inside usable RAM") == true)
        #expect(error("512M@0xfffffffff0000000").map { "\($0)" }?.contains("wraps") == true)
    }

    @Test func x86High() throws {
        #expect(try reserve("1G,high") == [r(0xaf00_0000, 0xbeff_ffff), r(0x1_0000_0000, 0x1_3fff_ffff)])
        #expect(try reserve("1G,high 0,low") == [r(0x1_0000_0000, 0x1_3fff_ffff)])
        #expect(
            try reserve("crashkernel=1G,high crashkernel=128M,low")
                == [r(0xb700_0000, 0xbeff_ffff), r(0x1_0000_0000, 0x1_3fff_ffff)])
        // Only 1 GiB above 4 GiB: ,high falls back below 4 GiB, without a low part.
        #expect(try reserve("2G,high") == [r(0x3f00_0000, 0xbeff_ffff)])
    }

    @Test func x86NoRoom() {
        #expect(
            error("3G")
                == .noRoom("crashkernel=3GiB: no 16MiB-aligned free range of 3GiB in usable RAM below 0x400000000000"))
        #expect(error("3800M").map { "\($0)" }?.contains("no 16MiB-aligned free range") == true)
        // The high part fits but the low part does not.
        let tiny = machine([(0x10_0000, 0x7ff_ffff), (0x1_0000_0000, 0x1_ffff_ffff)])
        #expect(error("1G,high", tiny).map { "\($0)" }?.contains("its low part of 256MiB does not fit") == true)
    }

    // MARK: Reserving, x86_64, 24 TiB and 80 TiB

    @Test func x86LargeMachines() throws {
        #expect(try reserve("512M", m24) == [r(0x6000_0000, 0x7fff_ffff)])
        #expect(try reserve("1G,high", m24) == [r(0x7000_0000, 0x7fff_ffff), r(0x17ff_c000_0000, 0x17ff_ffff_ffff)])
        // Does not fit below 4 GiB: falls back to the top of RAM, with the default low part.
        #expect(try reserve("4G", m24) == [r(0x7000_0000, 0x7fff_ffff), r(0x17ff_0000_0000, 0x17ff_ffff_ffff)])
        #expect(
            try reserve("1T-:2G,64M-1T:128M", m24) == [
                r(0x7000_0000, 0x7fff_ffff), r(0x17ff_8000_0000, 0x17ff_ffff_ffff),
            ])
        // 80 TiB of RAM: the crash kernel stays below 64 TiB.
        #expect(try reserve("1G,high", m80) == [r(0x7000_0000, 0x7fff_ffff), r(0x3fff_c000_0000, 0x3fff_ffff_ffff)])
        #expect(try reserve("256M@70T", m80) == [r(70 << 40, (70 << 40) + (256 << 20) - 1)])
    }

    // MARK: Reserving, arm64

    @Test func arm64() throws {
        #expect(try reserve("256M", arm, arch: .arm64()) == [r(0xf000_0000, 0xffff_ffff)])
        #expect(
            try reserve("1G,high", arm, arch: .arm64())
                == [r(0xf800_0000, 0xffff_ffff), r(0x1_0000_0000, 0x1_3fff_ffff)])
        // A 2 GiB DMA zone limits the low search.
        #expect(
            try reserve("256M", arm, arch: .arm64(dmaLimit: PhysAddr(0x8000_0000))) == [r(0x7000_0000, 0x7fff_ffff)])
        // 2 MiB alignment.
        #expect(try reserve("256M@0x40200000", arm, arch: .arm64()) == [r(0x4020_0000, 0x501f_ffff)])
        #expect(
            error("256M@0x40100000", arm, arch: .arm64())
                == .badOffset(
                    "crashkernel=256MiB@0x40100000: offset 0x40100000 is not a multiple of 2MiB (CRASH_ALIGN)"))
        // ,high with too little above the DMA zone falls back below it.
        #expect(try reserve("2G,high", arm, arch: .arm64()) == [r(0x8000_0000, 0xffff_ffff)])
        #expect(CrashkernelArch.of(.arm64) == .arm64(dmaLimit: PhysAddr(1 << 32)))
        #expect(CrashkernelArch.of(.x86_64) == .x86_64)
    }

    @Test func allocatorWalksFromTheTop() {
        let free = RangeSet([r(0x10_0000, 0x1fff_ffff), r(0x4000_0000, 0x4fff_ffff)])
        #expect(
            Crashkernel.allocTopDown(free, size: .mib(64), align: .mib(16), start: PhysAddr(0), end: PhysAddr(1 << 32))
                == PhysAddr(0x4c00_0000))
        // The top range is too small: the next one down.
        #expect(
            Crashkernel.allocTopDown(free, size: .mib(300), align: .mib(16), start: PhysAddr(0), end: PhysAddr(1 << 32))
                == PhysAddr(0xd00_0000))
        #expect(
            Crashkernel.allocTopDown(free, size: .gib(1), align: .mib(16), start: PhysAddr(0), end: PhysAddr(1 << 32))
                == nil)
        // A range reaching the top of the address space.
        let top = RangeSet([r(0xffff_ffff_0000_0000, .max)])
        #expect(
            Crashkernel.allocTopDown(top, size: .mib(16), align: .mib(16), start: PhysAddr(0), end: PhysAddr(.max))
                == PhysAddr(0xffff_ffff_fe00_0000))
    }
}
