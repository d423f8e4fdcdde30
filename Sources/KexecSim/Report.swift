import Foundation
import KexecModel
import Kimage
import PageTables

/// Text and JSON renderings of results, plans and table costs.
public enum Report {
    public static func json(_ obj: Any) -> String {
        guard let d = try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys]),
            let s = String(data: d, encoding: .utf8)
        else { return "{}" }
        return s
    }

    /// What `run --json` prints: the run's `RunReport`, pretty-printed with sorted keys.
    public static func runJSON(_ r: RunResult) -> String { RunReport(r).prettyJSON() }

    public static func runText(_ r: RunResult) -> String {
        var out = "\(r.scenario.name)  (\(r.scenario.file))\n"
        out += "engine: \(r.engine)   policy: \(r.policy)\n"
        out += "verdict: \(r.verdict.kind.rawValue) — \(r.verdict.summary)\n"
        // The followed kernel's console is a block of its own, after the table.
        let table = r.verdict.evidence.filter { $0.key != .known(.console) }
        let w = table.map(\.key.name.count).max() ?? 0
        for e in table {
            let (k, v) = (e.key.name, e.value)
            out += "  \(k.padding(toLength: w, withPad: " ", startingAt: 0))  \(v)\n"
        }
        if let c = r.verdict.evidence.first(where: { $0.key == .known(.console) }) {
            out += "console (\(c.value.split(separator: "\n", omittingEmptySubsequences: false).count) lines):\n"
            for line in c.value.split(separator: "\n", omittingEmptySubsequences: false) { out += "  | \(line)\n" }
        }
        for w in r.verdict.warnings { out += "warning: \(w)\n" }
        if let e = r.expectation {
            var exp = e.verdict.rawValue
            if let a = e.address { exp += " at \(hex(a))" }
            if let n = e.errno { exp += " \(n)" }
            out += "expected: \(exp) — \(r.matches == true ? "matches" : "DIFFERS")\n"
        }
        let s = r.stats
        if s.payloadBytes > 0 {
            out += String(
                format:
                    "time: plan %.3fs, setup %.3fs, relocation %.3fs (%.1f MB/s of payload), purgatory %.3fs, verify %.3fs, total %.3fs\n",
                s.planSeconds, s.setupSeconds, s.relocationSeconds, s.copyMBps, s.purgatorySeconds, s.verifySeconds,
                s.totalSeconds)
        }
        if s.followSeconds > 0 { out += String(format: "follow: %.3fs running the next kernel\n", s.followSeconds) }
        return out
    }

    public static func planDict(_ p: Plan, firstEntries: Int = 16) -> [String: Any] {
        let k = p.kimage
        let entries = k.listEntries
        var d: [String: Any] = [
            "scenario": p.scenario.name,
            "arch": p.scenario.machine.arch.rawValue,
            "policy": p.policyLabel,
            "type": k.type.rawValue,
            "loader": p.scenario.kexec?.loader.rawValue ?? NSNull(),
            "segments": p.segments.map {
                [
                    "name": $0.name, "mem": hex($0.mem.raw), "memsz": $0.memsz.raw, "bufsz": $0.bufsz.raw,
                    "purgatory": $0.isPurgatory,
                ] as [String: Any]
            },
            "entry": hex(p.kernelEntry.raw),
            // x86_64 rsi (boot_params) or arm64 x0 (DTB) at the entry.
            "entry_argument": hex(p.entryArgument.raw),
            "start_address": hex(k.startAddress.raw),
            "control_page": hex(k.controlPage.raw),
            "swap_page": k.swapPage.map { hex($0.raw) as Any } ?? NSNull(),
            "table_pages": k.extraControlPages.count,
            "indirection_pages": k.indirectionPages.map { hex($0.pa.raw) },
            "source_pages": k.sourcePages.count,
            "sources_reused_in_place": k.sourcePages.filter { $0.source == $0.destination }.count,
            "parked_pages": k.parkedPages,
            "head": hex(k.head),
            "list_entries": entries.count,
            "first_entries": entries.prefix(firstEntries).map { describeEntry($0) },
            "sha256": p.digest.map { String(format: "%02x", $0) }.joined(),
        ]
        if let kho = KhoReport.dict(p) { d["kho"] = kho }
        return d
    }

    public static func describeEntry(_ e: UInt64) -> String {
        let a = hex(e & ~0xfff)
        if e & Ind.done != 0 { return "IND_DONE" }
        if e & Ind.indirection != 0 { return "IND_INDIRECTION \(a)" }
        if e & Ind.destination != 0 { return "IND_DESTINATION \(a)" }
        if e & Ind.source != 0 { return "IND_SOURCE \(a)" }
        return "0 (skipped)"
    }

    public static func planText(_ p: Plan) -> String {
        let k = p.kimage
        var out = "\(p.scenario.name): \(p.scenario.kexec?.syscall.rawValue ?? "") \(k.type.rawValue) image\n"
        if let loader = p.imageInfo.first(where: { $0.0 == "loader" })?.1 {
            out += "loader: \(loader)\n"
        }
        if let line = p.imageInfo.first(where: { $0.0 == "kexec_tools_command_line" })?.1 {
            out += "command line: \(line)\n"
        }
        let byTool = p.scenario.kexec?.loader == .kexecTools
        out += byTool ? "segments (by address, as kexec-tools passes them to kexec_load):\n" : "segments:\n"
        for s in p.segments {
            out +=
                "  \(s.name.padding(toLength: 12, withPad: " ", startingAt: 0)) mem \(hex16(s.mem.raw))  memsz \(formatSize(s.memsz.raw).padding(toLength: 8, withPad: " ", startingAt: 0)) bufsz \(s.bufsz.raw)\n"
        }
        out +=
            "entry \(hex(p.kernelEntry.raw)), \(p.purgatoryEntry == nil ? "start (no purgatory)" : "purgatory start") \(hex(k.startAddress.raw)), \(p.arm64 == nil ? "boot_params" : "dtb (x0)") \(hex(p.entryArgument.raw))\n"
        out +=
            "control page \(hex(k.controlPage.raw)), swap page \(k.swapPage.map { hex($0.raw) } ?? "none"), \(k.extraControlPages.count) page-table pages\n"
        let entries = k.listEntries
        out +=
            "source pages \(k.sourcePages.count) (\(k.sourcePages.filter { $0.source == $0.destination }.count) in place), parked \(k.parkedPages), indirection pages \(k.indirectionPages.count), list entries \(entries.count)\n"
        out += "head \(describeEntry(k.head))\nfirst entries:\n"
        for e in entries.prefix(12) { out += "  \(describeEntry(e))\n" }
        return out + KhoReport.text(p)
    }

    public static func costDict(_ c: TableCost) -> [String: Any] {
        [
            "policy": c.policy, "pgd": c.pgd, "p4d": c.p4d, "pud": c.pud, "pmd": c.pmd, "pte": c.pte, "pages": c.pages,
            "bytes": c.bytes, "transition": c.transition,
        ]
    }

    public static func costText(_ c: TableCost) -> String {
        "policy \(c.policy): pgd \(c.pgd), p4d \(c.p4d), pud \(c.pud), pmd \(c.pmd), pte \(c.pte) = \(c.pages) pages, \(formatSize(c.bytes)) (+\(c.transition) transition pages)"
    }
}
