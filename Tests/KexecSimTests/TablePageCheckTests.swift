import KexecModel
import KexecSim
import Testing

/// Table pages are checked after the run against the plan's own table model (re-encoded), not a
/// snapshot copy: a byte the first kernel changes in one is still a stray write naming the table
/// page and the exact byte.
@Suite struct TablePageCheckTests {
    func ev(_ r: RunResult) -> [String: String] { r.verdict.evidenceByName }

    func planned(_ sc: Scenario) throws -> Plan {
        guard case .planned(let p) = try Planner.plan(sc) else { throw TruthError("not planned") }
        return p
    }

    @Test func x86IdentityMapRootChangedIsAStrayWrite() throws {
        var sc = try fixture("x86_64-basic.yaml")
        let root = try #require(try planned(sc).x86).tables.root
        sc.kexec?.inject.append(.firstKernelWrite(PhysAddr(root.raw + 0x18)))
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .strayWrite)
        #expect(r.verdict.address == root.raw)
        #expect(ev(r)["what"] == "identity-map pgd page")
        #expect(ev(r)["first_differing_byte"] == String(format: "0x%llx", root.raw + 0x18))
    }

    @Test func arm64LinearMapPageChangedIsAStrayWrite() throws {
        var sc = try fixture("arm64-mmu-on.yaml")
        let t = try #require(try planned(sc).arm64?.tables.first)
        sc.kexec?.inject.append(.firstKernelWrite(PhysAddr(t.tables.root.raw + 0x28)))
        let r = try Runner.run(sc)
        #expect(r.verdict.kind == .strayWrite)
        #expect(r.verdict.address == t.tables.root.raw)
        #expect(ev(r)["what"] == "\(t.name) L0 page")
        #expect(ev(r)["first_differing_byte"] == String(format: "0x%llx", t.tables.root.raw + 0x28))
    }

    /// Untouched, the same runs land with every table page counted as unchanged.
    @Test func untouchedTablesLand() throws {
        let r = try Runner.run(try fixture("x86_64-basic.yaml"))
        #expect(r.verdict.kind == .landed)
        #expect(ev(r)["protected_pages"] == "55 unchanged")
    }
}
