import Foundation
import KexecModel
import Kimage
import PageTables

/// Draws a plan's physical address space as SVG: regions by type, crashkernel, hazards,
/// hotpluggable ranges, the identity map, segments, their source pages, control / swap /
/// indirection and page-table pages, and where a failed run stopped.
///
/// The address axis is piecewise linear: every boundary of something drawn is a point on it;
/// stretches between points that are huge next to the features (the payload, the crashkernel
/// reservation) are compressed to a fixed width with a zig-zag break and the skipped size, the
/// rest is to scale (each window at least a few pixels wide). A strip at the top shows the whole
/// machine strictly to scale.
public enum LayoutRenderer {
    public static func svg(plan: Plan, result: RunResult?) -> String {
        var d = LayoutDrawing(plan: plan, result: result)
        return d.render()
    }

    /// Fill colours by region type ("hole" for addresses no region covers).
    public static let regionColors: [String: String] = [
        "usable": "#9ed89e", "reserved": "#b9b9b9", "acpi": "#f4c95d", "nvs": "#ec9a4e",
        "persistent": "#7fb1e3", "soft-reserved": "#c3b5e6", "unusable": "#9c5a5a", "hole": "url(#hole)",
    ]
}

/// [lo, hi) with hi saturated at 2^64-1.
struct Span: Equatable {
    var lo: UInt64
    var hi: UInt64
    var size: UInt64 { hi - lo }
}

/// The piecewise-linear address axis.
struct Axis {
    var points: [UInt64]
    var xs: [Double]
    var broken: [Bool]

    /// Points must be sorted and unique, at least two.
    init(points: [UInt64], x0: Double, width: Double, reference: UInt64) {
        self.points = points
        let n = points.count - 1
        let sizes = (0..<n).map { Double(points[$0 + 1] - points[$0]) }
        let total = sizes.reduce(0, +)
        let minW = min(6, max(1.5, width / Double(max(1, n)) / 3))
        // Break only when the whole space to scale would squeeze the features.
        let ref = Double(max(reference, 1 << 20))
        let needBreaks = width / total * ref < 60
        let threshold = ref * 8
        let broken = sizes.map { needBreaks && $0 > threshold }
        var widths = [Double](repeating: 0, count: n)
        func breakWidth(_ s: Double) -> Double { min(110, 44 + 5 * log2(max(1, s / threshold))) }
        var fixed = 0.0
        for i in 0..<n where broken[i] { widths[i] = breakWidth(sizes[i]); fixed += widths[i] }
        var tiny = [Bool](repeating: false, count: n)
        for _ in 0..<30 {
            let tinyCount = (0..<n).filter { !broken[$0] && tiny[$0] }.count
            let linearBytes = (0..<n).filter { !broken[$0] && !tiny[$0] }.reduce(0.0) { $0 + sizes[$1] }
            let room = width - fixed - Double(tinyCount) * minW
            let s = linearBytes > 0 && room > 0 ? room / linearBytes : 0
            var changed = false
            for i in 0..<n where !broken[i] {
                let t = sizes[i] * s < minW
                if t != tiny[i] {
                    tiny[i] = t
                    changed = true
                }
                widths[i] = t ? minW : sizes[i] * s
            }
            if !changed { break }
        }
        // A broken stretch never looks smaller than an unbroken one next to it.
        let maxLinear = (0..<n).filter { !broken[$0] }.map { widths[$0] }.max() ?? 0
        for i in 0..<n where broken[i] && widths[i] < min(maxLinear, 60) { widths[i] = min(maxLinear, 60) }
        // Fit exactly.
        let sum = widths.reduce(0, +)
        if sum > 0 { widths = widths.map { $0 * width / sum } }
        var xs = [x0]
        for w in widths { xs.append(xs.last! + w) }
        self.xs = xs
        self.broken = broken
    }

