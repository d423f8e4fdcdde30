import Foundation
import KexecModel
import KexecSim
import Testing

/// Runaway guests, broken on purpose: each ends within its budget with a verdict and evidence,
/// and host memory stays bounded.
@Suite(.serialized) struct RunawayTests {
    /// The instruction budget ends these runs; the wall clock is only a backstop, generous so
    /// that a loaded machine cannot turn a budget verdict into a wall-clock one.
    func run(_ name: String, timeout: Double = 600) throws -> RunResult {
        try Runner.run(try fixture(name), options: RunOptions(timeoutSeconds: timeout))
    }

    @Test func endlessListHangsInSwapPagesWithTheLoopNamed() throws {
        let r = try run("x86_64-runaway-list-cycle.yaml")
        #expect(r.verdict.kind == .hang)
        let ev = r.verdict.evidenceByName
        #expect(ev["budget"] == "30000000 instructions")
        #expect(ev["routine"]?.hasPrefix("relocate_kernel: swap_pages") == true)
        #expect(ev["loop"]?.contains("instruction addresses in [") == true)
    }

    @Test func wallClockLimitStopsALoopWithoutABudget() throws {
        var sc = try fixture("x86_64-runaway-list-cycle.yaml")
        sc.budget = nil
        let r = try Runner.run(sc, options: RunOptions(timeoutSeconds: 1))
        #expect(r.verdict.kind == .hang, "\(r.verdict.summary) \(r.verdict.evidence)")
        let ev = r.verdict.evidenceByName
        #expect(ev["budget"] == "1 s wall clock")
    }

    @Test func selfOverwriteEndsInTheBudget() throws {
        // 6.18's single copy writes the payload over the running code; the bytes it then executes
        // loop inside the control page until the budget runs out.
        let r = try run("x86_64-runaway-overwrite-control-page.yaml")
        #expect(r.verdict.kind == .hang)
        #expect(r.verdict.summary.contains("in relocate_kernel"))
        #expect(r.verdict.evidenceByName["budget"] == "30000000 instructions")
    }

    @Test func scribblerIsBoundedByBudgetAndOnDemandLimit() throws {
        let r = try run("x86_64-runaway-scribble.yaml")
        // Climbing from 1 MiB it writes over its own identity map (the PGD comes right after the
        // control and swap pages at 16 MiB, before any source page): the next store finds no pgd entry.
        #expect(r.verdict.kind == .pageFault)
        #expect(r.verdict.address == 0x100_3000)
        #expect(r.verdict.evidenceByName["reason"] == "not present")
        #expect(r.verdict.evidenceByName["level"] == "pgd")
        #expect(r.stats.onDemandPages <= 65536)
        #expect(r.stats.onDemandPages > 1000)  // it really did write over RAM nobody loaded
    }

    /// arm64: with the MMU off and VBAR_EL1 at the first kernel's vectors, one exception would turn
    /// into a storm on hardware; the run stops at the first with the exception named.
    @Test func arm64ExceptionEndsTheRunAtTheFirstOne() throws {
        let r = try run("arm64-runaway-invalid-opcode.yaml")
        #expect(r.verdict.kind == .halt)
        let ev = r.verdict.evidenceByName
        #expect(ev["routine"] == "purgatory: purgatory_start")
        #expect(ev["detail"]?.hasPrefix("exception 1 (undefined instruction)") == true)
        #expect(ev["vbar_el1"] == "0xffff800008010800")
        #expect(ev["on_hardware"]?.contains("exception storm") == true)
    }

    @Test func jumpToANonExecutableStartFaultsOnTheFetch() throws {
        let r = try run("x86_64-runaway-nx-start.yaml")
        #expect(r.verdict.kind == .pageFault)
        #expect(r.verdict.address == 0x1_3fff_b000)
        let ev = r.verdict.evidenceByName
        #expect(ev["access"] == "fetch")
        #expect(ev["routine"] == "purgatory: purgatory_start")
        #expect(ev["level"] == "pmd")
        #expect(ev["reason"] == "fetch from a no-execute page")
        // The 2 MiB leaf over 0x13fe00000 with NX (bit 63) on top of present|rw|accessed|dirty|PS|G.
        #expect(ev["entry"] == "0x800000013fe001e3")
    }

    @Test func invalidOpcodeAndWildJump() throws {
        let u = try run("x86_64-runaway-invalid-opcode.yaml")
        #expect(u.verdict.kind == .halt)
        #expect(u.verdict.evidenceByName["routine"] == "purgatory: purgatory_start")
        #expect(
            u.verdict.evidenceByName["on_hardware"]?.hasPrefix(
                "machine_kexec loaded an empty IDT") == true)
        let j = try run("x86_64-runaway-start-address.yaml")
        #expect(j.verdict.kind == .pageFault)
        #expect(j.verdict.address == 0x7f00_0000_0000)
        let ev = j.verdict.evidenceByName
        #expect(ev["access"] == "fetch" && ev["level"] == "pgd")
        // A page fault's evidence comes in one order, with typed keys, on both architectures.
        #expect(
            j.verdict.evidence.map(\.key) == [
                .known(.address), .known(.access), .known(.pc), .known(.routine), .known(.region), .known(.level),
                .known(.reason), .known(.entryAddress), .known(.entry), .known(.policy), .known(.purgatory),
                .known(.kernel),
                .rule("placement_walk"), .rule("top_down_start"), .rule("kernel_buf_min"), .rule("purgatory_size"),
                .rule("boot_params_size"), .rule("synthetic_kernel"),
                .rule("identity_map"), .rule("efi_config_table"), .rule("control_page"), .rule("relocation_copy"),
                .rule("kimage_alloc_page"),
            ])
        #expect(
            j.verdict.summary
                == "page fault at 0x7f0000000000 in a hole (no region) because the level-4 (pgd) entry is missing "
                + "under policy ram-2m")
    }
}
