import Foundation
import KexecModel
import Kimage
import PageTables

/// Everything a layout drawing places, computed once from the plan before anything is drawn:
/// the things to draw (as spans), the piecewise-linear address axis through all their boundaries,
/// the wrapped header lines and the vertical position of every lane.
struct LayoutGeometry {
    /// One horizontal lane of the detail view.
    struct Lane {
        var label: String
        var y: Double
        var h: Double
    }

    var sourceRuns: [Span]
    var sourceClusters: [Span]
    /// Control, swap and indirection pages: address, what it is, fill colour.
    var controlPages: [(UInt64, String, String)]
    var controlClusters: [Span]
    var tablePageCount: Int
    var tableRuns: [Span]
    var tableClusters: [Span]
    var coverage: [Span]
    var crash: [Span]
    var hazards: [Span]
    var hotplug: [Span]
    var segs: [(name: String, span: Span, purgatory: Bool)]
    /// The highest axis point: the end of the drawn address space.
    var top: UInt64
    var axis: Axis
    var machineLines: [String]
    var verdictLines: [String]
    /// The overview strip's top and height.
    var ovY: Double
    var ovH: Double
    var lanes: [Lane]
    var mapLane: Lane
    var crashLane: Lane?
    var hazardLane: Lane?
    var hotplugLane: Lane?
    /// Kexec HandOver's scratch areas and preserved ranges (RenderKho.swift).
    var khoLane: Lane? = nil
    var idLane: Lane
    var segLane: Lane
    var srcLane: Lane
    var ctlLane: Lane
    var tblLane: Lane
    var lanesTop: Double
    var axisY: Double

    func x(_ a: UInt64) -> Double { axis.x(a) }
}

extension LayoutDrawing {
    /// The geometry of this drawing (pure: draws nothing).
    func geometry() -> LayoutGeometry {
        let k = plan.kimage
        let machine = plan.scenario.machine
        // Kimage pages are PAGE_SIZE (the granule on arm64; arm64 table pages are too).
        let sourceRuns = pageRuns(k.sourcePages.map(\.source.raw), pageSize: k.pageSize)
        let sourceClusters = clusters(sourceRuns, max: 12)
        var controlPages: [(UInt64, String, String)] = [(k.controlPage.raw, "control page", Self.controlColor)]
        if let s = k.swapPage { controlPages.append((s.raw, "swap page", Self.swapColor)) }
        for ip in k.indirectionPages { controlPages.append((ip.pa.raw, "indirection page", Self.indirectionColor)) }
        let controlClusters = clusters(pageRuns(controlPages.map(\.0), pageSize: k.pageSize), max: 8)
        var tablePageSet = Set(plan.tablePageAddresses.map(\.raw))
        for p in k.extraControlPages { tablePageSet.insert(p.raw) }
        let tableRuns = pageRuns(Array(tablePageSet), pageSize: k.pageSize)
        let tableClusters = clusters(tableRuns, max: 8)
        let coverage = plan.mappedCoverage.map(span)
        let crash = plan.crashRegions.map(span)
        let hazards = machine.hazards.map(span)
        let hotplug = machine.hotpluggable.map(span)
        let segs = segmentSpans
        let axis = self.axis(
            sourceClusters: sourceClusters, controlClusters: controlClusters, tableClusters: tableClusters,
            coverage: coverage, crash: crash, hazards: hazards, hotplug: hotplug, segs: segs)
        let (machineLines, verdictLines) = headerLines()

        // Vertical layout.
        let titleH = 36 + Double(machineLines.count + verdictLines.count) * 18 + 6
        let ovY = titleH + 22
        let ovH = 16.0
        var y = ovY + ovH + 50
        var lanes: [LayoutGeometry.Lane] = []
        func lane(_ label: String, _ h: Double) -> LayoutGeometry.Lane {
            let l = LayoutGeometry.Lane(label: label, y: y, h: h)
            y += h + 8
            lanes.append(l)
            return l
        }
        let mapLane = lane("memory map", 36)
        let crashLane = crash.isEmpty ? nil : lane("crashkernel", 16)
        let hazardLane = hazards.isEmpty ? nil : lane("hazards", 16)
        let hotplugLane = hotplug.isEmpty ? nil : lane("hotpluggable", 16)
        let khoLane = khoSpans.isEmpty ? nil : lane("KHO scratch / preserved", 16)
        let idLane = lane("identity map", 14)
        y += 30  // segment labels above the segment lane
        let segLane = lane("segments", 30)
        let srcLane = lane(k.sourcePages.isEmpty ? "source pages (none)" : "source pages (\(k.sourcePages.count))", 18)
        let ctlLane = lane("control / swap / ind.", 18)
        let tblLane = lane("page tables (\(tablePageSet.count))", 18)
        return LayoutGeometry(
            sourceRuns: sourceRuns, sourceClusters: sourceClusters, controlPages: controlPages,
            controlClusters: controlClusters, tablePageCount: tablePageSet.count, tableRuns: tableRuns,
            tableClusters: tableClusters, coverage: coverage, crash: crash, hazards: hazards, hotplug: hotplug,
            segs: segs, top: axis.points.last!, axis: axis, machineLines: machineLines, verdictLines: verdictLines,
            ovY: ovY, ovH: ovH, lanes: lanes, mapLane: mapLane, crashLane: crashLane, hazardLane: hazardLane,
            hotplugLane: hotplugLane, khoLane: khoLane, idLane: idLane, segLane: segLane, srcLane: srcLane,
            ctlLane: ctlLane,
            tblLane: tblLane, lanesTop: lanes[0].y, axisY: y + 2)
    }

