import Emulator
import Foundation
import GuestCode
import KexecModel
import Kimage

/// Turns where a run stopped into one verdict with its evidence, the same way for both
/// architectures: the backend adds only the hand-off rules and the architecture's own detail.
struct Diagnosis<B: RunBackend> {
    let plan: Plan
    let engine: Engine<B.Arch>
    let layout: GuestLayout
    let options: RunOptions

    var machine: Machine { plan.scenario.machine }
    var policy: String { plan.policyLabel }

    /// Names the code at `pc`: relocation routine / purgatory symbol + offset, or the kernel entry.
    func routine(_ pc: UInt64) -> String {
        func sym(_ blob: GuestBlob, _ off: UInt64) -> String {
            let best = blob.symbols.filter { $0.value <= off }.max { $0.value < $1.value }
            guard let best else { return "+\(hex(off))" }
            return off == best.value ? best.key : "\(best.key)+\(hex(off - best.value))"
        }
        if let off = B.relocationOffset(pc, plan: plan) { return "relocate_kernel: " + sym(B.relocateKernel, off) }
        if let pb = plan.purgatoryBase?.raw, pc >= pb && pc - pb < B.purgatory.memorySize {
            return "purgatory: " + sym(B.purgatory, pc - pb)
        }
        if pc == plan.kernelEntry.raw { return "next kernel entry" }
        return "no known routine"
    }

    /// Words for a missing or refusing table entry: "level-2 (pmd) entry is missing".
    func missing(_ f: B.Arch.Fault) -> String {
        guard let level = f.tableLevel else { return "walk stops before any table: \(f.reasonText)" }
        let name = level.description
        guard f.isNotPresent else { return "\(name) entry: \(f.reasonText)" }
        if case .x86(let l) = f.tableLevel {
            return "level-\(l.number(levels: machine.paging.levels)) (\(name)) entry is missing"
        }
        return "\(name) entry is missing"
    }

