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

/// Runs of consecutive 4 KiB pages, in address order.
func pageRuns(_ pages: [UInt64], pageSize: UInt64 = 0x1000) -> [Span] {
    var runs: [Span] = []
    for p in pages.sorted() {
        if let last = runs.last, p <= last.hi {
            runs[runs.count - 1].hi = max(last.hi, p &+ pageSize)
        } else {
            runs.append(Span(lo: p, hi: p &+ pageSize))
        }
    }
    return runs
}

/// Merges `runs` over the smallest gaps until at most `max` remain.
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