    /// The axis through every boundary of something drawn.
    func axis(
        sourceClusters: [Span], controlClusters: [Span], tableClusters: [Span], coverage: [Span], crash: [Span],
        hazards: [Span], hotplug: [Span], segs: [(name: String, span: Span, purgatory: Bool)]
    ) -> Axis {
        let machine = plan.scenario.machine
        var pts = Set<UInt64>([0])
        func add(_ s: Span) {
            pts.insert(s.lo)
            pts.insert(s.hi)
        }
        for r in regions { add(span(r.range)) }
        for s in crash + hazards + hotplug + sourceClusters + controlClusters + tableClusters { add(s) }
        for s in segs { add(s.span) }
        for s in khoSpans { add(s.span) }
        for s in coverage where s.lo < machine.memory.top { add(Span(lo: s.lo, hi: min(s.hi, machine.memory.top))) }
        if let fl = failure { add(Span(lo: fl.address & ~0xfff, hi: (fl.address & ~0xfff) &+ 0x1000)) }
        let points = pts.sorted()
        // What must stay readable: the segments (else the crashkernel ranges).
        var reference: UInt64 = segs.map(\.span.size).max() ?? 0
        if reference == 0 { reference = crash.map(\.size).max() ?? 0 }
        return Axis(points: points, x0: x0, width: axisWidth, reference: reference)
    }

    /// The machine line and the verdict line, each wrapped to the canvas.
    func headerLines() -> (machine: [String], verdict: [String]) {
        let machine = plan.scenario.machine
        let sc = plan.scenario
        let ramText = formatSize(machine.memory.totalRAM.raw)
        let typeText = (sc.kexec?.syscall.rawValue ?? "") + " " + plan.kimage.type.rawValue
        let machineLine =
            "machine: \(machine.name ?? "unnamed") (\(machine.arch.rawValue), \(machine.platform.rawValue)), "
            + "\(ramText) usable RAM, regions up to \(hex(machine.memory.top)); \(typeText) image; "
            + "policy \(plan.policyLabel); \(plan.segments.count) segments; file \(sc.file)"
        var verdictLine = "plan only (not run)"
        if let r = result {
            verdictLine = "verdict: \(r.verdict.kind.rawValue): \(r.verdict.summary)"
            if let e = r.expectation {
                verdictLine += "  (expected \(Matrix.describe(e)): \(r.matches == true ? "matches" : "DIFFERS"))"
            }
        }
        return (
            Self.wrap(machineLine, Int((width - 32) / (12 * 0.6))),
            Self.wrap(verdictLine, Int((width - 32) / (12.5 * 0.62)))
        )
    }
}