    func verdict(for stop: StopReason<B.Arch.Fault>) -> Verdict {
        switch stop {
        case .reached(let pc) where pc.raw == plan.kernelEntry.raw:
            return verifyLanding()
        case .reached(let pc):
            return Verdict(kind: .halt, summary: "emulation stopped at \(pc) (\(routine(pc.raw)))")
        case .stoppedAt(let pc, let name):
            // Purgatory's digest check failed and it spins forever, as the real one does.
            var ev: [Evidence] = [
                Evidence(.pc, hex(pc.raw)), Evidence(.routine, routine(pc.raw)), Evidence(.loop, name),
            ]
            let mismatch = Self.firstDestinationMismatch(segments: plan.segments, mem: layout.memory)
            if let m = mismatch {
                ev.append(Evidence(.stampedSegment, m.segment))
                ev.append(Evidence(.firstDifferingAddress, hex(m.address)))
                ev.append(Evidence(.offsetInSegment, hex(m.offset)))
            } else if plan.storedDigest != plan.digest {
                ev.append(Evidence(.cause, "the digest stored in purgatory does not match the segments"))
            }
            ev.append(Evidence(.storedDigest, plan.storedDigest.map { String(format: "%02x", $0) }.joined()))
            ev.append(Evidence(.segmentsDigest, plan.digest.map { String(format: "%02x", $0) }.joined()))
            return Verdict(
                kind: .hang,
                summary: "purgatory spins after a sha256 digest mismatch"
                    + (mismatch.map { " (segment \($0.segment) differs at \(hex($0.address)))" } ?? ""),
                evidence: ev, address: mismatch?.address)
        case .translationFault(let f, let access, let pc):
            let detail = B.faultDetail(f, plan: plan)
            let region = machine.memory.describe(PhysAddr(detail.physical))
            let at = detail.physical == f.va.raw ? "" : " (PA \(hex(detail.physical)))"
            return Verdict(
                kind: .pageFault,
                summary:
                    "page fault at \(hex(f.va.raw))\(at) in \(region) because the \(missing(f)) under policy \(policy)",
                evidence: [
                    Evidence(.address, hex(f.va.raw)), Evidence(.access, access.rawValue), Evidence(.pc, hex(pc.raw)),
                    Evidence(.routine, routine(pc.raw)), Evidence(.region, region),
                    Evidence(.level, f.tableLevel?.description ?? "-"), Evidence(.reason, f.reasonText),
                ] + detail.evidence + [Evidence(.policy, policy)], address: f.va.raw)
        case .unbackedAccess(let pa, let access, let pc) where engine.onDemandLimitHit:
            return Verdict(
                kind: .halt,
                summary:
                    "runaway guest: \(engine.onDemandPageCount) pages of RAM nobody loaded were touched "
                    + "(limit \(engine.onDemandLimit)) when \(routine(pc.raw)) \(access.rawValue) \(hex(pa.raw))",
                evidence: [
                    Evidence(.address, hex(pa.raw)), Evidence(.access, access.rawValue), Evidence(.pc, hex(pc.raw)),
                    Evidence(.routine, routine(pc.raw)),
                    Evidence(.onDemandPages, "\(engine.onDemandPageCount)"),
                    Evidence(.limit, "\(engine.onDemandLimit) pages"),
                ], address: pa.raw)
        case .unbackedAccess(let pa, let access, let pc):
            let region = machine.memory.describe(pa)
            return Verdict(
                kind: .halt, summary: "\(access.rawValue) of \(hex(pa.raw)) in \(region): the machine would stop there",
                evidence: [
                    Evidence(.address, hex(pa.raw)), Evidence(.access, access.rawValue), Evidence(.pc, hex(pc.raw)),
                    Evidence(.routine, routine(pc.raw)), Evidence(.region, region),
                ],
                address: pa.raw)
        case .budgetExhausted(let pc, let executed):
            let loop = engine.sampleLoop(at: pc)
            return Verdict(
                kind: .hang, summary: "instruction budget of \(executed) ran out in \(routine(pc.raw))",
                evidence: [
                    Evidence(.pc, hex(pc.raw)), Evidence(.routine, routine(pc.raw)),
                    Evidence(.budget, "\(executed) instructions"),
                    Evidence(.loop, loop),
                ])
        case .timedOut(let pc):
            let loop = engine.sampleLoop(at: pc)
            return Verdict(
                kind: .hang,
                summary:
                    "no progress to the kernel entry within \(Int(options.timeoutSeconds)) s; stuck in \(routine(pc.raw))",
                evidence: [
                    Evidence(.pc, hex(pc.raw)), Evidence(.routine, routine(pc.raw)),
                    Evidence(.budget, "\(Int(options.timeoutSeconds)) s wall clock"), Evidence(.loop, loop),
                ])
        case .cpuException(let pc, _, let detail):
            return Verdict(
                kind: .halt, summary: "CPU exception in \(routine(pc.raw)): \(detail)",
                evidence: [Evidence(.pc, hex(pc.raw)), Evidence(.routine, routine(pc.raw)), Evidence(.detail, detail)]
                    + B.exceptionEvidence(engine))
        }
    }

