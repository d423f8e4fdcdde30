import Testing

@testable import KexecModel

/// arm64's crashkernel= rules by version on a QEMU virt-like map (RAM from 1 GiB): 5.10.223 and
/// 6.1.192 arch/arm64/mm/init.c reserve_crashkernel, 6.12.95 kernel/crash_reserve.c
/// reserve_crashkernel_generic (Debian's linux-source packages).
@Suite struct CrashkernelArm64Tests {
    static let v510 = KernelVersion(5, 10)
    static let v61 = KernelVersion(6, 1)
    static let v612 = KernelVersion(6, 12)

    /// `gib` GiB of RAM from 0x40000000; the DMA limit as max_zone_phys gives it (4 GiB at most).
    static func virt(_ gib: UInt64) throws -> (MemoryMap, CrashkernelArch) {
        let map = try MemoryMap([
            Region(range: AddressRange(start: PhysAddr(0x4000_0000), size: .gib(gib))!, type: .usable)
        ])
        let limit = min(0x4000_0000 + (gib << 30), 1 << 32)
        return (map, .arm64(dmaLimit: PhysAddr(limit)))
    }

    static func say(_ p: String, _ v: KernelVersion, _ gib: UInt64) throws -> CrashkernelOutcome {
        let (m, a) = try virt(gib)
        return try Crashkernel.reserve(p, in: m, arch: a, version: v)
    }

    @Test func rulesByVersion() {
        #expect(CrashkernelRules.of(.arm64, KernelVersion(5, 10)) == .arm64LowOnly)
        #expect(CrashkernelRules.of(.arm64, KernelVersion(5, 18)) == .arm64LowOnly)
        #expect(CrashkernelRules.of(.arm64, KernelVersion(5, 19)) == .arm64NoFallback)
        #expect(CrashkernelRules.of(.arm64, KernelVersion(6, 1)) == .arm64NoFallback)
        #expect(CrashkernelRules.of(.arm64, KernelVersion(6, 2)) == .generic)
        #expect(CrashkernelRules.of(.arm64, KernelVersion(6, 12)) == .generic)
        #expect(CrashkernelRules.of(.x86_64, KernelVersion(6, 1)) == .x86Legacy)
    }

    /// A plain size: top-down below the DMA limit, 2 MiB aligned, the same line in every version.
    @Test func plainSizeBelowTheDmaLimit() throws {
        for v in [Self.v510, Self.v61, Self.v612] {
            let o = try Self.say("256M", v, 4)
            #expect(o.ranges == [AddressRange(start: PhysAddr(0xf000_0000), size: .mib(256))!])
            #expect(o.messages == ["crashkernel reserved: 0x00000000f0000000 - 0x0000000100000000 (256 MB)"])
        }
    }

    /// `,high`: 5.10 skips it without a word; 6.1 takes the top of RAM with no low part; 6.12 takes
    /// the top of RAM above the DMA limit and 128 MiB below it.
    @Test func highByVersion() throws {
        let o510 = try Self.say("256M,high", Self.v510, 4)
        #expect(o510.ranges.isEmpty)
        #expect(o510.messages.isEmpty)
        let o61 = try Self.say("256M,high", Self.v61, 4)
        #expect(o61.ranges == [AddressRange(start: PhysAddr(0x1_3000_0000), size: .mib(256))!])
        #expect(o61.messages == ["crashkernel reserved: 0x0000000130000000 - 0x0000000140000000 (256 MB)"])
        let o612 = try Self.say("256M,high", Self.v612, 4)
        #expect(
            o612.ranges == [
                AddressRange(start: PhysAddr(0x1_3000_0000), size: .mib(256))!,
                AddressRange(start: PhysAddr(0xf800_0000), size: .mib(128))!,
            ])
        #expect(
            o612.messages == [
                "crashkernel low memory reserved: 0xf8000000 - 0x100000000 (128 MB)",
                "crashkernel reserved: 0x0000000130000000 - 0x0000000140000000 (256 MB)",
            ])
        // 6.1 with an explicit ,low.
        let low61 = try Self.say("256M,high 64M,low", Self.v61, 4)
        #expect(low61.messages.first == "crashkernel low memory reserved: 0xfc000000 - 0x100000000 (64 MB)")
    }

    /// A size the DMA zone (3 GiB here) cannot hold: 5.10 and 6.1 give up, 6.12 falls back above it
    /// with a 128 MiB low part.
    @Test func fallbackOnlyFrom62() throws {
        for v in [Self.v510, Self.v61] {
            let o = try Self.say("3073M", v, 8)
            #expect(o.ranges.isEmpty)
            #expect(o.messages == ["cannot allocate crashkernel (size:0xc0100000)"])
        }
        let o = try Self.say("3073M", Self.v612, 8)
        #expect(o.ranges.first == AddressRange(start: PhysAddr(0x1_7fe0_0000), size: .mib(3073))!)
        #expect(o.ranges.last == AddressRange(start: PhysAddr(0xf800_0000), size: .mib(128))!)
    }

    /// `@offset`: 5.10's three checks and their words; 6.1's failed search; 6.12's generic line.
    @Test func fixedBaseByVersion() throws {
        #expect(
            try Self.say("128M@0x60000000", Self.v510, 3).messages == [
                "crashkernel reserved: 0x0000000060000000 - 0x0000000068000000 (128 MB)"
            ])
        #expect(
            try Self.say("128M@0x20000000", Self.v510, 3).messages == [
                "cannot reserve crashkernel: region is not memory"
            ])
        #expect(
            try Self.say("128M@0x60100000", Self.v510, 3).messages == [
                "cannot reserve crashkernel: base address is not 2MB aligned"
            ])
        let (m, a) = try Self.virt(3)
        let busy = FirstKernelReservations(ranges: [AddressRange(start: PhysAddr(0x6400_0000), size: .mib(2))!])
        #expect(
            try Crashkernel.reserve("128M@0x60000000", in: m, arch: a, version: Self.v510, early: busy).messages == [
                "cannot reserve crashkernel: region overlaps reserved memory"
            ])
        #expect(
            try Crashkernel.reserve("128M@0x60000000", in: m, arch: a, version: Self.v61, early: busy).messages == [
                "cannot allocate crashkernel (size:0x8000000)"
            ])
        #expect(
            try Crashkernel.reserve("128M@0x60000000", in: m, arch: a, version: Self.v612, early: busy).messages == [
                "crashkernel reservation failed - memory is in use."
            ])
        #expect(
            try Self.say("128M@0x60100000", Self.v61, 3).messages == ["cannot allocate crashkernel (size:0x8000000)"])
    }

    /// A plain size of at least the RAM: 5.10 and 6.1 do not compare it and their search fails;
    /// 6.12's parse_crashkernel rejects it silently.
    @Test func tooLarge() throws {
        #expect(try Self.say("5G", Self.v510, 4).messages == ["cannot allocate crashkernel (size:0x140000000)"])
        #expect(try Self.say("5G", Self.v61, 4).messages == ["cannot allocate crashkernel (size:0x140000000)"])
        #expect(try Self.say("5G", Self.v612, 4).messages == [])
        #expect(try Self.say("5G,high", Self.v510, 4).messages == [])
    }
}
