import Foundation
import KexecModel
import Kimage
import PageTables

/// One SVG drawing of a plan (and its run). `render()` computes the geometry, then draws the
/// title, the overview strip, each lane of the detail view, the breaks, the axis, the failure
/// point and the legend, in that order, into `out`; labels that must sit above the break bands
/// are collected in `late` while `deferring` is set and emitted after the breaks.
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

    /// The whole SVG document.
    mutating func render() -> String {
        let g = geometry()
        out = ""
        // Body first (height known after the legend), header prepended at the end.
        drawTitle(g)
        drawOverview(g)
        drawLaneBackgrounds(g)
        drawMemoryMap(g)
        drawCrashkernel(g)
        drawHazards(g)
        drawHotplug(g)
        drawKho(g)
        drawIdentityMap(g)
        drawSegments(g)
        drawSourcePages(g)
        drawControlPages(g)
        drawTablePages(g)
        drawBreaks(g)
        out += "<g id=\"labels\">\n" + late + "</g>\n"
        late = ""
        let longest = drawAxis(g)
        drawFailurePoint(g)
        let height = drawLegend(g, longestAxisLabel: longest)
        return documentHeader(height: height) + out + "</svg>\n"
    }
}
