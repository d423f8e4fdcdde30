import Foundation
import KexecModel

/// The lanes of the detail view, one function each, all on the same piecewise-linear axis.
extension LayoutDrawing {
    /// Each lane's label (left of the axis) and its light background.
    mutating func drawLaneBackgrounds(_ g: LayoutGeometry) {
        for l in g.lanes {
            text(l.label, x0 - 8, l.y + l.h / 2 + 4, size: 11, anchor: "end", fill: "#333")
            rect(x0, l.y, axisWidth, l.h, fill: "#f7f7f7")
        }
    }

    /// Memory map: holes, then one rect per region; region labels (type over size) where they fit,
    /// clear of the break bands.
    mutating func drawMemoryMap(_ g: LayoutGeometry) {
        let mapLane = g.mapLane
        let top = g.top
        out += "<g id=\"memory-map\">\n"
        for h in holes
            + (top > (regions.last?.range.endSaturated ?? 0)
                ? [Span(lo: regions.last?.range.endSaturated ?? 0, hi: top)] : [])
        {
            rect(
                g.x(h.lo), mapLane.y, g.x(h.hi) - g.x(h.lo), mapLane.h, fill: "url(#hole)", cls: "hole",
                extra: " stroke=\"#bbb\" stroke-width=\"0.5\"",
                title: "hole [\(hex16(h.lo))-\(hex16(h.hi &- 1))] \(formatSize(h.size))")
        }
        for r in regions {
            let s = span(r.range)
            let x1 = g.x(s.lo)
            let w = g.x(s.hi) - x1
            rect(
                x1, mapLane.y, w, mapLane.h, fill: LayoutRenderer.regionColors[r.type.rawValue]!, cls: "region",
                extra: " data-type=\"\(r.type.rawValue)\" stroke=\"#fff\" stroke-width=\"0.6\"",
                title: "\(r.type.rawValue) \(r.range) \(formatSize(s.size))")
        }
        deferring = true
        for r in regions {
            let s = span(r.range)
            let (sx, w) = g.axis.slot(s.lo, s.hi)
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
    }

    /// The crashkernel reservation(s), labelled with their size where it fits.
    mutating func drawCrashkernel(_ g: LayoutGeometry) {
        guard let l = g.crashLane else { return }
        for c in g.crash {
            rect(
                g.x(c.lo), l.y, g.x(c.hi) - g.x(c.lo), l.h, fill: Self.crashColor, cls: "crashkernel",
                extra: " stroke=\"#ad1457\" stroke-width=\"0.8\"",
                title: "crashkernel [\(hex16(c.lo))-\(hex16(c.hi &- 1))] \(formatSize(c.size))")
            let (sx, w) = g.axis.slot(c.lo, c.hi)
            let lab = "crashkernel " + formatSize(c.size)
            deferring = true
            if w > textWidth(lab, 10) + 4 {
                text(lab, sx + w / 2, l.y + 12, size: 10, anchor: "middle", fill: "#6a0f3a")
            }
            deferring = false
        }
    }

    /// Ranges the machine must never touch (hatched).
    mutating func drawHazards(_ g: LayoutGeometry) {
        guard let l = g.hazardLane else { return }
        for h in g.hazards {
            rect(
                g.x(h.lo), l.y, g.x(h.hi) - g.x(h.lo), l.h, fill: "url(#hazard)", cls: "hazard",
                extra: " stroke=\"#c62828\" stroke-width=\"1\"",
                title: "hazard [\(hex16(h.lo))-\(hex16(h.hi &- 1))] \(formatSize(h.size))")
        }
    }

    /// Hot-pluggable ranges (dashed).
    mutating func drawHotplug(_ g: LayoutGeometry) {
        guard let l = g.hotplugLane else { return }
        for h in g.hotplug {
            rect(
                g.x(h.lo), l.y + 1, g.x(h.hi) - g.x(h.lo), l.h - 2, fill: "#e0f2f1", cls: "hotplug",
                extra: " stroke=\"#00796b\" stroke-width=\"1.2\" stroke-dasharray=\"4 2\"",
                title: "hotpluggable [\(hex16(h.lo))-\(hex16(h.hi &- 1))] \(formatSize(h.size))")
        }
    }

    /// What the identity map (or linear map) covers, clipped to the drawn space.
    mutating func drawIdentityMap(_ g: LayoutGeometry) {
        let idLane = g.idLane
        for c in g.coverage where c.lo < g.top {
            let hi = min(c.hi, g.top)
            rect(
                g.x(c.lo), idLane.y + 2, g.x(hi) - g.x(c.lo), idLane.h - 4, fill: Self.identityColor, cls: "identity",
                extra: " stroke=\"#5b8fc7\" stroke-width=\"0.5\"",
                title: "identity-mapped [\(hex16(c.lo))-\(hex16(hi &- 1))] \(formatSize(hi - c.lo))")
        }
    }

    /// The segments, named inside when the name fits, else above the lane on one of three label
    /// rows (the one needing the least shift) with a leader line down.
    mutating func drawSegments(_ g: LayoutGeometry) {
        let segLane = g.segLane
        out += "<g id=\"segments\">\n"
        var labelRows: [[(Double, Double)]] = [[], [], []]
        let rightEdge = width - 8
        for (i, s) in g.segs.enumerated() {
            let color = Self.segmentColors[i % Self.segmentColors.count]
            let x1 = g.x(s.span.lo)
            let w = max(g.x(s.span.hi) - x1, 2)
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
    }

    /// The kimage's source pages, as runs of consecutive pages.
    mutating func drawSourcePages(_ g: LayoutGeometry) {
        let srcLane = g.srcLane
        out += "<g id=\"source-pages\">\n"
        for r in g.sourceRuns {
            rect(
                g.x(r.lo), srcLane.y + 2, g.x(r.hi) - g.x(r.lo), srcLane.h - 4, fill: Self.sourceColor, cls: "source",
                title: "source pages [\(hex16(r.lo))-\(hex16(r.hi &- 1))] \(r.size / plan.kimage.pageSize) pages")
        }
        out += "</g>\n"
    }

    /// The kimage's own pages: control, swap and indirection pages, each at least 3 px wide.
    mutating func drawControlPages(_ g: LayoutGeometry) {
        let ctlLane = g.ctlLane
        out += "<g id=\"control-pages\">\n"
        for (pa, what, color) in g.controlPages {
            let x1 = g.x(pa)
            rect(
                x1 - 1, ctlLane.y + 2, max(g.x(pa &+ plan.kimage.pageSize) - x1, 3), ctlLane.h - 4, fill: color,
                cls: "control",
                extra: " data-what=\"\(what)\"", title: "\(what) \(hex(pa))")
        }
        out += "</g>\n"
    }

    /// The page-table pages (identity map and extra control pages), as runs.
    mutating func drawTablePages(_ g: LayoutGeometry) {
        let tblLane = g.tblLane
        out += "<g id=\"table-pages\">\n"
        for r in g.tableRuns {
            let x1 = g.x(r.lo)
            rect(
                x1, tblLane.y + 2, max(g.x(r.hi) - x1, 2), tblLane.h - 4, fill: Self.tableColor, cls: "table",
                title: "page-table pages [\(hex16(r.lo))-\(hex16(r.hi &- 1))] \(r.size / plan.kimage.pageSize) pages")
        }
        out += "</g>\n"
    }
}
