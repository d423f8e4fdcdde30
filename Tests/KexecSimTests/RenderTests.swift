import Foundation
import KexecModel
import KexecSim
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

@Suite struct RenderTests {
    static func planned(_ sc: Scenario) throws -> Plan {
        guard case .planned(let p) = try Planner.plan(sc) else {
            Issue.record("the scenario was rejected")
            throw MatrixError("rejected")
        }
        return p
    }

    /// A 24 TiB machine with a tiny payload, placed top-down (so it lands near 24 TiB).
    static func huge() -> Scenario {
        let map = try! MemoryMap([
            TestMachines.region(0, 0x9_ffff, .usable),
            TestMachines.region(0xa_0000, 0xf_ffff, .reserved),
            TestMachines.region(0x10_0000, 0x7fff_ffff, .usable),
            TestMachines.region(0x8000_0000, 0x800f_ffff, .acpi),
            TestMachines.region(0xfec0_0000, 0xffff_ffff, .reserved),
            TestMachines.region(0x1_0000_0000, (24 << 40) - 1, .usable),
        ])
        let m = Machine(name: "24 TiB box", arch: .x86_64, memory: map)
        return Scenario(
            name: "24 TiB machine, tiny payload", machine: m,
            kexec: KexecRequest(kernel: PayloadSpec(size: .mib(1)), initrd: PayloadSpec(size: .kib(64))),
            policy: .x86_64(X86Policy(identityMap: .ram1g)), expect: KexecModel.Expectation(verdict: .landed))
    }

    static func attrs(_ c: XMLCollector, _ name: String, cls: String) -> [XMLCollector.Element] {
        c.named(name).filter { $0.attributes["class"] == cls }
    }

    @Test func planOnlyDrawingIsWellFormedAndComplete() throws {
        let sc = TestMachines.basic(kernel: .mib(2), initrd: .kib(64))
        let plan = try Self.planned(sc)
        let svg = LayoutRenderer.svg(plan: plan, result: nil)
        let c = try #require(XMLCollector.parse(svg))
        #expect(c.elements.first?.name == "svg")
        // One rect per region, with its type.
        let regions = Self.attrs(c, "rect", cls: "region")
        #expect(regions.count == sc.machine.memory.regions.count)
        #expect(regions.map { $0.attributes["data-type"]! } == sc.machine.memory.regions.map(\.type.rawValue))
        // Segments, named.
        let segs = Self.attrs(c, "rect", cls: "segment")
        #expect(segs.map { $0.attributes["data-name"]! } == plan.segments.map(\.name))
        let texts = c.named("text").map(\.text)
        for s in plan.segments {
            #expect(texts.contains { $0 == s.name || $0.hasPrefix(s.name + " ") }, "no label for \(s.name)")
        }
        // Source pages, control pages, page tables, the legend; no failure marker without a run.
        #expect(!Self.attrs(c, "rect", cls: "source").isEmpty)
        #expect(Self.attrs(c, "rect", cls: "control").count == 1 + 1 + plan.kimage.indirectionPages.count)
        #expect(!Self.attrs(c, "rect", cls: "table").isEmpty)
        #expect(!Self.attrs(c, "rect", cls: "identity").isEmpty)
        #expect(c.named("g").contains { $0.attributes["id"] == "legend" })
        for label in ["usable", "reserved", "acpi", "nvs", "hole", "segment", "source pages", "page-table page"] {
            #expect(texts.contains(label), "legend lacks \(label)")
        }
        #expect(!c.named("g").contains { $0.attributes["id"] == "failure" })
        #expect(texts.contains("plan only (not run)"))
        // Hex labels on the axis.
        #expect(texts.contains(hex(plan.segments[0].mem.raw)))
        // Everything inside the canvas.
        for r in c.named("rect") {
            let x = Double(r.attributes["x"] ?? "0")!
            let w = Double(r.attributes["width"] ?? "0")!
            #expect(x >= 0 && x + w <= 1600.5)
        }
    }

    @Test func failingRunHasAFailureMarker() throws {
        let sc = try FixtureDecoder.load(path: TestPaths.fixture("x86_64-destination-not-mapped.yaml"))
        let plan = try Self.planned(sc)
        let result = try Runner.run(sc)
        #expect(result.verdict.kind == .pageFault)
        let svg = LayoutRenderer.svg(plan: plan, result: result)
        let c = try #require(XMLCollector.parse(svg))
        let failure = c.elements.firstIndex { $0.name == "g" && $0.attributes["id"] == "failure" }
        #expect(failure != nil)
        let texts = c.named("text").map(\.text)
        #expect(texts.contains("page-fault at 0x100000000"))
        #expect(texts.contains { $0.hasPrefix("verdict: page-fault: ") })
        #expect(Self.attrs(c, "rect", cls: "region").count == sc.machine.memory.regions.count)
        #expect(Self.attrs(c, "rect", cls: "segment").map { $0.attributes["data-name"]! } == plan.segments.map(\.name))
    }

    @Test func twentyFourTiBIsCompressedWithBreaks() throws {
        let sc = Self.huge()
        let plan = try Self.planned(sc)
        let svg = LayoutRenderer.svg(plan: plan, result: nil)
        let c = try #require(XMLCollector.parse(svg))
        #expect(Self.attrs(c, "rect", cls: "region").count == 6)
        let breaks = Self.attrs(c, "path", cls: "break")
        #expect(!breaks.isEmpty)
        let texts = c.named("text").map(\.text)
        // The big stretch of RAM below the payload is skipped with its size shown.
        #expect(texts.contains { $0.hasPrefix("≈") && $0.hasSuffix("TiB") })
        #expect(texts.contains("0x180000000000 (24TiB)"))
        // Segments are wide enough to read, although 1 MiB is 1/24M of the machine.
        for s in Self.attrs(c, "rect", cls: "segment") {
            #expect(Double(s.attributes["width"]!)! >= 2)
        }
        let kernel = try #require(
            Self.attrs(c, "rect", cls: "segment").first { $0.attributes["data-name"] == "kernel" })
        #expect(Double(kernel.attributes["width"]!)! > 40)
        for r in c.named("rect") {
            let x = Double(r.attributes["x"] ?? "0")!
            let w = Double(r.attributes["width"] ?? "0")!
            #expect(x >= 0 && x + w <= 1600.5)
        }
    }
}
