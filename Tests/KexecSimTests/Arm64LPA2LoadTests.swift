import KexecModel
import KexecSim
import Testing

/// 6.12 with 52-bit VAs on a FEAT_LPA2 CPU: trans_pgd_create_copy reads through the copy's empty
/// pgd entry (5 levels) and the first kernel faults during the load (arch/arm64/mm/trans_pgd.c,
/// read in 6.12.117).
@Suite(.serialized) struct Arm64LPA2LoadTests {
    func ev(_ r: RunResult) -> [String: String] { r.verdict.evidenceByName }

    @Test func sixTwelveWithLPA2FaultsInTransPgdCreateCopy() throws {
        let r = try Runner.run(try fixture("arm64-lpa2-6.12-trans-pgd.yaml"))
        #expect(r.verdict.kind == .pageFault && r.verdict.address == 0xffff_ffff_c000_0000)
        #expect(r.matches == true)
        let e = ev(r)
        #expect(e["level"] == "L2" && e["fault_status_code"] == "0x6" && e["access"] == "read")
        #expect(e["routine"] == "trans_pgd_create_copy (copy_p4d → copy_pud), in machine_kexec_post_load")
        #expect(e["rule.va_bits"]?.hasPrefix("52 (VA_BITS_52, FEAT_LPA2 for 4k") == true)
        #expect(e["rule.va_bits"]?.contains("5 table levels") == true)
        #expect(e["rule.trans_pgd_copy"]?.hasPrefix("5 levels: copy_p4d does not populate") == true)
        // Nothing ran: no tables were built for the relocation.
        guard case .planned(let p) = try Planner.plan(try fixture("arm64-lpa2-6.12-trans-pgd.yaml")) else {
            Issue.record("not planned")
            return
        }
        #expect(p.arm64?.tables.isEmpty == true && p.arm64?.loadFault?.level == .l2)
    }

    /// The same machine with `lpa2=off`, or as 6.8 (no LPA2 stage 1 for 4K pages): 48-bit VAs, 4
    /// levels, the copy works and the load lands.
    @Test func withoutLPA2TheLoadLands() throws {
        let off = try Runner.run(try fixture("arm64-lpa2-off-6.12.yaml"))
        #expect(off.verdict.kind == .landed)
        #expect(ev(off)["rule.va_bits"]?.contains("without FEAT_LPA2 for 4k") == true)
        #expect(ev(off)["rule.va_bits"]?.contains("VA_BITS_MIN 48: 4 table levels [") == true)
        var old = try fixture("arm64-lpa2-6.12-trans-pgd.yaml")
        old.machine.kernel = KernelVersion(6, 8)
        let r = try Runner.run(old)
        #expect(r.verdict.kind == .landed)
        #expect(ev(r)["rule.va_bits"]?.hasPrefix("VA_BITS_52 with 4k pages exists from v6.9") == true)
    }

    /// Where __va(0) lands decides the fault: RAM from 2 GiB puts it at -2 GiB, the top of vmemmap
    /// with no pud entry (L1); RAM from PA 0 puts it in the linear map (the first kernel's own
    /// memory): not modelled. A crash load never copies (MMU off) and lands; a kernel newer than
    /// 6.12 is not modelled.
    @Test func faultAddressFollowsMemstart() throws {
        func scenario(_ first: UInt64, _ last: UInt64) throws -> Scenario {
            var sc = try fixture("arm64-lpa2-6.12-trans-pgd.yaml")
            sc.machine.memory = try MemoryMap([
                Region(range: AddressRange(first: PhysAddr(first), last: PhysAddr(last))!, type: .usable)
            ])
            return sc
        }
        let high = try Runner.run(try scenario(0x8000_0000, 0x1_7fff_ffff))
        #expect(high.verdict.kind == .pageFault && high.verdict.address == 0xffff_ffff_8000_0000)
        #expect(ev(high)["level"] == "L1" && ev(high)["fault_status_code"] == "0x5")
        #expect(throws: PlanError.self) { try Runner.run(try scenario(0, 0xffff_ffff)) }
        var newer = try fixture("arm64-lpa2-6.12-trans-pgd.yaml")
        newer.machine.kernel = KernelVersion(6, 13)
        #expect(throws: PlanError.self) { try Runner.run(newer) }
    }

    @Test func virtualAddressingByGranuleAndCPU() {
        let lpa2 = Arm64MMFR0(physicalAddressBits: 52, lpa2: true)
        let c52 = Arm64KernelConfig(vaBits52: true)
        let v612 = KernelVersion(6, 12)
        func va(_ g: Granule, _ cpu: Arm64MMFR0 = lpa2, _ v: KernelVersion = v612, _ c: Arm64KernelConfig = c52)
            -> Arm64Rules.VirtualAddressing
        {
            Arm64Rules.virtualAddressing(version: v, config: c, granule: g, cpu: cpu).0
        }
        #expect(va(.g4k) == .init(vaBits: 52, levels: 5, lpa2: true))
        #expect(va(.g16k) == .init(vaBits: 52, levels: 4, lpa2: true))
        #expect(va(.g64k) == .init(vaBits: 48, levels: 3, lpa2: false))
        #expect(va(.g16k, Arm64MMFR0(physicalAddressBits: 52)) == .init(vaBits: 47, levels: 3, lpa2: false))
        #expect(va(.g4k, lpa2, v612, .debian) == .init(vaBits: 48, levels: 4, lpa2: false))
        #expect(va(.g4k, lpa2, KernelVersion(6, 1)).vaBits == 48)
        #expect(Arm64Rules.transPgdCopy(version: v612, levels: 4)?.0 == .copies)
        #expect(Arm64Rules.transPgdCopy(version: v612, levels: 5)?.0 == .readsThroughEmptyPgd)
        #expect(Arm64Rules.transPgdCopy(version: KernelVersion(6, 9), levels: 5)?.0 == .readsThroughEmptyPgd)
        #expect(Arm64Rules.transPgdCopy(version: KernelVersion(6, 18), levels: 5) == nil)
    }

    /// `config.va_bits` and `id_aa64mmfr0` decode; a VA size the kernel has no choice for is named.
    @Test func fixtureFieldsDecode() throws {
        func yaml(_ vaBits: Int) -> String {
            """
            name: a
            machine:
              arch: arm64
              memory: [{ range: 0x40000000-0x13fffffff, type: usable }]
              config: { va_bits: \(vaBits) }
              id_aa64mmfr0: 0x10200006
            """
        }
        let s = try FixtureDecoder.decode(yaml: yaml(52), file: "a.yaml", baseDirectory: "")
        #expect(s.machine.config.vaBits52 && s.machine.idAA64MMFR0.raw == 0x1020_0006)
        #expect(s.machine.idAA64MMFR0.lpa2(.g4k) && s.machine.idAA64MMFR0.physicalAddressBits == 52)
        do {
            _ = try FixtureDecoder.decode(yaml: yaml(50), file: "a.yaml", baseDirectory: "")
            Issue.record("va_bits 50 decoded")
        } catch {
            #expect("\(error)".contains("va_bits must be 48 or 52 (CONFIG_ARM64_VA_BITS_52), found 50"))
            #expect("\(error)".contains("a.yaml"))
        }
    }
}
