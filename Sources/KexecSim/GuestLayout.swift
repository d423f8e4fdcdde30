import Crypto
import Emulator
import Foundation
import GuestCode
import KexecModel
import Kimage
import PageTables

/// Lays a plan out in sparse guest memory: destinations (holding the first kernel's old
/// contents, or the loaded segments for a crash image), source pages, indirection pages, the
/// control page with relocate_kernel and its page list, the swap page, and every table page.
/// Keeps a snapshot of the pages that must not change.
final class GuestLayout {
    let memory = GuestMemory()
    var labels: [UInt64: String] = [:]
    /// Copies of the pages that must not change, in one buffer: (page, length, offset in `snapData`).
    private var snapIndex: [(pa: PhysAddr, length: Int, offset: Int)] = []
    private var snapData: UnsafeMutableRawPointer?
    private var snapTaken: Set<UInt64> = []
    /// Pages kept as a sha256 digest instead of a copy (preserved memory, which may be large).
    private var hashIndex: [(pa: PhysAddr, length: Int, digest: [UInt8])] = []
    /// Pages checked against bytes the plan can give again (table pages: the encoding of the
    /// plan's own table model), so the layout keeps no copy of them: (page, index in `models`).
    private var modelIndex: [(pa: PhysAddr, model: Int)] = []
    /// Each gives the 4 KiB page's expected bytes.
    private var models: [(PhysAddr) -> [UInt8]] = []
    /// Kexec HandOver's pages: who owns each (KhoLayout.swift).
    var kho: KhoGuestPages?

    deinit { snapData?.deallocate() }

    var protectedCount: Int { snapIndex.count + hashIndex.count + modelIndex.count }

    /// Marks a page that must come out of the run unchanged: copied before the run, or with
    /// `hashed` only its sha256 kept.
    func protect(_ pa: PhysAddr, length: Int = 4096, hashed: Bool = false) {
        guard snapTaken.insert(pa.raw).inserted else { return }
        if hashed {
            hashIndex.append((pa, length, []))
        } else {
            snapIndex.append((pa, length, 0))
        }
    }

    /// Marks a 4 KiB page that must come out of the run equal to `models[model](pa)`: nothing is
    /// copied (for the table pages, which a 24 TiB map has tens of thousands of).
    private func protect(_ pa: PhysAddr, model: Int) {
        guard snapTaken.insert(pa.raw).inserted else { return }
        modelIndex.append((pa, model))
    }