    /// The widest stretch of screen that [lo, hi) covers outside the break bands, for a label.
    func slot(_ lo: UInt64, _ hi: UInt64) -> (x: Double, w: Double) {
        var pieces: [(Double, Double)] = []
        func piece(_ a: Double, _ b: Double) {
            guard b > a else { return }
            if let last = pieces.last, abs(last.1 - a) < 0.01 {
                pieces[pieces.count - 1].1 = b
            } else {
                pieces.append((a, b))
            }
        }
        var i = max(0, (points.firstIndex { $0 > lo } ?? points.count) - 1)
        while i < points.count - 1 && points[i] < hi {
            let xa = x(max(lo, points[i]))
            let xb = x(min(hi, points[i + 1]))
            if broken[i] {
                let c = (xs[i] + xs[i + 1]) / 2
                piece(xa, min(xb, c - 7))
                piece(max(xa, c + 7), xb)
            } else {
                piece(xa, xb)
            }
            i += 1
        }
        let best = pieces.max { ($0.1 - $0.0) < ($1.1 - $1.0) } ?? (x(lo), x(hi))
        return (best.0, best.1 - best.0)
    }

    func x(_ a: UInt64) -> Double {
        if a <= points[0] { return xs[0] }
        if a >= points[points.count - 1] { return xs[xs.count - 1] }
        var lo = 0
        var hi = points.count - 1
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if points[mid] <= a { lo = mid } else { hi = mid }
        }
        let f = Double(a - points[lo]) / Double(points[lo + 1] - points[lo])
        return xs[lo] + f * (xs[lo + 1] - xs[lo])
    }
}

/// Runs of 4 KiB pages, merged over the smallest gaps until at most `max` clusters remain.
func pageRuns(_ pages: [UInt64]) -> [Span] {
    var runs: [Span] = []
    for p in pages.sorted() {
        if let last = runs.last, p <= last.hi {
            runs[runs.count - 1].hi = max(last.hi, p &+ 0x1000)
        } else {
            runs.append(Span(lo: p, hi: p &+ 0x1000))
        }
    }
    return runs
}

func clusters(_ runs: [Span], max: Int) -> [Span] {
    guard runs.count > max, max > 0 else { return runs }
    let gaps = (1..<runs.count).map { runs[$0].lo - runs[$0 - 1].hi }
    let merges = runs.count - max
    let limit = gaps.sorted()[merges - 1]
    var out: [Span] = [runs[0]]
    var budget = merges
    for i in 1..<runs.count {
        if gaps[i - 1] < limit || (gaps[i - 1] == limit && budget > 0) {
            out[out.count - 1].hi = runs[i].hi
            budget -= 1
        } else {
            out.append(runs[i])
        }
    }
    return out
}

struct LayoutDrawing {
    let plan: Plan
    let result: RunResult?
    let width = 1600.0
    let x0 = 180.0
    var axisWidth: Double { width - x0 - 40 }
    var out = ""
    /// Labels drawn over the break bands (collected while drawing shapes).
    var late = ""
    var deferring = false

    init(plan: Plan, result: RunResult?) {
        self.plan = plan
        self.result = result
    }

    static let segmentColors = ["#1f4e9c", "#1e7f5c", "#7d3c98", "#a5660b", "#b03a2e", "#117a8b", "#5d6d7e"]
    static let controlColor = "#6a1b9a"
    static let swapColor = "#d81b60"
    static let indirectionColor = "#ef6c00"
    static let tableColor = "#0d47a1"
    static let sourceColor = "#37474f"
    static let crashColor = "#f8bbd0"
    static let identityColor = "#b3d4f5"
    static let failColor = "#d50000"

    func esc(_ s: String) -> String { JUnit.attr(s) }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    func textWidth(_ s: String, _ size: Double) -> Double { Double(s.count) * size * 0.6 }

    mutating func rect(
        _ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, cls: String? = nil,
        extra: String = "", title: String? = nil
    ) {
        let c = cls.map { " class=\"\($0)\"" } ?? ""
        let t = title.map { "<title>\(JUnit.text($0))</title>" } ?? ""
        out +=
            "<rect\(c) x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(max(w, 0.8)))\" height=\"\(f(h))\" fill=\"\(fill)\"\(extra)>\(t)</rect>\n"
    }

    mutating func text(
        _ s: String, _ x: Double, _ y: Double, size: Double = 11, anchor: String = "start", fill: String = "#222",
        extra: String = ""
    ) {
        let t =
            "<text x=\"\(f(x))\" y=\"\(f(y))\" font-size=\"\(f(size))\" text-anchor=\"\(anchor)\" fill=\"\(fill)\"\(extra)>\(JUnit.text(s))</text>\n"
        if deferring { late += t } else { out += t }
    }