    /// At the entry: every destination byte, then the pages that must not change, then RAM backed
    /// on demand (must still be zero), then the hand-off registers.
    func verifyLanding() -> Verdict {
        let mem = layout.memory
        if let m = Self.firstDestinationMismatch(segments: plan.segments, mem: mem) {
            return Verdict(
                kind: .corruption,
                summary:
                    "reached the entry but segment \(m.segment) differs at \(hex(m.address)) (offset \(hex(m.offset)))",
                evidence: [
                    Evidence(.segment, m.segment), Evidence(.address, hex(m.address)), Evidence(.offset, hex(m.offset)),
                    Evidence(.entry, hex(plan.kernelEntry.raw)),
                ],
                address: m.address)
        }
        for page in layout.changedProtectedPages().prefix(1) {
            let region = machine.memory.describe(page)
            let first = layout.firstDifference(page: page) ?? layout.kho?.firstDifference(page, memory: mem)
            return Verdict(
                kind: .strayWrite,
                summary: "memory outside the allowed ranges changed: page \(page) (\(layout.label(page))) in \(region)",
                evidence: [
                    Evidence(.page, hex(page.raw)), Evidence(.what, layout.label(page)), Evidence(.region, region),
                    Evidence(.firstDifferingByte, first.map { hex($0) } ?? "?"),
                ] + (layout.kho?.evidence(page) ?? []),
                address: page.raw)
        }
        for r in engine.onDemandRanges {
            guard let ptr = mem.pointer(r.first, length: Int(r.size.raw)) else { continue }
            let buf = UnsafeRawBufferPointer(start: ptr, count: Int(r.size.raw))
            if let i = buf.firstIndex(where: { $0 != 0 }) {
                let p = PhysAddr((r.first.raw + UInt64(i)) & ~0xfff)
                return Verdict(
                    kind: .strayWrite,
                    summary: "the run wrote page \(p) (\(machine.memory.describe(p))), which nothing may touch",
                    evidence: [
                        Evidence(.page, hex(p.raw)), Evidence(.region, machine.memory.describe(p)),
                        Evidence(.firstDifferingByte, hex(r.first.raw + UInt64(i))),
                    ],
                    address: p.raw)
            }
        }
        let pointer = plan.handoffPointerEvidence
        if let bad = B.handOffProblem(engine, plan: plan) {
            return Verdict(kind: .corruption, summary: bad.summary, evidence: bad.evidence + pointer)
        }
        let kho: [Evidence]
        switch KhoReadback.check(plan, memory: mem) {
        case .failure(let v): return v
        case .success(let ev): kho = ev
        }
        let segs = plan.segments.map { "\($0.name)@\(hex($0.mem.raw))+\(formatSize($0.memsz.raw))" }
            .joined(separator: " ")
        let handOff = B.landed(engine, plan: plan)
        return Verdict(
            kind: .landed, summary: handOff.summary,
            evidence: handOff.evidence + pointer + [
                Evidence(.segments, segs), Evidence(.sha256, plan.digest.map { String(format: "%02x", $0) }.joined()),
                Evidence(.protectedPages, "\(layout.protectedCount) unchanged"),
                Evidence(.onDemandPages, "\(engine.onDemandPageCount) still zero"),
            ] + kho + B.landedExtras(plan: plan) + Evidence.imageFields(plan.imageInfo))
    }

    struct Mismatch {
        var segment: String
        var address: UInt64
        var offset: UInt64
    }

