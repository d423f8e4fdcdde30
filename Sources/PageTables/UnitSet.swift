/// A set of unit indices (page numbers, GiB numbers, …) kept as sorted, disjoint, non-adjacent
/// inclusive intervals. The cost estimate uses it to count table pages without building them.
struct UnitSet: Sendable {
    private(set) var intervals: [(first: UInt64, last: UInt64)] = []

    /// Number of units in the set.
    var count: UInt64 { intervals.reduce(0) { $0 + ($1.last - $1.first + 1) } }

    func contains(_ u: UInt64) -> Bool {
        var lo = 0
        var hi = intervals.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if u < intervals[mid].first {
                hi = mid - 1
            } else if u > intervals[mid].last {
                lo = mid + 1
            } else {
                return true
            }
        }
        return false
    }

    /// The parts of [first, last] not yet in the set, ascending.
    func gaps(_ first: UInt64, _ last: UInt64) -> [(first: UInt64, last: UInt64)] {
        var out: [(first: UInt64, last: UInt64)] = []
        var cursor = first
        for iv in intervals where iv.last >= first {
            if iv.first > last { break }
            if iv.first > cursor { out.append((cursor, iv.first - 1)) }
            if iv.last >= last { return out }
            cursor = iv.last + 1
        }
        out.append((cursor, last))
        return out
    }

    mutating func insert(_ first: UInt64, _ last: UInt64) {
        var lo = first
        var hi = last
        var kept: [(first: UInt64, last: UInt64)] = []
        kept.reserveCapacity(intervals.count + 1)
        var placed = false
        for iv in intervals {
            let touches = iv.first <= (hi == .max ? .max : hi + 1) && lo <= (iv.last == .max ? .max : iv.last + 1)
            if touches {
                lo = min(lo, iv.first)
                hi = max(hi, iv.last)
            } else if iv.last < lo {
                kept.append(iv)
            } else {
                if !placed {
                    kept.append((lo, hi))
                    placed = true
                }
                kept.append(iv)
            }
        }
        if !placed { kept.append((lo, hi)) }
        intervals = kept
    }
}