    /// Greedy word wrap at `limit` characters.
    static func wrap(_ s: String, _ limit: Int) -> [String] {
        var lines: [String] = []
        var cur = ""
        for word in s.split(separator: " ", omittingEmptySubsequences: false) {
            if !cur.isEmpty && cur.count + 1 + word.count > limit {
                lines.append(cur)
                cur = String(word)
            } else {
                cur += (cur.isEmpty ? "" : " ") + word
            }
        }
        if !cur.isEmpty || lines.isEmpty { lines.append(cur) }
        return lines
    }

    // MARK: - Data

    var regions: [Region] { plan.scenario.machine.memory.regions }
    var failure: (kind: String, address: UInt64)? {
        guard let r = result, r.verdict.kind != .landed, let a = r.verdict.address else { return nil }
        return (r.verdict.kind.rawValue, a)
    }
    func span(_ r: AddressRange) -> Span { Span(lo: r.first.raw, hi: r.endSaturated) }

    var segmentSpans: [(name: String, span: Span, purgatory: Bool)] {
        plan.segments.compactMap { s in s.range.map { (s.name, span($0), s.isPurgatory) } }
    }

    var holes: [Span] {
        var out: [Span] = []
        var at: UInt64 = 0
        for r in regions {
            if r.range.first.raw > at { out.append(Span(lo: at, hi: r.range.first.raw)) }
            at = max(at, r.range.endSaturated)
        }
        return out
    }

    // MARK: - Render

