import KexecModel
import Kimage

/// The Kexec HandOver part of `plan` (text and JSON): the scratch areas, the preserved ranges and
/// their owners, KHO's metadata pages and how the handover reaches the next kernel.
enum KhoReport {
    static func handover(_ p: Plan) -> String {
        guard let k = p.kho, k.handsOver else { return "not handed over (kexec_load)" }
        return p.arm64 == nil
            ? "setup_data SETUP_KEXEC_KHO in boot_params" : "/chosen linux,kho-fdt and linux,kho-scratch"
    }

    static func text(_ p: Plan) -> String {
        guard let k = p.kho else { return "" }
        var out = "kho: \(k.rules.abi.compatible), \(handover(p))\n"
        out += "  scratch    \(KhoScratchLayout.describe(k.scratch))\n"
        for pr in k.preserved {
            out += "  preserved  \"\(pr.owner)\" \(pr.range) (\(formatSize(pr.range.size.raw)))\n"
        }
        let pages = Set(k.objects.map { $0.pa.raw & ~0xfff }).count
        out += "  metadata   FDT \(k.fdt), map root \(k.mapRoot), \(k.objects.count) objects in \(pages) pages"
        out += k.kfenceObjects > 0 ? " (\(k.kfenceObjects) served by KFENCE)\n" : "\n"
        return out
    }

    static func dict(_ p: Plan) -> [String: Any]? {
        guard let k = p.kho else { return nil }
        return [
            "abi": k.rules.abi.compatible,
            "handover": handover(p),
            "scratch": k.scratch.map { ["kind": $0.kind.description, "addr": hex($0.addr.raw), "size": $0.size.raw] },
            "preserved": k.preserved.map {
                ["owner": $0.owner, "start": hex($0.range.first.raw), "size": $0.range.size.raw] as [String: Any]
            },
            "fdt": hex(k.fdt.raw),
            "map_root": hex(k.mapRoot.raw),
            "metadata": k.objects.map {
                ["addr": hex($0.pa.raw), "bytes": $0.bytes.count, "what": $0.what] as [String: Any]
            },
            "kfence_objects": k.kfenceObjects,
        ]
    }
}
