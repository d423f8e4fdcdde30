/// `machine.kho` (Kexec HandOver, v6.16+) and `machine.numa_nodes`:
///
/// ```yaml
/// numa_nodes: [0x0-0xbfffffff, 0x100000000-0x13fffffff]     # node N is the Nth range
/// kho:
///   param: "kho_scratch=16M,64M,32M"      # or scratch: [ranges], in kho_scratch array order
///   preserved:
///     - { range: 0x120000000+8MiB, owner: "memfd session 1" }
///   kfence_pool: 0x...+2MiB               # optional
///   debug_checks: true                     # CONFIG_KEXEC_HANDOVER_DEBUG (default true)
/// ```
///
/// Contract: a returned KhoConfig has page-aligned, non-overlapping preserved ranges in usable
/// RAM, scratch areas in usable RAM (given, or reservable by kho_reserve_scratch on this machine),
/// and the machine's kernel is v6.16 or newer; anything else is an InputError naming the field.
/// Without `scratch` and `param`, scratch areas an imported boot log printed are used, else the
/// default `kho_scratch=200%`.
import Yams

private let khoKeys = ["scratch", "param", "preserved", "kfence_pool", "debug_checks"]

extension Walker {

    /// `machine.numa_nodes`: non-overlapping ranges, node N the Nth.
    func numaNodes(_ node: Node, _ field: String) throws(InputError) -> [AddressRange] {
        let nodes = try ranges(node, field)
        guard !nodes.isEmpty else { throw fail(node, field, "give at least one node's range") }
        for i in nodes.indices {
            for j in nodes.indices where j > i && nodes[i].overlaps(nodes[j]) {
                throw fail(node, "\(field)[\(j)]", "node \(j) \(nodes[j]) overlaps node \(i) \(nodes[i])")
            }
        }
        return nodes
    }

    /// `machine.kho` for `machine` (its kernel, memory and reservations already decoded).
    func kho(_ node: Node, key: Node?, path: String, machine: Machine, imported: ImportedKho?) throws(InputError)
        -> KhoConfig
    {
        let v = machine.kernelVersion
        guard v >= KhoConfig.firstVersion else {
            throw fail(
                key ?? node, path,
                "Kexec HandOver (KHO) is in mainline from v\(KhoConfig.firstVersion); this machine's kernel is \(v) "
                    + "(machine.kernel)")
        }
        let m = try mapping(node, path, "a mapping { scratch | param, preserved, kfence_pool, debug_checks }")
        let f = try Fields(node, m, path: path, allowed: khoKeys, file: file)
        var kho = KhoConfig(source: SourceLocation(file: file, line: node.mark?.line ?? 0, field: path))
        let usable = machine.memory.usable
        switch (f.value("scratch"), f.value("param")) {
        case (.some, .some):
            throw fail(node, path, "give the scratch areas (scratch) or kho_scratch= (param), not both")
        case (let s?, nil):
            let areas = try ranges(s, f.field("scratch"))
            guard !areas.isEmpty else { throw fail(s, f.field("scratch"), "give at least one scratch area") }
            for (i, r) in areas.enumerated() {
                guard usable.covers(r) else {
                    throw fail(s, "\(f.field("scratch"))[\(i)]", "scratch area \(r) is not inside usable RAM")
                }
            }
            kho.scratch = .given(areas)
        case (nil, let p?):
            let text = try self.text(p, f.field("param"), allowEmpty: false)
            let prefix = "kho_scratch="
            guard text.hasPrefix(prefix) else {
                throw fail(p, f.field("param"), "expected \"kho_scratch=N%\" or \"kho_scratch=lowmem,global,pernode\"")
            }
            switch KhoScratchParameter.parse(String(text.dropFirst(prefix.count))) {
            case .success(let param): kho.scratch = .parameter(param)
            case .failure(let e): throw fail(p, f.field("param"), e.message)
            }
        case (nil, nil):
            if let imported, !imported.scratch.isEmpty {
                kho.scratch = .given(imported.scratch)
            } else if let param = imported?.parameter {
                kho.scratch = .parameter(param)
            }
        }
        if let n = f.value("preserved") {
            kho.preserved = try preserved(n, f.field("preserved"), usable: usable)
        }
        if let n = f.value("kfence_pool") {
            let field = f.field("kfence_pool")
            let r = try range(n, field)
            guard r.first.isAligned(kexecPageSize), r.size.raw % kexecPageSize.raw == 0, r.size.raw >= 4 * 4096 else {
                throw fail(n, field, "the KFENCE pool is whole pages, at least 4 (one object and its guards): \(r)")
            }
            guard usable.covers(r) else { throw fail(n, field, "the KFENCE pool \(r) is not inside usable RAM") }
            kho.kfencePool = r
        }
        if let n = f.value("debug_checks") { kho.debugChecks = try bool(n, f.field("debug_checks")) }
        var probe = machine
        probe.kho = kho
        if case .failure(let e) = KhoScratchLayout.areas(for: probe) {
            throw fail(f.value("param") ?? node, f.has("param") ? f.field("param") : path, e.message)
        }
        return kho
    }

