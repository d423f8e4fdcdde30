import Emulator
import Foundation
import KexecModel
import Kimage

/// Kexec HandOver's pages in the guest, at their first-kernel addresses: the preserved memory
/// (each page holds its owner's data: a pattern of the owner's name and the page's address) and
/// KHO's metadata (the FDT page, the map's chunks, bitmaps or tree nodes). Every one must come out
/// of the run unchanged: preserved pages are hashed (sha256) before the run and compared after,
/// metadata pages copied.
final class KhoGuestPages {
    let plan: KhoPlan
    /// Metadata page → the objects in it (slab pages hold several bitmaps).
    let metadata: [UInt64: [KhoMemoryMap.Object]]

    init(_ plan: KhoPlan) {
        self.plan = plan
        var m: [UInt64: [KhoMemoryMap.Object]] = [:]
        for o in plan.objects { m[o.pa.raw & ~0xfff, default: []].append(o) }
        metadata = m
    }

    /// What a preserved page holds before the run.
    static func preservedContents(owner: String, page: PhysAddr) -> [UInt8] {
        Payload.synthetic(name: "kho \(owner) \(hex(page.raw))", size: 0x1000)
    }

    /// A page's contents before the run: the metadata objects in it, else its owner's data.
    func expected(_ page: PhysAddr) -> [UInt8]? {
        if let objects = metadata[page.raw] {
            var bytes = [UInt8](repeating: 0, count: 0x1000)
            for o in objects {
                let off = Int(o.pa.raw & 0xfff)
                bytes.replaceSubrange(off..<min(0x1000, off + o.bytes.count), with: o.bytes.prefix(0x1000 - off))
            }
            return bytes
        }
        guard let p = plan.preservation(containing: page) else { return nil }
        return Self.preservedContents(owner: p.owner, page: page)
    }

    /// Every page KHO needs intact, in address order.
    var pages: [PhysAddr] {
        var set = Set(metadata.keys)
        for p in plan.preserved {
            for a in stride(from: p.range.first.raw, through: p.range.last.raw, by: 0x1000) { set.insert(a) }
        }
        return set.sorted().map(PhysAddr.init)
    }

    /// The label a stray-write names the page by.
    func label(_ page: PhysAddr) -> String? {
        if let objects = metadata[page.raw] {
            return "KHO metadata: " + objects.map(\.what).joined(separator: ", ")
        }
        return plan.preservation(containing: page).map { "KHO preserved memory of \"\($0.owner)\"" }
    }

    /// Evidence naming what a changed page held: the preserved range and its owner, or for a
    /// metadata page the preserved ranges it describes (lost to the next kernel with it).
    func evidence(_ page: PhysAddr) -> [Evidence] {
        if let objects = metadata[page.raw] {
            var lost: [KhoPreservation] = []
            for o in objects {
                let hit = plan.preserved.filter { p in KhoMemoryMap.blocks(of: p.range).contains { o.describes($0) } }
                for p in hit where !lost.contains(p) { lost.append(p) }
            }
            return [
                Evidence(.preservedRange, lost.map { "\($0.range)" }.joined(separator: ", ")),
                Evidence(
                    .owner,
                    "KHO's preserved-memory map (" + objects.map(\.what).joined(separator: ", ") + "), describing "
                        + lost.map { "\"\($0.owner)\"" }.joined(separator: ", ")),
            ]
        }
        guard let p = plan.preservation(containing: page) else { return [] }
        return [Evidence(.preservedRange, "\(p.range)"), Evidence(.owner, p.owner)]
    }

    /// The first byte of `page` that differs from what it held before the run.
    func firstDifference(_ page: PhysAddr, memory: GuestMemory) -> UInt64? {
        guard let want = expected(page), let now = memory.read(page, count: 0x1000) else { return nil }
        return (0..<0x1000).first { want[$0] != now[$0] }.map { page.raw + UInt64($0) }
    }
}

extension GuestLayout {
    /// Backs and writes KHO's pages (after the destinations got the first kernel's old contents: a
    /// preserved page or metadata inside a destination holds its own data until the copy).
    func layKho(_ plan: Plan) throws {
        guard let k = plan.kho else { return }
        let g = KhoGuestPages(k)
        kho = g
        let pages = g.pages
        var i = 0
        while i < pages.count {
            guard !memory.isBacked(pages[i]) else {
                i += 1
                continue
            }
            var j = i
            while j + 1 < pages.count && pages[j + 1].raw == pages[j].raw + 0x1000 && !memory.isBacked(pages[j + 1]) {
                j += 1
            }
            try memory.add(start: pages[i], size: ByteCount(UInt64(j - i + 1) * 0x1000), label: "KHO memory")
            i = j + 1
        }
        for p in pages {
            guard let bytes = g.expected(p), memory.write(p, bytes) else {
                throw Failure.memory("could not write KHO page \(p) into guest memory")
            }
            labels[p.raw] = g.label(p)
        }
    }

    /// Preserved pages by digest, metadata pages by copy.
    func protectKho(_ plan: Plan) {
        guard let g = kho else { return }
        for p in g.pages { protect(p, hashed: g.metadata[p.raw] == nil) }
    }
}
