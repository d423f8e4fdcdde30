import KexecModel
import Kimage
import PageTables

/// `kexec-sim tables`: what the identity map costs under each policy, and what it leaves out.
public enum TableReport {
    public struct Row: Sendable {
        public var cost: TableCost
        /// `next_kernel_touches` addresses without a translation under this policy.
        public var unmappedTouches: [PhysAddr]
        /// (leaf, hazard) pairs: leaves that cover a hazard byte.
        public var hazardLeaves: [(leaf: Leaf, hazard: AddressRange)]
    }

    /// What init_pgtable would be asked to map for this fixture under `policy`; with `noSegments`
    /// only the machine's own ranges (RAM as the kernel direct-maps it, first 1 MiB, ACPI, NVS).
    public static func requests(_ sc: Scenario, policy: IdentityMapPolicy, noSegments: Bool) throws(PlanError)
        -> [IdentityMapRequest]
    {
        guard var pol = sc.x86Policy else {
            throw .unsupported("identity-map tables are x86_64's; machine.arch is \(sc.machine.arch.rawValue)")
        }
        var s = sc
        pol.identityMap = policy
        s.policy = .x86_64(pol)
        var segs: [(name: String, range: AddressRange)] = []
        var type = ImageType.normal
        if let k = s.kexec, !noSegments {
            type = k.type
            if case .planned(let p) = try Planner.plan(s) {
                segs = p.segments.compactMap { seg in seg.range.map { (seg.name, $0) } }
            }
        }
        if noSegments { pol.mapSegments = false }
        return X86IdentityMap.requests(
            machine: s.machine, segments: segs, policy: pol, imageType: type, crashkernel: s.machine.crashkernelRanges,
            kernel: s.machine.kernelVersion)
    }

    public static func cost(_ sc: Scenario, policy: IdentityMapPolicy, noSegments: Bool) throws(PlanError) -> TableCost
    {
        X86IdentityMap.cost(
            requests: try requests(sc, policy: policy, noSegments: noSegments), policy: policy,
            platform: sc.machine.platform, levels: sc.machine.paging.levels, kernel: sc.machine.kernelVersion,
            transition: Planner.controlVA)
    }

    /// One row per policy. Tables are built for real (at made-up page addresses) to answer the
    /// coverage questions exactly as the run would.
    public static func compare(_ sc: Scenario, noSegments: Bool) throws(PlanError) -> [Row] {
        var rows: [Row] = []
        for policy in IdentityMapPolicy.allCases {
            let reqs = try requests(sc, policy: policy, noSegments: noSegments)
            var next: UInt64 = 1 << 51
            let tables: X86PageTables
            do {
                tables = try X86IdentityMap.build(
                    requests: reqs, policy: policy, platform: sc.machine.platform, levels: sc.machine.paging.levels,
                    kernel: sc.machine.kernelVersion, transition: (Planner.controlVA, PhysAddr(1 << 50)),
                    allocate: {
                        next += 0x1000
                        return PhysAddr(next)
                    })
            } catch {
                throw .unsupported("page tables under \(policy.rawValue): \(error)")
            }
            let unmapped = sc.nextKernelTouches.filter {
                if case .failure = tables.translate(VirtAddr($0.raw)) { return true }
                return false
            }
            var hz: [(leaf: Leaf, hazard: AddressRange)] = []
            for h in sc.machine.hazards {
                for l in tables.leaves(overlapping: VirtAddr(h.first.raw), VirtAddr(h.last.raw)) { hz.append((l, h)) }
            }
            rows.append(Row(cost: tables.cost, unmappedTouches: unmapped, hazardLeaves: hz))
        }
        return rows
    }

    public static func compareText(_ rows: [Row], platform: Platform) -> String {
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        var out =
            "policy             " + ["pgd", "p4d", "pud", "pmd", "pte", "pages", "bytes"].map { pad($0, 9) }.joined()
            + "  transition\n"
        for r in rows {
            let c = r.cost
            out += c.policy.padding(toLength: 19, withPad: " ", startingAt: 0)
            out += [c.pgd, c.p4d, c.pud, c.pmd, c.pte, c.pages].map { pad("\($0)", 9) }.joined()
            out += pad(formatSize(c.bytes), 9) + pad("\(c.transition)", 12) + "\n"
        }
        for r in rows {
            if !r.unmappedTouches.isEmpty {
                out +=
                    "\(r.cost.policy): leaves next_kernel_touches unmapped: "
                    + r.unmappedTouches.map { hex($0.raw) }.joined(separator: ", ") + "\n"
            }
            if let first = r.hazardLeaves.first {
                let what = platform == .uv ? "halts the UV machine" : "would halt on UV"
                out +=
                    "\(r.cost.policy): \(r.hazardLeaves.count) leaves cover a hazard (\(what)): \(first.leaf) over \(first.hazard)\n"
            }
        }
        if rows.allSatisfy({ $0.unmappedTouches.isEmpty && $0.hazardLeaves.isEmpty }) {
            out += "every policy maps every next_kernel_touches address and covers no hazard\n"
        }
        return out
    }
}
