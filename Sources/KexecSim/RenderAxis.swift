import Foundation

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