    mutating func render() -> String {
        let k = plan.kimage
        let machine = plan.scenario.machine
        let sourceRuns = pageRuns(k.sourcePages.map(\.source.raw))
        let sourceClusters = clusters(sourceRuns, max: 12)
        var controlPages: [(UInt64, String, String)] = [(k.controlPage.raw, "control page", Self.controlColor)]
        if let s = k.swapPage { controlPages.append((s.raw, "swap page", Self.swapColor)) }
        for ip in k.indirectionPages { controlPages.append((ip.pa.raw, "indirection page", Self.indirectionColor)) }
        let controlClusters = clusters(pageRuns(controlPages.map(\.0)), max: 8)
        var tablePageSet = Set(plan.tablePageAddresses.map(\.raw))
        for p in k.extraControlPages { tablePageSet.insert(p.raw) }
        let tableRuns = pageRuns(Array(tablePageSet))
        let tableClusters = clusters(tableRuns, max: 8)
        let coverage = plan.mappedCoverage.map(span)
        let crash = plan.crashRegions.map(span)
        let hazards = machine.hazards.map(span)
        let hotplug = machine.hotpluggable.map(span)
        let segs = segmentSpans

        // Axis points.
        var pts = Set<UInt64>([0])
        func add(_ s: Span) {
            pts.insert(s.lo)
            pts.insert(s.hi)
        }
        for r in regions { add(span(r.range)) }
        for s in crash + hazards + hotplug + sourceClusters + controlClusters + tableClusters { add(s) }
        for s in segs { add(s.span) }
        for s in coverage where s.lo < machine.memory.top { add(Span(lo: s.lo, hi: min(s.hi, machine.memory.top))) }
        if let fl = failure { add(Span(lo: fl.address & ~0xfff, hi: (fl.address & ~0xfff) &+ 0x1000)) }
        let top = pts.max()!
        let points = pts.sorted()
        // What must stay readable: the segments (else the crashkernel ranges).
        var reference: UInt64 = segs.map(\.span.size).max() ?? 0
        if reference == 0 { reference = crash.map(\.size).max() ?? 0 }
        let axis = Axis(points: points, x0: x0, width: axisWidth, reference: reference)
        let X = { (a: UInt64) in axis.x(a) }

        // Header lines, wrapped to the canvas.
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
        let machineLines = Self.wrap(machineLine, Int((width - 32) / (12 * 0.6)))
        let verdictLines = Self.wrap(verdictLine, Int((width - 32) / (12.5 * 0.62)))

        // Vertical layout.
        let titleH = 36 + Double(machineLines.count + verdictLines.count) * 18 + 6
        let ovY = titleH + 22
        let ovH = 16.0
        var y = ovY + ovH + 50
        struct Lane {
            var label: String
            var y: Double
            var h: Double
        }
        var lanes: [Lane] = []
        func lane(_ label: String, _ h: Double) -> Lane {
            let l = Lane(label: label, y: y, h: h)
            y += h + 8
            lanes.append(l)
            return l
        }
        let mapLane = lane("memory map", 36)
        let crashLane = crash.isEmpty ? nil : lane("crashkernel", 16)
        let hazardLane = hazards.isEmpty ? nil : lane("hazards", 16)
        let hotplugLane = hotplug.isEmpty ? nil : lane("hotpluggable", 16)
        let idLane = lane("identity map", 14)
        y += 30  // segment labels above the segment lane
        let segLane = lane("segments", 30)
        let srcLane = lane(k.sourcePages.isEmpty ? "source pages (none)" : "source pages (\(k.sourcePages.count))", 18)
        let ctlLane = lane("control / swap / ind.", 18)
        let tblLane = lane("page tables (\(tablePageSet.count))", 18)
        let lanesTop = lanes[0].y
        let axisY = y + 2

        // Header.
        out = ""
        var header = ""
        header += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        // Body first (height known after the legend), header prepended at the end.
        text("Physical memory layout: \(sc.name)", 16, 26, size: 17, extra: " font-weight=\"bold\"")
        var ty = 46.0
        for l in machineLines {
            text(l, 16, ty, size: 12, fill: "#444")
            ty += 18
        }
        let verdictColor = result.map { $0.verdict.kind == .landed ? "#1b5e20" : Self.failColor } ?? "#555"
        for l in verdictLines {
            text(l, 16, ty, size: 12.5, fill: verdictColor, extra: result == nil ? "" : " font-weight=\"bold\"")
            ty += 18
        }

        // Overview, strictly linear.
        text("whole machine", 16, ovY + 12, size: 11, fill: "#333", extra: " font-weight=\"bold\"")
        text("to scale", 16, ovY + 24, size: 10, fill: "#777")
        let mtop = Double(top)
        func ox(_ a: UInt64) -> Double { x0 + Double(a) / mtop * axisWidth }
        out += "<g id=\"overview\">\n"
        rect(x0, ovY, axisWidth, ovH, fill: "url(#hole)", extra: " stroke=\"#999\" stroke-width=\"0.5\"")
        for r in regions {
            let s = span(r.range)
            rect(
                ox(s.lo), ovY, ox(s.hi) - ox(s.lo), ovH, fill: LayoutRenderer.regionColors[r.type.rawValue]!,
                cls: "ov-region", title: "\(r.type.rawValue) \(r.range) \(formatSize(s.size))")
        }
        for s in segs {
            let cx = (ox(s.span.lo) + ox(s.span.hi)) / 2
            out +=
                "<path d=\"M\(f(cx - 4)),\(f(ovY - 7)) L\(f(cx + 4)),\(f(ovY - 7)) L\(f(cx)),\(f(ovY - 1)) Z\" fill=\"#1f4e9c\"><title>\(JUnit.text(s.name))</title></path>\n"
        }
        if let fl = failure {
            let fx = ox(fl.address)
            out +=
                "<line x1=\"\(f(fx))\" y1=\"\(f(ovY - 4))\" x2=\"\(f(fx))\" y2=\"\(f(ovY + ovH + 4))\" stroke=\"\(Self.failColor)\" stroke-width=\"2\"/>\n"
        }
        text("0", x0, ovY + ovH + 13, size: 10, fill: "#555")
        text(
            hex(top) + " (" + formatSize(top) + ")", x0 + axisWidth, ovY + ovH + 13, size: 10, anchor: "end",
            fill: "#555")
        text(
            "▼ segments" + (failure != nil ? "   | failure point" : ""), x0 + axisWidth / 2, ovY + ovH + 13, size: 10,
            anchor: "middle", fill: "#555")
        out += "</g>\n"
        text("detail", 16, lanesTop - 22, size: 11, fill: "#333", extra: " font-weight=\"bold\"")
        text("every boundary kept; ≈ marks compressed stretches", 16, lanesTop - 10, size: 10, fill: "#777")

        // Lane labels and backgrounds.
        for l in lanes {
            text(l.label, x0 - 8, l.y + l.h / 2 + 4, size: 11, anchor: "end", fill: "#333")
            rect(x0, l.y, axisWidth, l.h, fill: "#f7f7f7")
        }

        // Memory map: holes, then one rect per region.
        out += "<g id=\"memory-map\">\n"
        for h in holes
            + (top > (regions.last?.range.endSaturated ?? 0)
                ? [Span(lo: regions.last?.range.endSaturated ?? 0, hi: top)] : [])
        {
            rect(
                X(h.lo), mapLane.y, X(h.hi) - X(h.lo), mapLane.h, fill: "url(#hole)", cls: "hole",
                extra: " stroke=\"#bbb\" stroke-width=\"0.5\"",
                title: "hole [\(hex16(h.lo))-\(hex16(h.hi &- 1))] \(formatSize(h.size))")
        }
        for r in regions {
            let s = span(r.range)
            let x1 = X(s.lo)
            let w = X(s.hi) - x1
            rect(
                x1, mapLane.y, w, mapLane.h, fill: LayoutRenderer.regionColors[r.type.rawValue]!, cls: "region",
                extra: " data-type=\"\(r.type.rawValue)\" stroke=\"#fff\" stroke-width=\"0.6\"",
                title: "\(r.type.rawValue) \(r.range) \(formatSize(s.size))")
        }
        // Region labels where they fit (type over size), clear of the break bands.
        deferring = true
        for r in regions {
            let s = span(r.range)
            let (sx, w) = axis.slot(s.lo, s.hi)
            let name = r.type.rawValue
            let size = formatSize(s.size)
            let cx = sx + w / 2
            if w > textWidth(name, 10.5) + 6 {
                text(name, cx, mapLane.y + 15, size: 10.5, anchor: "middle", fill: "#1a1a1a")
                if w > textWidth(size, 10) + 6 {
                    text(size, cx, mapLane.y + 28, size: 10, anchor: "middle", fill: "#333")
                }
            }
        }
        deferring = false
        out += "</g>\n"

        if let l = crashLane {
            for c in crash {
                rect(
                    X(c.lo), l.y, X(c.hi) - X(c.lo), l.h, fill: Self.crashColor, cls: "crashkernel",
                    extra: " stroke=\"#ad1457\" stroke-width=\"0.8\"",
                    title: "crashkernel [\(hex16(c.lo))-\(hex16(c.hi &- 1))] \(formatSize(c.size))")
                let (sx, w) = axis.slot(c.lo, c.hi)
                let lab = "crashkernel " + formatSize(c.size)
                deferring = true
                if w > textWidth(lab, 10) + 4 {
                    text(lab, sx + w / 2, l.y + 12, size: 10, anchor: "middle", fill: "#6a0f3a")
                }
                deferring = false
            }
        }
        if let l = hazardLane {
            for h in hazards {
                rect(
                    X(h.lo), l.y, X(h.hi) - X(h.lo), l.h, fill: "url(#hazard)", cls: "hazard",
                    extra: " stroke=\"#c62828\" stroke-width=\"1\"",
                    title: "hazard [\(hex16(h.lo))-\(hex16(h.hi &- 1))] \(formatSize(h.size))")
            }
        }
        if let l = hotplugLane {
            for h in hotplug {
                rect(
                    X(h.lo), l.y + 1, X(h.hi) - X(h.lo), l.h - 2, fill: "#e0f2f1", cls: "hotplug",
                    extra: " stroke=\"#00796b\" stroke-width=\"1.2\" stroke-dasharray=\"4 2\"",
                    title: "hotpluggable [\(hex16(h.lo))-\(hex16(h.hi &- 1))] \(formatSize(h.size))")
            }
        }
        for c in coverage where c.lo < top {
            let hi = min(c.hi, top)
            rect(
                X(c.lo), idLane.y + 2, X(hi) - X(c.lo), idLane.h - 4, fill: Self.identityColor, cls: "identity",
                extra: " stroke=\"#5b8fc7\" stroke-width=\"0.5\"",
                title: "identity-mapped [\(hex16(c.lo))-\(hex16(hi &- 1))] \(formatSize(hi - c.lo))")
        }

        // Segments, named.
        out += "<g id=\"segments\">\n"
        var labelRows: [[(Double, Double)]] = [[], [], []]
        let rightEdge = width - 8
        for (i, s) in segs.enumerated() {
            let color = Self.segmentColors[i % Self.segmentColors.count]
            let x1 = X(s.span.lo)
            let w = max(X(s.span.hi) - x1, 2)
            rect(
                x1, segLane.y, w, segLane.h, fill: color, cls: "segment",
                extra: " data-name=\"\(esc(s.name))\" stroke=\"#fff\" stroke-width=\"0.6\"",
                title: "segment \(s.name) [\(hex16(s.span.lo))-\(hex16(s.span.hi &- 1))] \(formatSize(s.span.size))")
            let label = s.name
            let sizeLabel = formatSize(s.span.size)
            let cx = x1 + w / 2
            deferring = true
            if w > textWidth(label, 11) + 6 {
                text(
                    label, cx, segLane.y + 13, size: 11, anchor: "middle", fill: "#fff", extra: " font-weight=\"bold\"")
                if w > textWidth(sizeLabel, 9.5) + 6 {
                    text(sizeLabel, cx, segLane.y + 25, size: 9.5, anchor: "middle", fill: "#e8eef8")
                }
            } else {
                // Above the lane: on the row where it needs the least shifting; a leader line down.
                let full = label + " " + sizeLabel
                let tw = textWidth(full, 10.5)
                var best = (row: 0, start: 0.0, shift: Double.infinity)
                for (ri, row) in labelRows.enumerated() {
                    var start = min(cx - tw / 2, rightEdge - tw)
                    for (a, b) in row.sorted(by: { $0.0 < $1.0 }) where start < b + 6 && start + tw > a - 6 {
                        start = b + 6
                    }
                    if start + tw > rightEdge {
                        // No room to the right: to the left of everything on this row.
                        start = min(cx - tw / 2, (row.map(\.0).min() ?? rightEdge) - 6 - tw)
                    }
                    let shift = abs(start + tw / 2 - cx)
                    if shift < best.shift - 0.5 { best = (ri, start, shift) }
                }
                labelRows[best.row].append((best.start, best.start + tw))
                let ly = segLane.y - 6 - Double(best.row) * 11
                let lx = best.start + tw / 2
                out +=
                    "<polyline points=\"\(f(lx)),\(f(ly + 2)) \(f(cx)),\(f(segLane.y - 3)) \(f(cx)),\(f(segLane.y))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1\"/>\n"
                text(full, lx, ly, size: 10.5, anchor: "middle", fill: color, extra: " font-weight=\"bold\"")
            }
            deferring = false
        }
        out += "</g>\n"

        // Source pages as ticks / runs.
        out += "<g id=\"source-pages\">\n"
        for r in sourceRuns {
            rect(
                X(r.lo), srcLane.y + 2, X(r.hi) - X(r.lo), srcLane.h - 4, fill: Self.sourceColor, cls: "source",
                title: "source pages [\(hex16(r.lo))-\(hex16(r.hi &- 1))] \(r.size / 0x1000) pages")
        }
        out += "</g>\n"

        // Control, swap, indirection pages.
        out += "<g id=\"control-pages\">\n"
        for (pa, what, color) in controlPages {
            let x1 = X(pa)
            rect(
                x1 - 1, ctlLane.y + 2, max(X(pa &+ 0x1000) - x1, 3), ctlLane.h - 4, fill: color, cls: "control",
                extra: " data-what=\"\(what)\"", title: "\(what) \(hex(pa))")
        }
        out += "</g>\n"
        out += "<g id=\"table-pages\">\n"
        for r in tableRuns {
            let x1 = X(r.lo)
            rect(
                x1, tblLane.y + 2, max(X(r.hi) - x1, 2), tblLane.h - 4, fill: Self.tableColor, cls: "table",
                title: "page-table pages [\(hex16(r.lo))-\(hex16(r.hi &- 1))] \(r.size / 0x1000) pages")
        }
        out += "</g>\n"

        // Breaks: a zig-zag band across the lanes and the skipped size under the axis.
        out += "<g id=\"breaks\">\n"
        for i in 0..<(axis.points.count - 1) where axis.broken[i] {
            let xa = axis.xs[i]
            let xb = axis.xs[i + 1]
            let cx = (xa + xb) / 2
            let y1 = lanesTop - 4
            let y2 = axisY + 4
            let amp = 3.0
            let step = 6.0
            var left = "M\(f(cx - 4)),\(f(y1))"
            var right = ""
            var yy = y1
            var flip = false
            while yy < y2 {
                yy = min(yy + step, y2)
                flip.toggle()
                left += " L\(f(cx - 4 + (flip ? amp : 0))),\(f(yy))"
            }
            var pts: [String] = []
            yy = y1
            flip = false
            pts.append("\(f(cx + 4)),\(f(y1))")
            while yy < y2 {
                yy = min(yy + step, y2)
                flip.toggle()
                pts.append("\(f(cx + 4 + (flip ? amp : 0))),\(f(yy))")
            }
            right = pts.reversed().map { " L" + $0 }.joined()
            out +=
                "<path class=\"break\" d=\"\(left)\(right) Z\" fill=\"#ffffff\" stroke=\"#777\" stroke-width=\"1\"><title>\(formatSize(axis.points[i + 1] - axis.points[i])) not to scale</title></path>\n"
            let lab = "≈" + formatSize(axis.points[i + 1] - axis.points[i])
            let tw = textWidth(lab, 9.5)
            rect(cx - tw / 2 - 2, axisY + 6, tw + 4, 12, fill: "#ffffff")
            text(lab, cx, axisY + 15, size: 9.5, anchor: "middle", fill: "#666", extra: " font-style=\"italic\"")
        }
        out += "</g>\n"
        out += "<g id=\"labels\">\n" + late + "</g>\n"
        late = ""

        // Axis with hex labels, most important first.
        out += "<g id=\"axis\">\n"
        out +=
            "<line x1=\"\(f(x0))\" y1=\"\(f(axisY))\" x2=\"\(f(x0 + axisWidth))\" y2=\"\(f(axisY))\" stroke=\"#333\" stroke-width=\"1\"/>\n"
        var priority: [UInt64: Int] = [:]
        func prio(_ a: UInt64, _ p: Int) { priority[a] = min(priority[a] ?? 9, p) }
        if let fl = failure { prio(fl.address & ~0xfff, 0) }
        for s in segs { prio(s.span.lo, 1) }
        for s in crash + hazards { prio(s.lo, 2) }
        for r in regions { prio(r.range.first.raw, 3) }
        prio(top, 3)
        for s in coverage { prio(s.hi, 4) }
        for s in sourceClusters + controlClusters + tableClusters { prio(s.lo, 5) }
        for s in segs { prio(s.span.hi, 6) }
        for r in regions { prio(r.range.endSaturated, 6) }
        var placed: [Double] = []
        var longest = 0
        for (a, _) in priority.sorted(by: { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }) {
            let x = X(a)
            if placed.contains(where: { abs($0 - x) < 11.5 }) { continue }
            placed.append(x)
            out +=
                "<line x1=\"\(f(x))\" y1=\"\(f(axisY - 3))\" x2=\"\(f(x))\" y2=\"\(f(axisY + 4))\" stroke=\"#333\" stroke-width=\"1\"/>\n"
            text(
                hex(a), x + 3, axisY + 22, size: 9.5, anchor: "end", fill: "#333",
                extra: " font-family=\"monospace\" transform=\"rotate(-45 \(f(x + 3)) \(f(axisY + 22)))\"")
            longest = max(longest, hex(a).count)
        }
        for p in axis.points where !placed.contains(where: { abs($0 - X(p)) < 0.5 }) {
            let x = X(p)
            out +=
                "<line x1=\"\(f(x))\" y1=\"\(f(axisY - 2))\" x2=\"\(f(x))\" y2=\"\(f(axisY + 2))\" stroke=\"#999\" stroke-width=\"0.6\"/>\n"
        }
        out += "</g>\n"

        // The failure point.
        if let fl = failure {
            let fx = X(fl.address)
            out += "<g id=\"failure\">\n"
            out +=
                "<line x1=\"\(f(fx))\" y1=\"\(f(lanesTop - 14))\" x2=\"\(f(fx))\" y2=\"\(f(axisY))\" stroke=\"\(Self.failColor)\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\n"
            out +=
                "<path d=\"M\(f(fx - 7)),\(f(lanesTop - 26)) L\(f(fx + 7)),\(f(lanesTop - 26)) L\(f(fx)),\(f(lanesTop - 14)) Z\" fill=\"\(Self.failColor)\"/>\n"
            let lab = "\(fl.kind) at \(hex(fl.address))"
            let right = fx + textWidth(lab, 12) + 12 < x0 + axisWidth
            text(
                lab, right ? fx + 10 : fx - 10, lanesTop - 16, size: 12, anchor: right ? "start" : "end",
                fill: Self.failColor, extra: " font-weight=\"bold\"")
            out += "</g>\n"
        }

        // Legend.
        var ly = axisY + 22 + Double(longest) * 9.5 * 0.6 * 0.71 + 18
        out += "<g id=\"legend\">\n"
        text("legend", 16, ly + 12, size: 11, fill: "#333", extra: " font-weight=\"bold\"")
        var items: [(String, String, String)] = []  // label, fill, extra
        for t in ["usable", "reserved", "acpi", "nvs", "persistent", "soft-reserved", "unusable", "hole"] {
            items.append((t, LayoutRenderer.regionColors[t]!, t == "hole" ? " stroke=\"#bbb\"" : ""))
        }
        items.append(("crashkernel", Self.crashColor, " stroke=\"#ad1457\""))
        items.append(("hazard", "url(#hazard)", " stroke=\"#c62828\""))
        items.append(("hotpluggable", "#e0f2f1", " stroke=\"#00796b\" stroke-dasharray=\"4 2\""))
        items.append(("identity-mapped", Self.identityColor, " stroke=\"#5b8fc7\""))
        items.append(("segment", Self.segmentColors[0], ""))
        items.append(("source pages", Self.sourceColor, ""))
        items.append(("control page", Self.controlColor, ""))
        items.append(("swap page", Self.swapColor, ""))
        items.append(("indirection page", Self.indirectionColor, ""))
        items.append(("page-table page", Self.tableColor, ""))
        items.append(("failure point", Self.failColor, ""))
        var lx = x0
        ly += 2
        for (label, fill, extra) in items {
            let w = 22 + textWidth(label, 11) + 18
            if lx + w > width - 20 {
                lx = x0
                ly += 20
            }
            rect(lx, ly, 16, 12, fill: fill, extra: extra + " stroke-width=\"0.8\"")
            text(label, lx + 21, ly + 10.5, size: 11, fill: "#222")
            lx += w
        }
        // The break symbol.
        let w = 22 + textWidth("compressed stretch (size shown)", 11) + 18
        if lx + w > width - 20 {
            lx = x0
            ly += 20
        }
        out +=
            "<path d=\"M\(f(lx + 4)),\(f(ly - 1)) L\(f(lx + 7)),\(f(ly + 3)) L\(f(lx + 4)),\(f(ly + 7)) L\(f(lx + 7)),\(f(ly + 11)) L\(f(lx + 13)),\(f(ly + 11)) L\(f(lx + 10)),\(f(ly + 7)) L\(f(lx + 13)),\(f(ly + 3)) L\(f(lx + 10)),\(f(ly - 1)) Z\" fill=\"#fff\" stroke=\"#777\"/>\n"
        text("compressed stretch (size shown)", lx + 21, ly + 10.5, size: 11, fill: "#222")
        out += "</g>\n"
        let height = ly + 34

        header +=
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        header += "<title>\(JUnit.text("kexec-sim layout: " + sc.name))</title>\n"
        header += "<defs>\n"
        header +=
            "<pattern id=\"hole\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fbfbfb\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d4d4d4\" stroke-width=\"2\"/></pattern>\n"
        header +=
            "<pattern id=\"hazard\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(-45)\"><rect width=\"8\" height=\"8\" fill=\"#ffebee\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"8\" stroke=\"#e53935\" stroke-width=\"3\"/></pattern>\n"
        header += "</defs>\n"
        header += "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#ffffff\"/>\n"
        return header + out + "</svg>\n"
    }
}
