import Testing

@testable import KexecModel

/// memblock=debug's `MEMBLOCK configuration:` block (MemblockDump): memblock.memory when the log has
/// no node ranges, and memblock.reserved before the crashkernel reservation.
@Suite("Importer: arm64 MEMBLOCK configuration")
struct ImporterMemblockDumpTests {
    static let block = """
        [    0.000000] crashkernel reserved: 0x00000000ec000000 - 0x00000000fc000000 (256 MB)
        [    0.000000] MEMBLOCK configuration:
        [    0.000000]  memory size = 0x0000000100000000 reserved size = 0x000000001b6f209c
        [    0.000000]  memory.cnt  = 0x1
        [    0.000000]  memory[0x0]\t[0x0000000040000000-0x000000013fffffff], 0x0000000100000000 bytes on node 0 flags: 0x0
        [    0.000000]  reserved.cnt  = 0x3
        [    0.000000]  reserved[0x0]\t[0x0000000040210000-0x000000004220afff], 0x0000000001ffb000 bytes flags: 0x0
        [    0.000000]  reserved[0x1]\t[0x00000000ec000000-0x00000000ffffffff], 0x0000000014000000 bytes flags: 0x0
        [    0.000000]  reserved[0x2]\t[0x000000013f7fa000-0x000000013fffffff], 0x0000000000806000 bytes flags: 0x0
        [    0.000000] psci: probing for conduit method from DT.

        """

    @Test func memoryAndReservationsBeforeTheCrashkernel() throws {
        let m = try importLog(Self.block)
        #expect(m.format == .memblock)
        #expect(m.memory.regions == [reg(0x4000_0000, 0x1_3fff_ffff, .usable)])
        #expect(m.crashkernelRanges == [rng(0xec00_0000, 0xfbff_ffff)])
        // The crashkernel range comes out of the merged reservation; the CMA area above it stays.
        #expect(
            m.earlyReservations.ranges == [
                rng(0x4021_0000, 0x4220_afff), rng(0xfc00_0000, 0xffff_ffff), rng(0x1_3f7f_a000, 0x1_3fff_ffff),
            ])
        #expect(m.earlyReservationLines.map(\.number) == Array(2...9))
        // What 6.1's reserve_crashkernel finds with those reservations is where the log says it went.
        var machine = Machine(arch: .arm64, memory: m.memory)
        machine.earlyReservations = m.earlyReservations
        let o = try #require(try machine.crashkernelOutcome("256M", for: KernelVersion(6, 1)))
        #expect(o.ranges == m.crashkernelRanges)
    }

    @Test func malformedLinesNameTheirLine() {
        let bad = Self.block.replacingOccurrences(
            of: "reserved[0x1]\t[0x00000000ec000000-", with: "reserved[0x1]\t[0xZZ-")
        #expect(throws: ImportError.self) { try importLog(bad) }
        do {
            _ = try importLog(bad)
        } catch let e as ImportError {
            #expect(e.line == 8)
            #expect(e.message.contains("expected the region"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        let noIndex = Self.block.replacingOccurrences(of: "memory[0x0]", with: "memory[zz]")
        #expect(throws: ImportError.self) { try importLog(noIndex) }
    }
}