    /// `kexec:` as a list: a chain of Kexec HandOver loads (the machine must have `kho`), at least one.
    func kexecChain(_ node: Node, path: String, machine: Machine) throws(InputError) -> [KexecRequest] {
        let items = try list(node, path, "a list of loads")
        guard machine.kho != nil else {
            throw fail(
                node, path,
                "expected a mapping, found a list (a list of loads is a Kexec HandOver chain, "
                    + "which needs machine.kho)")
        }
        guard !items.isEmpty else { throw fail(node, path, "the chain has no load") }
        var out: [KexecRequest] = []
        for (i, e) in items.enumerated() {
            let k = try kexec(e, path: "\(path)[\(i)]")
            guard i + 1 == items.count || (k.syscall == .kexecFileLoad && k.type == .normal) else {
                throw fail(
                    e, "\(path)[\(i)]",
                    "a chain goes on only through a normal kexec_file_load (kho_fill_kimage hands the scratch over; "
                        + "kexec_load and crash loads end it)")
            }
            out.append(k)
        }
        return out
    }

    /// `preserved: [{ range, owner }]`: page aligned, in usable RAM, not overlapping each other.
    func preserved(_ node: Node, _ field: String, usable: RangeSet) throws(InputError) -> [KhoPreservation] {
        var out: [KhoPreservation] = []
        for (i, e) in try list(node, field, "a list of { range, owner }").enumerated() {
            let path = "\(field)[\(i)]"
            let m = try mapping(e, path, "a mapping { range, owner }")
            let f = try Fields(e, m, path: path, allowed: ["range", "owner"], file: file)
            let rn = try required(f, "range")
            let r = try range(rn, f.field("range"))
            guard r.first.isAligned(kexecPageSize), r.size.raw % kexecPageSize.raw == 0 else {
                throw fail(rn, f.field("range"), "preserved memory is whole 4 KiB pages: \(r) is not page aligned")
            }
            guard usable.covers(r) else {
                throw fail(rn, f.field("range"), "preserved memory \(r) is not inside usable RAM")
            }
            let owner = try text(required(f, "owner"), f.field("owner"), allowEmpty: false)
            if let other = out.first(where: { $0.range.overlaps(r) }) {
                throw fail(rn, f.field("range"), "\(r) overlaps \(other.range) preserved by \"\(other.owner)\"")
            }
            let total = out.reduce(r.size.raw) { $0 &+ $1.range.size.raw }
            guard total <= KhoConfig.maxPreservedBytes, total >= r.size.raw else {
                throw fail(
                    rn, f.field("range"),
                    "kexec-sim hashes every preserved page: at most \(formatSize(KhoConfig.maxPreservedBytes)) in all")
            }
            out.append(
                KhoPreservation(
                    range: r, owner: owner, source: SourceLocation(file: file, line: rn.mark?.line ?? 0, field: path)))
        }
        return out
    }
}
