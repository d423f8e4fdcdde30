import KexecModel
import KexecSim
import PageTables
import Testing

/// The identity-map policies behind real kexec bugs (issue 3): table costs worked by hand, and the
/// verdict under every policy a fixture names in `expect_by_policy`.
@Suite(.serialized) struct PolicyTests {
    func cost(_ name: String, _ p: IdentityMapPolicy, noSegments: Bool = false) throws -> TableCost {
        try TableReport.cost(try fixture(name), policy: p, noSegments: noSegments)
    }

    @Test func kdump24TiBTableCosts() throws {
        // RAM: [0, 2 GiB) -> GiBs 0, 1; ACPI/NVS in GiB 2; [4 GiB, 24 TiB) -> GiBs 4..24575.
        // ram-2m: one PMD page per GiB touched: 2 + 1 + 24572 = 24575; PUD pages: 24 TiB / 512 GiB = 48.
        let r2m = try cost("x86_64-kdump-24tib.yaml", .ram2m)
        #expect([r2m.pgd, r2m.p4d, r2m.pud, r2m.pmd, r2m.pte] == [1, 0, 48, 24575, 0])
        #expect(r2m.pages == 24624 && r2m.bytes == 24624 * 4096)  // 96.2 MiB of the 512 MiB reservation
        let r1g = try cost("x86_64-kdump-24tib.yaml", .ram1g)
        #expect([r1g.pgd, r1g.pud, r1g.pmd] == [1, 48, 0] && r1g.bytes == 49 * 4096)  // 196 KiB
        // kdump-only: first MiB + the crashkernel range [1 GiB, 1.5 GiB): GiBs 0 and 1.
        let kd = try cost("x86_64-kdump-24tib.yaml", .kdumpOnly)
        #expect([kd.pgd, kd.pud, kd.pmd] == [1, 1, 2] && kd.pages == 4)
        // gbpages-exact: every GiB fully RAM gets a 1 GiB leaf; only GiB 2 (ACPI/NVS, 2 MiB) needs a PMD page.
        let ex = try cost("x86_64-kdump-24tib.yaml", .gbpagesExact)
        #expect([ex.pgd, ex.pud, ex.pmd] == [1, 48, 1])
        #expect(try cost("x86_64-kdump-24tib.yaml", .gbpagesExceptUV).pages == 49)
        // The transition mapping of the control page is counted apart: pud + pmd + pte.
        #expect(r2m.transition == 3)
    }

    @Test func firmwareTableMapCosts() throws {
        // pfn_mapped [0, 0xbf000000) and [4 GiB, 5 GiB); segments lie inside RAM.
        let r2m = try cost("x86_64-firmware-table-gbpages-exact.yaml", .ram2m)
        #expect([r2m.pgd, r2m.pud, r2m.pmd] == [1, 1, 4])  // GiBs 0, 1, 2, 4
        let ex = try cost("x86_64-firmware-table-gbpages-exact.yaml", .gbpagesExact)
        #expect([ex.pgd, ex.pud, ex.pmd] == [1, 1, 1])  // only GiB 2 is partial
        let g1 = try cost("x86_64-firmware-table-gbpages-exact.yaml", .ram1g)
        #expect([g1.pgd, g1.pud, g1.pmd] == [1, 1, 0])
    }

