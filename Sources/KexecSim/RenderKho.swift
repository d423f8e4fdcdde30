import KexecModel

/// The Kexec HandOver lane of the layout drawing: the scratch areas (where kexec_file_load may
/// place a normal image) and the preserved ranges with their owners, each with a tooltip.
extension LayoutDrawing {
    static let khoScratchColor = "#c8e6c9"
    static let khoPreservedColor = "#ffcc80"

    /// Non-empty scratch areas, then preserved ranges: (span, tooltip, preserved).
    var khoSpans: [(span: Span, label: String, preserved: Bool)] {
        guard let k = plan.kho else { return [] }
        let scratch = k.scratch.compactMap { a in a.range.map { (span($0), "KHO scratch \(a)", false) } }
        let preserved = k.preserved.map { (span($0.range), "preserved by \"\($0.owner)\" \($0.range)", true) }
        return scratch + preserved
    }

    var khoLegend: [(String, String, String)] {
        guard plan.kho != nil else { return [] }
        return [
            ("KHO scratch", Self.khoScratchColor, " stroke=\"#2e7d32\""),
            ("KHO preserved", Self.khoPreservedColor, " stroke=\"#e65100\""),
        ]
    }

    mutating func drawKho(_ g: LayoutGeometry) {
        guard let l = g.khoLane else { return }
        out += "<g id=\"kho\">\n"
        for s in khoSpans {
            rect(
                g.x(s.span.lo), l.y, max(1, g.x(s.span.hi) - g.x(s.span.lo)), l.h,
                fill: s.preserved ? Self.khoPreservedColor : Self.khoScratchColor,
                cls: s.preserved ? "kho-preserved" : "kho-scratch",
                extra: s.preserved
                    ? " stroke=\"#e65100\" stroke-width=\"0.8\"" : " stroke=\"#2e7d32\" stroke-width=\"0.8\"",
                title: s.label)
        }
        out += "</g>\n"
    }
}
