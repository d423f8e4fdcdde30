import Emulator
import Foundation
import GuestCode
import KexecModel
import Kimage

/// Injected damage, applied to the laid-out guest before the snapshot: a flipped source byte (a
/// first kernel that stamps the loaded image after the digest), and the runaway guests (a list
/// that never ends, one that overwrites the relocation code or every page it can reach, purgatory
/// code that cannot execute, a start address mapped NX).
extension GuestLayout {
    func applyInjections(_ plan: Plan) throws {
        let k = plan.kimage
        let sc = plan.scenario
        // arm64 with the crashkernel region unmapped from the first kernel's linear map
        // (arch_kexec_protect_crashkres): a crash image cannot be stamped.
        let shielded = k.type == .crash && plan.arm64?.protection == .unmapped
        for inj in sc.kexec?.inject ?? [] {
            guard case .flipSourceByte(let name, let offset) = inj, !shielded else { continue }
            // The fixture names the segment by its label; the first segment with that label.
            let roles = SegmentRole.roles(labelled: name)
            guard let si = plan.segments.firstIndex(where: { roles.contains($0.role) }),
                offset.raw < plan.segments[si].memsz.raw
            else {
                throw Failure.memory("inject flip-source-byte: no segment \(name) with offset \(offset)")
            }
            let target = try sourceAddress(plan, segment: si, offset: offset.raw, what: "flip-source-byte")
            guard let p = memory.pointer(target, length: 1) else { throw Failure.memory("inject flip-source-byte") }
            p.storeBytes(of: p.load(as: UInt8.self) ^ 0xff, as: UInt8.self)
        }
        for inj in sc.kexec?.inject ?? [] {
            try applyRunaway(inj, plan: plan)
        }
    }

    /// Where byte `offset` of segment `si` sits before relocation: in its source page, or at its
    /// destination for a crash image (loaded in place).
    func sourceAddress(_ plan: Plan, segment si: Int, offset: UInt64, what: String) throws -> PhysAddr {
        let k = plan.kimage
        if k.type == .crash { return PhysAddr(plan.segments[si].mem.raw + offset) }
        let page = k.pageSize
        guard let sp = k.sourcePages.first(where: { $0.segment == si && $0.pageIndex == Int(offset / page) }) else {
            throw Failure.memory("inject \(what): no source page for \(plan.segments[si].name)+\(hex(offset))")
        }
        return PhysAddr(sp.source.raw + offset % page)
    }

    /// Damage that turns the guest into a runaway: a list that never ends, one that overwrites the
    /// relocation code or every page it can reach, and purgatory code that cannot execute.
    func applyRunaway(_ inj: Injection, plan: Plan) throws {
        let k = plan.kimage
        let mem = memory
        // Entries per list page: PAGE_SIZE / 8.
        let perPage = Int(k.pageSize / 8)
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
            guard let (page, slot) = doneSlot(), slot + 2 < perPage, let src = k.sourcePages.first else {
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
            for i in 0..<(perPage - 1) { try set(loop, i, src | Ind.source) }
            try set(loop, perPage - 1, loop.raw | Ind.indirection)
        case .invalidOpcode:
            // An undefined instruction at purgatory's entry, in the page that will land there:
            // x86 ud2; arm64 udf #0 (an all-zero word).
            guard let pi = plan.segments.firstIndex(where: \.isPurgatory), let entry = plan.purgatoryEntry else {
                return
            }
            let off = entry.raw - plan.segments[pi].mem.raw
            let target = try sourceAddress(plan, segment: pi, offset: off, what: "invalid-opcode")
            let bytes: [UInt8] = plan.arm64 == nil ? [0x0f, 0x0b] : [0, 0, 0, 0]
            guard mem.write(target, bytes) else { throw Failure.memory("inject invalid-opcode") }
        default:
            break
        }
    }

    /// Sets NX (bit 63) on the leaf that maps `va` (identity: VA = PA) in the tables at `root`,
    /// found by the walker the engine uses.
    func setNX(over va: PhysAddr, root: PhysAddr, levels: Int) throws {
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

}
