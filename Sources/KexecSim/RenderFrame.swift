import Foundation
import KexecModel

/// Everything around the lanes: title, overview strip, break bands, axis, failure point, legend
/// and the SVG header.
extension LayoutDrawing {
    /// The title, the wrapped machine line and the verdict line (coloured by the verdict).
    mutating func drawTitle(_ g: LayoutGeometry) {
        text("Physical memory layout: \(plan.scenario.name)", 16, 26, size: 17, extra: " font-weight=\"bold\"")
        var ty = 46.0
        for l in g.machineLines {
            text(l, 16, ty, size: 12, fill: "#444")
            ty += 18
        }
        let verdictColor = result.map { $0.verdict.kind == .landed ? "#1b5e20" : Self.failColor } ?? "#555"
        for l in g.verdictLines {
            text(l, 16, ty, size: 12.5, fill: verdictColor, extra: result == nil ? "" : " font-weight=\"bold\"")
            ty += 18
        }
    }

    /// The whole machine strictly to scale: regions, a marker per segment, the failure point; then
    /// the heading of the detail view below it.
    mutating func drawOverview(_ g: LayoutGeometry) {
        let ovY = g.ovY
        let ovH = g.ovH
        let top = g.top
        text("whole machine", 16, ovY + 12, size: 11, fill: "#333", extra: " font-weight=\"bold\"")
        text("to scale", 16, ovY + 24, size: 10, fill: "#777")
        let mtop = Double(top)
        let x0 = self.x0
        let axisWidth = self.axisWidth
        func ox(_ a: UInt64) -> Double { x0 + Double(a) / mtop * axisWidth }
        out += "<g id=\"overview\">\n"
        rect(x0, ovY, axisWidth, ovH, fill: "url(#hole)", extra: " stroke=\"#999\" stroke-width=\"0.5\"")
        for r in regions {
            let s = span(r.range)
            rect(
                ox(s.lo), ovY, ox(s.hi) - ox(s.lo), ovH, fill: LayoutRenderer.regionColors[r.type.rawValue]!,
                cls: "ov-region", title: "\(r.type.rawValue) \(r.range) \(formatSize(s.size))")
        }
        for s in g.segs {
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
        text("detail", 16, g.lanesTop - 22, size: 11, fill: "#333", extra: " font-weight=\"bold\"")
        text("every boundary kept; ≈ marks compressed stretches", 16, g.lanesTop - 10, size: 10, fill: "#777")
    }

    /// A zig-zag band across the lanes for each compressed stretch, with the skipped size under
    /// the axis.
    mutating func drawBreaks(_ g: LayoutGeometry) {
        let axis = g.axis
        let axisY = g.axisY
        out += "<g id=\"breaks\">\n"
        for i in 0..<(axis.points.count - 1) where axis.broken[i] {
            let xa = axis.xs[i]
            let xb = axis.xs[i + 1]
            let cx = (xa + xb) / 2
            let y1 = g.lanesTop - 4
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
    }

    /// The axis line with hex labels, most important first (failure, segment starts, crashkernel
    /// and hazards, regions, …), none closer than 11.5 px; minor ticks at the other points.
    /// Returns the length of the longest label drawn (the legend goes below it).
    mutating func drawAxis(_ g: LayoutGeometry) -> Int {
        let axisY = g.axisY
        out += "<g id=\"axis\">\n"
        out +=
            "<line x1=\"\(f(x0))\" y1=\"\(f(axisY))\" x2=\"\(f(x0 + axisWidth))\" y2=\"\(f(axisY))\" stroke=\"#333\" stroke-width=\"1\"/>\n"
        var priority: [UInt64: Int] = [:]
        func prio(_ a: UInt64, _ p: Int) { priority[a] = min(priority[a] ?? 9, p) }
        if let fl = failure { prio(fl.address & ~0xfff, 0) }
        for s in g.segs { prio(s.span.lo, 1) }
        for s in g.crash + g.hazards { prio(s.lo, 2) }
        for r in regions { prio(r.range.first.raw, 3) }
        prio(g.top, 3)
        for s in g.coverage { prio(s.hi, 4) }
        for s in g.sourceClusters + g.controlClusters + g.tableClusters { prio(s.lo, 5) }
        for s in g.segs { prio(s.span.hi, 6) }
        for r in regions { prio(r.range.endSaturated, 6) }
        var placed: [Double] = []
        var longest = 0
        for (a, _) in priority.sorted(by: { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }) {
            let x = g.x(a)
            if placed.contains(where: { abs($0 - x) < 11.5 }) { continue }
            placed.append(x)
            out +=
                "<line x1=\"\(f(x))\" y1=\"\(f(axisY - 3))\" x2=\"\(f(x))\" y2=\"\(f(axisY + 4))\" stroke=\"#333\" stroke-width=\"1\"/>\n"
            text(
                hex(a), x + 3, axisY + 22, size: 9.5, anchor: "end", fill: "#333",
                extra: " font-family=\"monospace\" transform=\"rotate(-45 \(f(x + 3)) \(f(axisY + 22)))\"")
            longest = max(longest, hex(a).count)
        }
        for p in g.axis.points where !placed.contains(where: { abs($0 - g.x(p)) < 0.5 }) {
            let x = g.x(p)
            out +=
                "<line x1=\"\(f(x))\" y1=\"\(f(axisY - 2))\" x2=\"\(f(x))\" y2=\"\(f(axisY + 2))\" stroke=\"#999\" stroke-width=\"0.6\"/>\n"
        }
        out += "</g>\n"
        return longest
    }

    /// Where a failed run stopped: a dashed line through the lanes, a marker and its label.
    mutating func drawFailurePoint(_ g: LayoutGeometry) {
        guard let fl = failure else { return }
        let lanesTop = g.lanesTop
        let fx = g.x(fl.address)
        out += "<g id=\"failure\">\n"
        out +=
            "<line x1=\"\(f(fx))\" y1=\"\(f(lanesTop - 14))\" x2=\"\(f(fx))\" y2=\"\(f(g.axisY))\" stroke=\"\(Self.failColor)\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\n"
        out +=
            "<path d=\"M\(f(fx - 7)),\(f(lanesTop - 26)) L\(f(fx + 7)),\(f(lanesTop - 26)) L\(f(fx)),\(f(lanesTop - 14)) Z\" fill=\"\(Self.failColor)\"/>\n"
        let lab = "\(fl.kind) at \(hex(fl.address))"
        let right = fx + textWidth(lab, 12) + 12 < x0 + axisWidth
        text(
            lab, right ? fx + 10 : fx - 10, lanesTop - 16, size: 12, anchor: right ? "start" : "end",
            fill: Self.failColor, extra: " font-weight=\"bold\"")
        out += "</g>\n"
    }

    /// The legend below the axis labels; returns the document's height.
    mutating func drawLegend(_ g: LayoutGeometry, longestAxisLabel longest: Int) -> Double {
        var ly = g.axisY + 22 + Double(longest) * 9.5 * 0.6 * 0.71 + 18
        out += "<g id=\"legend\">\n"
        text("legend", 16, ly + 12, size: 11, fill: "#333", extra: " font-weight=\"bold\"")
        var items: [(String, String, String)] = []  // label, fill, extra
        for t in ["usable", "reserved", "acpi", "nvs", "persistent", "soft-reserved", "unusable", "hole"] {
            items.append((t, LayoutRenderer.regionColors[t]!, t == "hole" ? " stroke=\"#bbb\"" : ""))
        }
        items.append(("crashkernel", Self.crashColor, " stroke=\"#ad1457\""))
        items.append(("hazard", "url(#hazard)", " stroke=\"#c62828\""))
        items.append(("hotpluggable", "#e0f2f1", " stroke=\"#00796b\" stroke-dasharray=\"4 2\""))
        items += khoLegend
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
        return ly + 34
    }

    /// The XML declaration, `<svg>` with the final size, title, patterns and the white page.
    func documentHeader(height: Double) -> String {
        var header = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        header +=
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
        header += "<title>\(JUnit.text("kexec-sim layout: " + plan.scenario.name))</title>\n"
        header += "<defs>\n"
        header +=
            "<pattern id=\"hole\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fbfbfb\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#d4d4d4\" stroke-width=\"2\"/></pattern>\n"
        header +=
            "<pattern id=\"hazard\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(-45)\"><rect width=\"8\" height=\"8\" fill=\"#ffebee\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"8\" stroke=\"#e53935\" stroke-width=\"3\"/></pattern>\n"
        header += "</defs>\n"
        header += "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"#ffffff\"/>\n"
        return header
    }
}
