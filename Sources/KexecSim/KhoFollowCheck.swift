import Foundation
import KexecModel

/// Kexec HandOver with `--follow`: the preserved pages (hashed before the run) and KHO's metadata
/// pages (copied) compared once more after the next kernel ran, at the milestone it stopped at.
/// Preserved memory must be byte-identical in the next kernel (issue 17). A next kernel that knows
/// KHO keeps its early allocations in scratch (kho_populate → memblock_set_kho_scratch_only,
/// kernel/kexec_handover.c, v6.16+); one that does not, such as Debian's 6.1, allocates with
/// memblock top-down from the end of RAM like on any boot (mm/memblock.c, 6.1.192: `.bottom_up =
/// false`), whatever lies there. Only KHO's pages are compared here: the rest of what the
/// relocation checked (the first kernel's pages, the old list) is the next kernel's to reuse.
enum KhoFollowCheck {
    static func check(_ v: Verdict, plan: Plan, layout: GuestLayout) -> Verdict {
        guard plan.kho != nil, let g = layout.kho else { return v }
        let khoPages = g.pages
        let mine = Set(khoPages.map(\.raw))
        let changed = layout.changedProtectedPages().filter { mine.contains($0.raw) }
        let preservedPages = khoPages.filter { g.metadata[$0.raw] == nil }.count
        let metadataPages = khoPages.count - preservedPages
        // The KHO FDT is listed among the preserved ranges, but its page is metadata.
        let ranges = plan.kho?.preserved.filter { g.metadata[$0.range.first.raw & ~0xfff] == nil }.count ?? 0
        let stop = v.followedTo?.rawValue ?? lastMilestone(v) ?? "its first instruction"
        var out = v
        guard let page = changed.first else {
            out.evidence.append(
                Evidence(
                    .khoAfterFollow,
                    "preserved pages intact after next kernel: \(preservedPages) pages "
                        + "(\(ranges) ranges) and \(metadataPages) KHO metadata pages, "
                        + "compared when it stopped (at \(stop))"))
            return out
        }
        let changedPreserved = changed.filter { g.metadata[$0.raw] == nil }.count
        let region = plan.scenario.machine.memory.describe(page)
        let first = layout.firstDifference(page: page) ?? g.firstDifference(page, memory: layout.memory)
        let ev =
            [
                Evidence(.phase, "next kernel (run to \(stop))"),
                Evidence(.page, hex(page.raw)), Evidence(.what, layout.label(page)), Evidence(.region, region),
                Evidence(.firstDifferingByte, first.map { hex($0) } ?? "?"),
            ] + g.evidence(page)
            + [
                Evidence(
                    .khoAfterFollow,
                    "\(changed.count) of \(khoPages.count) KHO pages changed after next kernel "
                        + "(\(changedPreserved) of \(preservedPages) preserved pages, "
                        + "\(changed.count - changedPreserved) of \(metadataPages) metadata pages): "
                        + changed.prefix(8).map { hex($0.raw) }.joined(separator: ", ")
                        + (changed.count > 8 ? ", …" : ""))
            ]
        // A next kernel that died is reported as it died, with the damage in its evidence; one that
        // ran to its goal did so on preserved memory it destroyed: stray-write.
        guard v.kind == .landed || v.kind == .memoryMismatch else {
            out.evidence += ev
            return out
        }
        out.kind = .strayWrite
        out.summary =
            "preserved memory changed while the next kernel ran (to its \(stop)): page \(page) "
            + "(\(layout.label(page))) in \(region)"
        out.evidence = ev + v.evidence
        out.address = page.raw
        return out
    }

    /// The last of the `milestones` evidence (a run that stopped before its banner).
    static func lastMilestone(_ v: Verdict) -> String? {
        v.evidenceByName["milestones"]?.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
