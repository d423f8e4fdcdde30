import KexecModel
import PageTables
import Testing

@Suite struct RequestsTests {
    /// RAM in three pieces (one not page-aligned, one above mem=), NVS below ACPI, an EFI system table.
    func limitedMachine() throws -> Machine {
        try machine(
            [
                (0, 0x9_ffff, .usable),
                (0x10_0000, 0x7eff_ffff, .usable),
                (0x7f00_0000, 0x7f0f_ffff, .nvs),
                (0x8000_0000, 0x800f_ffff, .acpi),
                (0x1_0000_0400, 0x1_7fff_ffff, .usable),
                (0x2_0000_0000, 0x2_3fff_ffff, .usable),
            ], efiSystemTable: 0x7ef0_e018, memLimit: 0x1_4000_0000)
    }
    let segments: [(name: String, range: AddressRange)] = [
        ("kernel", range(0x100_0000, 0x1bf_ffff)), ("initrd", range(0x7000_0000, 0x71ff_ffff)),
    ]

    @Test func kernelOrderWithMemLimitAndSegments() throws {
        let r = X86IdentityMap.requests(
            machine: try limitedMachine(), segments: segments, policy: X86Policy(identityMap: .ram2m),
            imageType: .normal, crashkernel: [])
        #expect(
            r == [
                // pfn_mapped: [0,1MiB) merges with the RAM above it; 0x100000400 trimmed up to a page,
                // cut at mem= (0x140000000); the RAM at 8 GiB is above mem= and not direct-mapped.
                request(0, 0x7eff_ffff, .ram),
                request(0x1_0000_1000, 0x1_3fff_ffff, .ram),
                request(0x100_0000, 0x1bf_ffff, .segment("kernel")),
                request(0x7000_0000, 0x71ff_ffff, .segment("initrd")),
                request(0x7ef0_e000, 0x7ef0_efff, .efiSystemTable),
                // ACPI tables first, then NVS (two walk_iomem_res_desc passes), whatever their addresses.
                request(0x8000_0000, 0x800f_ffff, .acpi),
                request(0x7f00_0000, 0x7f0f_ffff, .nvs),
            ])
    }

    @Test func withoutSegmentMapping() throws {
        let r = X86IdentityMap.requests(
            machine: try limitedMachine(), segments: segments,
            policy: X86Policy(identityMap: .ram2m, mapSegments: false),
            imageType: .normal, crashkernel: [])
        #expect(r.map(\.reason) == [.ram, .ram, .efiSystemTable, .acpi, .nvs])
    }

    @Test func kdumpOnlyForCrashImage() throws {
        let crash = [range(0x2000_0000, 0x2fff_ffff)]
        let segs: [(name: String, range: AddressRange)] = [("kernel", range(0x2e00_0000, 0x2ebf_ffff))]
        let r = X86IdentityMap.requests(
            machine: try limitedMachine(), segments: segs, policy: X86Policy(identityMap: .kdumpOnly),
            imageType: .crash, crashkernel: crash)
        #expect(
            r == [
                request(0, 0xf_ffff, .firstMiB), request(0x2000_0000, 0x2fff_ffff, .crashkernel),
                request(0x2e00_0000, 0x2ebf_ffff, .segment("kernel")),
            ])
        // A normal image under kdump-only asks for everything, like ram-2m.
        let normal = X86IdentityMap.requests(
            machine: try limitedMachine(), segments: segs, policy: X86Policy(identityMap: .kdumpOnly),
            imageType: .normal, crashkernel: crash)
        #expect(normal.count == 6)
        #expect(normal.first == request(0, 0x7eff_ffff, .ram))
    }

    @Test func firstMiBStandsAloneWhenNothingTouchesIt() throws {
        let m = try machine([(0x1000, 0x9_ffff, .usable), (0x20_0000, 0x3fff_ffff, .usable)])
        #expect(ramRequests(m) == [request(0, 0xf_ffff, .firstMiB), request(0x20_0000, 0x3fff_ffff, .ram)])
    }

    @Test func ramAtTheTopOfTheSpaceDoesNotTrap() throws {
        let m = try machine([(0, 0x9_ffff, .usable), (0xffff_ffff_fff0_0000, 0xffff_ffff_ffff_ffff, .usable)])
        let r = ramRequests(m)
        #expect(r == [request(0, 0xf_ffff, .firstMiB), request(0xffff_ffff_fff0_0000, 0xffff_ffff_ffff_efff, .ram)])
        let limited = try machine(
            [(0, 0x9_ffff, .usable), (0xffff_ffff_fff0_0000, 0xffff_ffff_ffff_ffff, .usable)],
            memLimit: 0xffff_ffff_ffff_f000)
        #expect(ramRequests(limited) == r)
    }
}