    /// Copies every protected page now (after the layout is written, before the run).
    private func takeSnapshots() throws {
        var total = 0
        for i in snapIndex.indices {
            snapIndex[i].offset = total
            total += snapIndex[i].length
        }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 4096)
        snapData = buf
        for e in snapIndex {
            guard let src = memory.pointer(e.pa, length: e.length) else {
                throw Failure.memory("protected page \(e.pa) is not in guest memory")
            }
            (buf + e.offset).copyMemory(from: src, byteCount: e.length)
        }
        for i in hashIndex.indices {
            let e = hashIndex[i]
            guard let src = memory.pointer(e.pa, length: e.length) else {
                throw Failure.memory("protected page \(e.pa) is not in guest memory")
            }
            hashIndex[i].digest = Array(SHA256.hash(data: UnsafeRawBufferPointer(start: src, count: e.length)))
        }
    }

    /// Protected pages whose contents differ from the snapshot, in address order.
    func changedProtectedPages() -> [PhysAddr] {
        guard let buf = snapData else { return [] }
        var out: [PhysAddr] = []
        for e in snapIndex {
            guard let now = memory.pointer(e.pa, length: e.length) else { continue }
            if memcmp(now, buf + e.offset, e.length) != 0 { out.append(e.pa) }
        }
        for e in hashIndex {
            guard let now = memory.pointer(e.pa, length: e.length) else { continue }
            if Array(SHA256.hash(data: UnsafeRawBufferPointer(start: now, count: e.length))) != e.digest {
                out.append(e.pa)
            }
        }
        for e in modelIndex {
            guard let now = memory.pointer(e.pa, length: 4096) else { continue }
            let expected = models[e.model](e.pa)
            if expected.withUnsafeBytes({ memcmp(now, $0.baseAddress!, 4096) }) != 0 { out.append(e.pa) }
        }
        return out.sorted()
    }

    enum Failure: Error, CustomStringConvertible {
        case memory(String)
        var description: String {
            switch self {
            case .memory(let s): return s
            }
        }
    }

    /// The destinations by segment, for `label`: kept as ranges, not as a label per page.
    private var destinationRanges: [(range: AddressRange, name: String)] = []

    func label(_ page: PhysAddr) -> String {
        let p = PhysAddr(page.raw & ~0xfff)
        if let l = labels[p.raw] { return l }
        if let d = destinationRanges.first(where: { $0.range.contains(p) }) { return "destination of \(d.name)" }
        return "memory"
    }

    /// Lays `plan` out. Both architectures: destinations, source and indirection pages, the
    /// control page with the relocation routine, and the table pages of the architecture (x86_64
    /// identity map and the first kernel's alias tables; arm64 linear map, its copy and the idmap,
    /// in granule-sized pages, and the zero page). Then the injections, then the snapshot of the
    /// pages that must not change.
    static func build(_ plan: Plan) throws -> GuestLayout {
        let l = GuestLayout()
        let k = plan.kimage
        // Guest memory, labels and snapshots go by 4 KiB pages (the engine's page); the kimage's
        // own pages are PAGE_SIZE (`k.pageSize`: the granule on arm64), each several of those.
        let page: UInt64 = 0x1000
        let kpage = k.pageSize
        // Destinations, merged.
        var dest = RangeSet()
        for s in plan.segments { if let r = s.range { dest.insert(r) } }
        for r in dest.ranges {
            try l.memory.add(start: r.first, size: r.size, label: "destination")
        }
        // Every other page the kimage or the tables use, coalesced into runs.
        var other: [UInt64: String] = [:]
        func kimagePage(_ pa: PhysAddr, _ name: String) {
            for sub in stride(from: pa.raw, to: pa.raw + kpage, by: Int(page)) { other[sub] = name }
        }
        kimagePage(k.controlPage, "control page")
        if let s = k.swapPage { kimagePage(s, "swap page") }
        for p in k.indirectionPages { kimagePage(p.pa, "indirection page") }
        for s in k.sourcePages where s.source != s.destination { kimagePage(s.source, "source page") }
        // Built once: labelled here, protected after the contents are written.
        let tables = tablePages(plan)
        for (pa, name) in tables { other[pa.raw] = name }
        for (p, name) in other { l.labels[p] = name }
        let sorted = other.keys.filter { !dest.contains(PhysAddr($0)) }.sorted()
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + page { j += 1 }
            try l.memory.add(
                start: PhysAddr(sorted[i]), size: ByteCount(UInt64(j - i + 1) * page), label: "kimage pages")
            i = j + 1
        }
        // Pages a first-kernel write will hit during the run: backed (holding the first kernel's
        // contents) and protected, unless they are a destination.
        var firstKernelPages: [PhysAddr] = []
        for case .firstKernelWrite(let a) in plan.scenario.kexec?.inject ?? [] {
            let p = a.alignedDown(kexecPageSize)
            guard !dest.contains(p) else { continue }
            if !l.memory.isBacked(p) {
                try l.memory.add(start: p, size: kexecPageSize, label: "first-kernel memory")
                if let ptr = l.memory.pointer(p, length: Int(page)) {
                    memset(ptr, Int32(Payload.oldContentsByte), Int(page))
                }
            }
            l.labels[p.raw] = l.labels[p.raw] ?? "first-kernel memory"
            firstKernelPages.append(p)
        }
        // A page of a destination that has no label of its own is "destination of NAME" (the
        // first segment over it): one range per segment, nothing per page.
        l.destinationRanges = plan.segments.compactMap { s in s.range.map { ($0, s.name) } }

        // Contents.
        let mem = l.memory
        func fail(_ what: String) -> Failure { .memory("could not write \(what) into guest memory") }
        if k.type == .crash {
            // Loaded straight into the crashkernel region at load time.
            for s in plan.segments {
                guard l.writeContents(of: s) else { throw fail("segment \(s.name)") }
            }
        } else {
            for r in dest.ranges {
                guard let p = mem.pointer(r.first, length: Int(r.size.raw)) else { throw fail("destinations") }
                memset(p, Int32(Payload.oldContentsByte), Int(r.size.raw))
            }
            for sp in k.sourcePages {
                let s = plan.segments[sp.segment]
                guard let dst = mem.pointer(sp.source, length: Int(kpage)) else {
                    throw fail("source page \(sp.source)")
                }
                // The payload's bytes, then zeros to the end of the page (one pass over the page).
                let off = sp.pageIndex * Int(kpage)
                let n = off < s.contentCount ? min(Int(kpage), s.contentCount - off) : 0
                if n > 0 { s.copyContents(from: off, into: UnsafeMutableRawBufferPointer(start: dst, count: n)) }
                if n < Int(kpage) { memset(dst + n, 0, Int(kpage) - n) }
            }
            for ip in k.indirectionPages {
                for (i, e) in ip.entries.enumerated() where e != 0 {
                    guard mem.write64(PhysAddr(ip.pa.raw + UInt64(i) * 8), e) else { throw fail("indirection page") }
                }
            }
        }
        try l.layKho(plan)
        try l.applyInjections(plan)
        // The control page's code (and x86's page list after it); the tables.
        let protectedControl: Int
        switch plan.arch {
        case .x86(let x):
            let code = X86_64GuestCode.relocateKernel.bytes
            guard mem.write(k.controlPage, code) else { throw fail("relocate_kernel") }
            let list = [k.controlPage.raw, x.controlVA.raw, x.tables.root.raw, k.swapPage?.raw ?? 0]
            for (i, v) in list.enumerated() {
                guard mem.write64(PhysAddr(k.controlPage.raw + X86_64GuestCode.pageListOffset + UInt64(i) * 8), v)
                else { throw fail("page list") }
            }
            // Tables are encoded straight into guest memory (entries are little endian, as on the host).
            for t in [x.tables, x.firstKernelTables] {
                for (pa, entries) in t.pages {
                    guard entries.count == 512, let dst = mem.pointer(pa, length: 4096) else {
                        throw fail("table page \(pa)")
                    }
                    entries.withUnsafeBytes { src in
                        for i in 0..<512 {
                            dst.storeBytes(
                                of: src.load(fromByteOffset: i * 8, as: UInt64.self).littleEndian, toByteOffset: i * 8,
                                as: UInt64.self)
                        }
                    }
                }
            }
            // nx-start: the identity map's leaf over the start address gets the NX bit (after the
            // tables are in memory, before they are snapshotted as pages that must not change).
            if plan.scenario.kexec?.inject.contains(.nxStart) == true {
                try l.setNX(
                    over: plan.kimage.startAddress, root: x.tables.root, levels: plan.scenario.machine.paging.levels)
            }
            // The control page's stack (top of the page) is scratch: keep code + page list only.
            protectedControl = Int(X86_64GuestCode.pageListOffset) + 32
        case .arm64(let a):
            guard mem.write(k.controlPage, Arm64GuestCode.relocateKernel.bytes) else { throw fail("relocate_kernel") }
            for t in a.tables {
                for pa in t.tables.pages.keys {
                    guard mem.write(pa, t.tables.encodedPage(pa)) else { throw fail("table page \(pa)") }
                }
            }
            protectedControl = Arm64GuestCode.relocateKernel.bytes.count
        }
        // Pages that must come out unchanged: tables, indirection pages, the relocation code; for a
        // crash image also every mapped page outside the crashkernel region (the first kernel's).
        l.protect(k.controlPage, length: protectedControl)
        // A transition-table page is an ordinary page (get_zeroed_page) that may be a destination:
        // the copy may overwrite it once the identity map is live. Table pages are checked against
        // the plan's model, except when an injection edited one after encoding (nx-start).
        let destinations = RangeSet(plan.segments.compactMap(\.range))
        let byModel = plan.scenario.kexec?.inject.contains(.nxStart) != true
        let modelOf = byModel ? l.installTableModels(plan) : [:]
        for (pa, _) in tables where !destinations.contains(pa) {
            if let m = modelOf[pa.raw] { l.protect(pa, model: m) } else { l.protect(pa) }
        }
        for p in k.indirectionPages { l.protect(p.pa, length: Int(kpage)) }
        for p in firstKernelPages { l.protect(p) }
        if k.type == .crash {
            for b in mem.blocks {
                var p = b.range.first.raw
                while p <= b.range.last.raw {
                    if !plan.crashRegions.contains(where: { $0.contains(PhysAddr(p)) }) {
                        l.protect(PhysAddr(p))
                    }
                    p += page
                }
            }
        }
        l.protectKho(plan)
        try l.takeSnapshots()
        return l
    }

    /// Every 4 KiB page of the architecture's tables, with its label (arm64 16K/64K table pages
    /// span several), and arm64's zero page.
    static func tablePages(_ plan: Plan) -> [(PhysAddr, String)] {
        switch plan.arch {
        case .x86(let x):
            // One label string per (table set, level), shared by all its pages: a 24 TiB map has
            // tens of thousands of pages, and a label longer than 15 bytes is a heap string each.
            var names: [String: String] = [:]
            func name(_ prefix: String, _ level: some CustomStringConvertible) -> String {
                let key = "\(prefix) \(level) page"
                if let n = names[key] { return n }
                names[key] = key
                return key
            }
            return x.tables.levelOf.map { ($0.key, name("identity-map", $0.value)) }
                + x.firstKernelTables.levelOf.map { ($0.key, name("first-kernel", $0.value)) }
        case .arm64(let a):
            var out: [(PhysAddr, String)] = [(a.zeroPage, "zero page")]
            for t in a.tables {
                for (pa, level) in t.tables.levelOf {
                    for sub in stride(from: pa.raw, to: pa.raw + t.tables.granule.size, by: 0x1000) {
                        out.append((PhysAddr(sub), "\(t.name) L\(level) page"))
                    }
                }
            }
            return out
        }
    }

    /// Writes a segment's contents at its destination, 1 MiB at a time (blocks may be adjacent).
    private func writeContents(of s: Segment) -> Bool {
        var off = 0
        while off < s.contentCount {
            let n = min(1 << 20, s.contentCount - off)
            let at = PhysAddr(s.mem.raw + UInt64(off))
            if let p = memory.pointer(at, length: n) {
                s.copyContents(from: off, into: UnsafeMutableRawBufferPointer(start: p, count: n))
            } else {
                var chunk = [UInt8](repeating: 0, count: n)
                chunk.withUnsafeMutableBytes { s.copyContents(from: off, into: $0) }
                guard memory.write(at, chunk) else { return false }
            }
            off += n
        }
        return true
    }

    /// The table models of the plan's architecture, as `models`; returns each table page's model.
    private func installTableModels(_ plan: Plan) -> [UInt64: Int] {
        var out: [UInt64: Int] = [:]
        switch plan.arch {
        case .x86(let x):
            for t in [x.tables, x.firstKernelTables] {
                let i = models.count
                models.append { t.encodedPage($0) }
                for pa in t.pages.keys { out[pa.raw] = i }
            }
        case .arm64(let a):
            for t in a.tables {
                let i = models.count
                let granule = t.tables.granule.size
                models.append { sub in
                    let base = sub.raw & ~(granule - 1)
                    let off = Int(sub.raw - base)
                    return Array(t.tables.encodedPage(PhysAddr(base))[off..<(off + 4096)])
                }
                for pa in t.tables.pages.keys {
                    for sub in stride(from: pa.raw, to: pa.raw + granule, by: 0x1000) {
                        out[sub] = i
                    }
                }
            }
        }
        return out
    }

    func firstDifference(page: PhysAddr) -> UInt64? {
        if let e = modelIndex.first(where: { $0.pa == page }), let now = memory.pointer(page, length: 4096) {
            let expected = models[e.model](page)
            return (0..<4096).first { expected[$0] != now.load(fromByteOffset: $0, as: UInt8.self) }
                .map { page.raw + UInt64($0) }
        }
        guard let buf = snapData, let e = snapIndex.first(where: { $0.pa == page }),
            let now = memory.pointer(page, length: e.length)
        else { return nil }
        let a = UnsafeRawBufferPointer(start: buf + e.offset, count: e.length)
        let b = UnsafeRawBufferPointer(start: now, count: e.length)
        return (0..<e.length).first { a[$0] != b[$0] }.map { page.raw + UInt64($0) }
    }
}
