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
    private var labels: [UInt64: String] = [:]
    /// Copies of the pages that must not change, in one buffer: (page, length, offset in `snapData`).
    private var snapIndex: [(pa: PhysAddr, length: Int, offset: Int)] = []
    private var snapData: UnsafeMutableRawPointer?
    private var snapTaken: Set<UInt64> = []

    deinit { snapData?.deallocate() }

    var protectedCount: Int { snapIndex.count }

    private func protect(_ pa: PhysAddr, length: Int = 4096) {
        guard snapTaken.insert(pa.raw).inserted else { return }
        snapIndex.append((pa, length, 0))
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
    }

    /// Protected pages whose contents differ from the snapshot, in address order.
    func changedProtectedPages() -> [PhysAddr] {
        guard let buf = snapData else { return [] }
        var out: [PhysAddr] = []
        for e in snapIndex {
            guard let now = memory.pointer(e.pa, length: e.length) else { continue }
            if memcmp(now, buf + e.offset, e.length) != 0 { out.append(e.pa) }
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

    func label(_ page: PhysAddr) -> String { labels[page.raw & ~0xfff] ?? "memory" }

    static func build(_ plan: Plan) throws -> GuestLayout {
        let l = GuestLayout()
        let k = plan.kimage
        let page: UInt64 = 0x1000
        // Destinations, merged.
        var dest = RangeSet()
        for s in plan.segments { if let r = s.range { dest.insert(r) } }
        for r in dest.ranges {
            try l.memory.add(start: r.first, size: r.size, label: "destination")
        }
        // Every other page the kimage or the tables use, coalesced into runs.
        var other: [UInt64: String] = [:]
        other[k.controlPage.raw] = "control page"
        if let s = k.swapPage { other[s.raw] = "swap page" }
        for p in k.indirectionPages { other[p.pa.raw] = "indirection page" }
        for s in k.sourcePages where s.source != s.destination { other[s.source.raw] = "source page" }
        for (pa, lvl) in plan.tables.levelOf { other[pa.raw] = "identity-map \(lvl) page" }
        for (pa, lvl) in plan.firstKernelTables.levelOf { other[pa.raw] = "first-kernel \(lvl) page" }
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
        for s in plan.segments {
            guard let r = s.range else { continue }
            var p = r.first.raw & ~(page - 1)
            while p <= r.last.raw {
                l.labels[p] = l.labels[p] ?? "destination of \(s.name)"
                if p > UInt64.max - page { break }
                p += page
            }
        }

        // Contents.
        let mem = l.memory
        func fail(_ what: String) -> Failure { .memory("could not write \(what) into guest memory") }
        if k.type == .crash {
            // Loaded straight into the crashkernel region at load time.
            for s in plan.segments {
                guard mem.write(s.mem, s.bytes) else { throw fail("segment \(s.name)") }
            }
        } else {
            for r in dest.ranges {
                guard let p = mem.pointer(r.first, length: Int(r.size.raw)) else { throw fail("destinations") }
                memset(p, Int32(Payload.oldContentsByte), Int(r.size.raw))
            }
            for sp in k.sourcePages {
                let s = plan.segments[sp.segment]
                guard let dst = mem.pointer(sp.source, length: Int(page)) else {
                    throw fail("source page \(sp.source)")
                }
                memset(dst, 0, Int(page))
                let off = sp.pageIndex * Int(page)
                if off < s.bytes.count {
                    let n = min(Int(page), s.bytes.count - off)
                    s.bytes.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress! + off, byteCount: n) }
                }
            }
            for ip in k.indirectionPages {
                for (i, e) in ip.entries.enumerated() where e != 0 {
                    guard mem.write64(PhysAddr(ip.pa.raw + UInt64(i) * 8), e) else { throw fail("indirection page") }
                }
            }
        }
        // Injected damage: one flipped byte in a segment's source data, after the digest was taken.
        for inj in plan.scenario.kexec?.inject ?? [] {
            guard case .flipSourceByte(let name, let offset) = inj else { continue }
            guard let si = plan.segments.firstIndex(where: { $0.name == name }),
                offset.raw < plan.segments[si].memsz.raw
            else {
                throw Failure.memory("inject flip-source-byte: no segment \(name) with offset \(offset)")
            }
            let target: PhysAddr
            if k.type == .crash {
                target = PhysAddr(plan.segments[si].mem.raw + offset.raw)
            } else {
                let pi = Int(offset.raw / page)
                guard let sp = k.sourcePages.first(where: { $0.segment == si && $0.pageIndex == pi }) else {
                    throw Failure.memory("inject: no source page for \(name)+\(offset)")
                }
                target = PhysAddr(sp.source.raw + offset.raw % page)
            }
            guard let p = mem.pointer(target, length: 1) else { throw fail("injection") }
            p.storeBytes(of: p.load(as: UInt8.self) ^ 0xff, as: UInt8.self)
        }
        // Injected list corruption and broken guest code (runaway guests, on purpose).
        for inj in plan.scenario.kexec?.inject ?? [] {
            try l.applyRunaway(inj, plan: plan)
        }
        // Control page: relocate_kernel at 0, page list at 0x800.
        let code = X86_64GuestCode.relocateKernel.bytes
        guard mem.write(k.controlPage, code) else { throw fail("relocate_kernel") }
        let list = [k.controlPage.raw, plan.controlVA.raw, plan.tables.root.raw, k.swapPage?.raw ?? 0]
        for (i, v) in list.enumerated() {
            guard mem.write64(PhysAddr(k.controlPage.raw + X86_64GuestCode.pageListOffset + UInt64(i) * 8), v) else {
                throw fail("page list")
            }
        }
        // Tables are encoded straight into guest memory (entries are little endian, as on the host).
        for t in [plan.tables, plan.firstKernelTables] {
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
        // nx-start: the identity map's leaf over the start address gets the NX bit (after the tables
        // are in memory, before they are snapshotted as pages that must not change).
        if plan.scenario.kexec?.inject.contains(.nxStart) == true {
            try l.setNX(over: plan.purgatoryEntry, root: plan.tables.root, levels: plan.scenario.machine.paging.levels)
        }
        // Pages that must come out unchanged: tables, indirection pages, relocate_kernel's code
        // and page list; for a crash image also every mapped page outside the crashkernel region.
        var protected: [PhysAddr] = []
        for t in [plan.tables, plan.firstKernelTables] { protected += t.pages.keys }
        protected += k.indirectionPages.map(\.pa)
        // The control page's stack (top of the page) is scratch: keep code + page list only.
        l.protect(k.controlPage, length: Int(X86_64GuestCode.pageListOffset) + 32)
        for pa in protected { l.protect(pa) }
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
        try l.takeSnapshots()
        return l
    }

    /// Damage that turns the guest into a runaway: a list that never ends, one that overwrites the
    /// relocation code or every page it can reach, and purgatory code that cannot execute.
    private func applyRunaway(_ inj: Injection, plan: Plan) throws {
        let k = plan.kimage
        let mem = memory
        func set(_ page: PhysAddr, _ slot: Int, _ v: UInt64) throws {
            guard mem.write64(PhysAddr(page.raw + UInt64(slot) * 8), v) else {
                throw Failure.memory("inject: cannot write the list at \(page)")
            }
        }
        func doneSlot() -> (PhysAddr, Int)? {
            guard let last = k.indirectionPages.last, let i = last.entries.firstIndex(of: Ind.done) else { return nil }
            return (last.pa, i)
        }
        switch inj {
        case .listCycle:
            guard let (page, slot) = doneSlot(), let first = k.indirectionPages.first else {
                throw Failure.memory("inject list-cycle: the image has no indirection list (crash image?)")
            }
            try set(page, slot, first.pa.raw | Ind.indirection)
        case .overwriteControlPage:
            guard let (page, slot) = doneSlot(), slot + 2 < 512, let src = k.sourcePages.first else {
                throw Failure.memory("inject overwrite-control-page: no room in the list")
            }
            try set(page, slot, k.controlPage.raw | Ind.destination)
            try set(page, slot + 1, src.source.raw | Ind.source)
            try set(page, slot + 2, Ind.done)
        case .scribble:
            // First page: destination 1 MiB, then a link to a second list page (a spare source
            // page) whose every slot sends the same source on, and whose last slot links to
            // itself: the destination climbs over every page above 1 MiB until something breaks.
            guard let first = k.indirectionPages.first, k.sourcePages.count > 2 else {
                throw Failure.memory("inject scribble: the image has no indirection list (crash image?)")
            }
            let src = k.sourcePages[0].source.raw
            let loop = k.sourcePages[2].source
            try set(first.pa, 0, 0x10_0000 | Ind.destination)
            try set(first.pa, 1, loop.raw | Ind.indirection)
            for i in 0..<511 { try set(loop, i, src | Ind.source) }
            try set(loop, 511, loop.raw | Ind.indirection)
        case .invalidOpcode:
            // ud2 at purgatory's entry, in the page that will land there.
            guard let pi = plan.segments.firstIndex(where: \.isPurgatory) else { return }
            let off = plan.purgatoryEntry.raw - plan.segments[pi].mem.raw
            let target: PhysAddr
            if k.type == .crash {
                target = plan.purgatoryEntry
            } else {
                guard let sp = k.sourcePages.first(where: { $0.segment == pi && $0.pageIndex == Int(off / 0x1000) })
                else {
                    throw Failure.memory("inject invalid-opcode: no source page for purgatory")
                }
                target = PhysAddr(sp.source.raw + off % 0x1000)
            }
            guard mem.write(target, [0x0f, 0x0b]) else { throw Failure.memory("inject invalid-opcode") }
        default:
            break
        }
    }

    /// Sets NX (bit 63) on the leaf that maps `va` (identity: VA = PA) in the tables at `root`,
    /// found by the walker the engine uses.
    private func setNX(over va: PhysAddr, root: PhysAddr, levels: Int) throws {
        // CR0.PG|PE, CR4.PAE (+LA57), EFER.LME|LMA|NXE: long mode as relocate_kernel runs it.
        let control = X86Walker.Control(
            cr0: 0x8000_0001, cr3: root.raw, cr4: levels == 5 ? 0x1020 : 0x20, efer: 0xd00)
        guard
            case .success(let t) = X86Walker.translate(
                VirtAddr(va.raw), access: .read, control: control, read64: memory.read64),
            let at = t.leafEntryAddress, let e = memory.read64(at)
        else {
            throw Failure.memory("inject nx-start: \(va) is not mapped by the identity map")
        }
        guard memory.write64(at, e | 1 << 63) else { throw Failure.memory("inject nx-start") }
    }

    func firstDifference(page: PhysAddr) -> UInt64? {
        guard let buf = snapData, let e = snapIndex.first(where: { $0.pa == page }),
            let now = memory.pointer(page, length: e.length)
        else { return nil }
        let a = UnsafeRawBufferPointer(start: buf + e.offset, count: e.length)
        let b = UnsafeRawBufferPointer(start: now, count: e.length)
        return (0..<e.length).first { a[$0] != b[$0] }.map { page.raw + UInt64($0) }
    }
}
