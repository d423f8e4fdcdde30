import Foundation
import KexecModel
import PageTables

/// `kexec-sim tables` for arm64 machines: the first kernel's linear map and the MMU-on relocation
/// tables, per granule and mapping kind (the MMU-off path needs none).
public enum Arm64TableReport {
    public struct Row: Sendable {
        public var granule: String
        public var mappings: String
        public var linearMap: Arm64TableCost
        /// With the crashkernel region left unmapped (protection): base pages around it.
        public var linearMapProtected: Arm64TableCost?
        /// MMU-on relocation: a copy of the linear map (what trans_pgd_create_copy builds).
        public var relocationCopy: Arm64TableCost
        /// Base-page tables over only what is relocated (sources, destinations): ≈ payload / 512 with 4k.
        public var relocationRelocatedOnly: Arm64TableCost
    }

    public static func rows(_ sc: Scenario, payload: [AddressRange]) -> [Row] {
        let ram = sc.machine.memory.usable.ranges
        var rows: [Row] = []
        for g in Granule.allCases {
            let layout = Arm64Layout(ram: ram, granule: g)
            for m in Arm64Mappings.allCases {
                let lm = Arm64LinearMap.cost(ram: ram, granule: g, mappings: m, layout: layout)
                let prot =
                    sc.machine.crashkernelRanges.isEmpty
                    ? nil
                    : Arm64LinearMap.cost(
                        ram: ram, protected: sc.machine.crashkernelRanges, granule: g, mappings: m, layout: layout)
                let copy = Arm64LinearMap.relocationCost(
                    .linearMapCopy, ram: ram, relocated: payload, granule: g, mappings: m, layout: layout)
                let only = Arm64LinearMap.relocationCost(
                    .relocatedOnly, ram: ram, relocated: payload, granule: g, mappings: m, layout: layout)
                rows.append(
                    Row(
                        granule: g.rawValue, mappings: m.rawValue, linearMap: lm, linearMapProtected: prot,
                        relocationCopy: copy, relocationRelocatedOnly: only))
            }
        }
        return rows
    }

    public static func text(_ rows: [Row]) -> String {
        func c(_ t: Arm64TableCost?) -> String {
            guard let t else { return "-" }
            return "\(t.levels.map(String.init).joined(separator: "/")) = \(t.pages) (\(formatSize(t.bytes)))"
        }
        var out =
            "granule mappings    linear map L0/L1/L2/L3 = pages        protected crashkernel          "
            + "MMU-on copy                    MMU-on relocated-only\n"
        for r in rows {
            out += r.granule.padding(toLength: 8, withPad: " ", startingAt: 0)
            out += r.mappings.padding(toLength: 13, withPad: " ", startingAt: 0)
            out += c(r.linearMap).padding(toLength: 31, withPad: " ", startingAt: 0)
            out += c(r.linearMapProtected).padding(toLength: 31, withPad: " ", startingAt: 0)
            out += c(r.relocationCopy).padding(toLength: 31, withPad: " ", startingAt: 0)
            out += c(r.relocationRelocatedOnly) + "\n"
        }
        out += "MMU-off relocation needs no tables.\n"
        return out
    }

    public static func json(_ rows: [Row]) -> [[String: Any]] {
        func d(_ t: Arm64TableCost?) -> Any {
            guard let t else { return NSNull() }
            return ["levels": t.levels, "pages": t.pages, "bytes": t.bytes] as [String: Any]
        }
        return rows.map {
            [
                "granule": $0.granule, "mappings": $0.mappings, "linear_map": d($0.linearMap),
                "linear_map_protected": d($0.linearMapProtected), "relocation_copy": d($0.relocationCopy),
                "relocation_relocated_only": d($0.relocationRelocatedOnly),
            ]
        }
    }
}