    @Test func uvMapCostsAndHazard() throws {
        // RAM [0, 0x70000000) -> GiBs 0, 1; [4 GiB, 9 GiB) -> GiBs 4..8.
        let r2m = try cost("x86_64-uv-hazard.yaml", .ram2m)
        #expect([r2m.pgd, r2m.pud, r2m.pmd] == [1, 1, 7])
        let rows = try TableReport.compare(try fixture("x86_64-uv-hazard.yaml"), noSegments: false)
        let byPolicy = Dictionary(uniqueKeysWithValues: rows.map { ($0.cost.policy, $0) })
        #expect(byPolicy["ram-1g"]?.hazardLeaves.count == 1)
        #expect(
            byPolicy["ram-1g"]?.hazardLeaves.first?.leaf.physRange
                == AddressRange(start: PhysAddr(0x4000_0000), size: .gib(1)))
        #expect(byPolicy["gbpages-except-uv"]?.hazardLeaves.isEmpty == true)
        #expect(byPolicy["gbpages-exact"]?.hazardLeaves.isEmpty == true)
    }

    @Test func noSegmentsCountsOnlyTheMachine() throws {
        // The 4 GiB box: RAM [0, 0xbffe0000) + ACPI/NVS up to 0xbfffffff -> GiBs 0..2; [4 GiB, 5 GiB) -> GiB 4.
        let c = try cost("x86_64-basic.yaml", .ram2m, noSegments: true)
        #expect([c.pgd, c.pud, c.pmd, c.pte] == [1, 1, 4, 0])
        #expect(c.bytes == 6 * 4096)
    }

    @Test func fiveLevelAddsAP4DPage() throws {
        let c = try cost("x86_64-5level.yaml", .ram2m)
        #expect([c.pgd, c.p4d, c.pud, c.pmd] == [1, 1, 1, 4])
    }

    /// Every fixture's other-policy expectations, run through the emulator.
    @Test(arguments: ["x86_64-firmware-table-gbpages-exact.yaml", "x86_64-uv-hazard.yaml"])
    func expectByPolicyHolds(_ name: String) throws {
        let sc = try fixture(name)
        #expect(!sc.expectByPolicy.isEmpty)
        for (policy, want) in sc.expectByPolicy.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let r = try Runner.run(sc, options: RunOptions(policyOverride: policy))
            #expect(
                r.verdict.matches(want),
                "\(name) under \(policy.rawValue): \(r.verdict.kind.rawValue) — \(r.verdict.summary)")
        }
    }

    @Test func kdump24TiBLandsUnderTheCheapPolicies() throws {
        let sc = try fixture("x86_64-kdump-24tib.yaml")
        for p in [IdentityMapPolicy.ram1g, .kdumpOnly] {
            let r = try Runner.run(sc, options: RunOptions(policyOverride: p))
            #expect(r.verdict.kind == .landed, "\(p.rawValue): \(r.verdict.summary)")
            // Guest memory is what the kexec moves, not 24 TiB.
            #expect(r.stats.guestBlocks < 16)
        }
    }

    @Test func evidenceNamesLeavesOverReservedAndHotplug() throws {
        let r = try Runner.run(try fixture("x86_64-reserved-in-2m-leaf.yaml"))
        #expect(r.verdict.kind == .landed)
        let ev = r.verdict.evidenceByName
        #expect(ev["touched_reserved"]?.contains("0x7ffc0000") == true)
        #expect(
            r.verdict.warnings.contains {
                $0.contains("pmd 2MiB leaf [0x000000007fe00000-0x000000007fffffff] also maps reserved")
            })
        let td = try Runner.run(try fixture("x86_64-hotplug-top-down.yaml"))
        let bu = try Runner.run(try fixture("x86_64-hotplug-bottom-up.yaml"))
        #expect(
            td.verdict.warnings.contains { $0.contains("hot-removable memory [0x0000000100000000-0x000000013fffffff]") }
        )
        #expect(!bu.verdict.warnings.contains { $0.contains("hot-removable") })
    }

    @Test func gbpagesExactFaultNamesTheTable() throws {
        let r = try Runner.run(try fixture("x86_64-firmware-table-gbpages-exact.yaml"))
        #expect(r.verdict.kind == .pageFault)
        #expect(r.verdict.address == 0xbf80_0000)
        let ev = r.verdict.evidenceByName
        #expect(ev["region"] == "reserved [0x00000000bf000000-0x00000000bfffffff]")
        #expect(ev["level"] == "pmd")
        #expect(ev["policy"] == "kernel")
        #expect(ev["kernel"] == "6.1.80")
        #expect(ev["rule.identity_map"]?.hasPrefix("exact gbpages (d794734c9bbf") == true)
        #expect(ev["rule.efi_config_table"]?.hasPrefix("not mapped") == true)
    }
}