    /// First destination byte that differs from its segment (buffer, then zeros to memsz).
    static func firstDestinationMismatch(segments: [Segment], mem: GuestMemory) -> Mismatch? {
        let zeros = [UInt8](repeating: 0, count: 1 << 16)
        var scratch: [UInt8] = []
        for s in segments {
            let checkLen = s.isPurgatory ? UInt64(s.contentCount) : s.memsz.raw
            let bufEnd = UInt64(s.contentCount)
            var off: UInt64 = 0
            while off < checkLen {
                // Chunks never straddle the end of the buffer, so each is all-buffer or all-zero.
                let limit = off < bufEnd ? bufEnd : checkLen
                let n = Int(min(limit - off, UInt64(zeros.count)))
                guard let p = mem.pointer(PhysAddr(s.mem.raw + off), length: n) else {
                    return Mismatch(segment: s.name, address: s.mem.raw + off, offset: off)
                }
                // The first byte that differs from the segment's contents (held or generated), or
                // from the zeros past them.
                let buf = UnsafeRawBufferPointer(start: p, count: n)
                func firstDifference(_ want: UnsafeRawBufferPointer) -> Int? {
                    memcmp(want.baseAddress!, p, n) == 0 ? nil : (0..<n).first { buf[$0] != want[$0] } ?? 0
                }
                let differs =
                    off < bufEnd
                    ? s.withContents(from: Int(off), count: n, scratch: &scratch, firstDifference)
                    : zeros.withUnsafeBytes { firstDifference(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                if let d = differs {
                    return Mismatch(segment: s.name, address: s.mem.raw + off + UInt64(d), offset: off + UInt64(d))
                }
                off += UInt64(n)
            }
        }
        return nil
    }

    /// After the entry: the next kernel's early reads (firmware tables, setup_data), done by the
    /// touch probe through the state the kernel is entered with (x86: the identity map; arm64: MMU
    /// off). The probe is placed in the kernel segment, which has already been verified.
    func probeTouches(landed: Verdict, timeoutMicros: UInt64) -> Verdict {
        let touches = plan.scenario.nextKernelTouches
        guard let kernel = plan.segments.first(where: { !$0.isPurgatory && $0.memsz.raw >= 0x4000 }) else {
            return landed
        }
        let base = kernel.mem.raw + 0x2000
        let list = base + 0x800
        let mem = engine.memory
        guard mem.write(PhysAddr(base), B.probe.bytes) else { return landed }
        let count = min(touches.count, 200)
        for (i, a) in touches.prefix(count).enumerated() { _ = mem.write64(PhysAddr(list + UInt64(i) * 8), a.raw) }
        // Firmware memory exists even though nothing loaded it: back any region on demand; a hole has nothing.
        let m = machine
        engine.backOnDemand = { pa, _ in m.memory.region(containing: pa) != nil }
        B.setTouchProbeArguments(engine, list: list, count: count)
        let stop = engine.run(
            from: VirtAddr(base + B.touchProbeOffsets.start),
            until: VirtAddr(base + B.touchProbeOffsets.done), budget: 0, timeoutMicros: timeoutMicros)
        let index = count - B.touchesLeft(engine)
        let addr = index < touches.count ? touches[index].raw : 0
        let region = machine.memory.describe(PhysAddr(addr))
        var ev = landed.evidence
        switch stop {
        case .reached:
            var touched: [String] = []
            for a in touches {
                let region = machine.memory.describe(a)
                if let tables = plan.x86?.tables {
                    guard case .success(let t) = tables.translate(VirtAddr(a.raw)) else { continue }
                    touched.append("\(hex(a.raw)) via \(t.leaf) leaf (\(region))")
                    if let reg = machine.memory.region(containing: a), reg.type == .reserved || reg.type == .unusable {
                        ev.append(
                            Evidence(
                                .touchedReserved,
                                "\(hex(a.raw)) in \(region) is mapped by a \(t.leaf) leaf over \(reg.type.rawValue) memory"
                            ))
                    }
                } else {
                    touched.append("\(hex(a.raw)) with the MMU off (\(region))")
                }
            }
            ev.append(Evidence(.nextKernelTouches, touched.joined(separator: "; ")))
            var v = landed
            v.evidence = ev
            return v
        case .translationFault(let f, let access, let pc):
            var evidence: [Evidence] = [
                Evidence(.address, hex(addr)), Evidence(.access, access.rawValue), Evidence(.pc, hex(pc.raw)),
                Evidence(.routine, "next kernel (touch probe)"), Evidence(.region, region),
                Evidence(.level, f.tableLevel?.description ?? "-"), Evidence(.reason, f.reasonText),
                Evidence(.policy, policy),
            ]
            if let tables = plan.x86?.tables { evidence.append(Evidence(.effectiveLeafRule, tables.effectiveLeafRule)) }
            return Verdict(
                kind: .pageFault,
                summary:
                    "the next kernel's read of \(hex(addr)) in \(region) faults: the \(missing(f)) under policy \(policy)",
                evidence: evidence, address: addr)
        case .unbackedAccess(let pa, _, _):
            return Verdict(
                kind: .halt,
                summary: "the next kernel's read of \(hex(addr)) reaches \(hex(pa.raw)), where no memory or device is",
                evidence: [Evidence(.address, hex(addr)), Evidence(.region, machine.memory.describe(pa))], address: addr
            )
        default:
            return Verdict(
                kind: .halt, summary: "touch probe stopped: \(stop)", evidence: [Evidence(.address, hex(addr))],
                address: addr)
        }
    }
}
