import Emulator
import GuestCode
import KexecModel
import Kimage
import PageTables

/// arm64: arm64_relocate_new_kernel entered with the MMU off (cpu_soft_restart), or its MMU-on
/// variant with TTBR0 on the idmap of the control page and TTBR1 switched to the linear-map copy
/// (arch/arm64/kernel/relocate_kernel.S, machine_kexec.c); the next kernel is entered with the MMU
/// off, x0 = DTB, x1 = x2 = x3 = 0 (Documentation/arch/arm64/booting.rst).
enum Arm64RunBackend: RunBackend {
    typealias Arch = Arm64

    static var relocateKernel: GuestBlob { Arm64GuestCode.relocateKernel }
    static var purgatory: GuestBlob { Arm64GuestCode.purgatory }
    static var probe: GuestBlob { Arm64GuestCode.probe }
    static var mismatchSpinOffset: UInt64 { Arm64GuestCode.Purgatory.sha256MismatchSpin }
    static var sha256Routines: NativePurgatorySha256<Arm64>.Routines {
        typealias P = Arm64GuestCode.Purgatory
        return .init(initial: P.sha256Init, update: P.sha256Update, final: P.sha256Final)
    }
    static var computedDigestOffset: UInt64 { Arm64GuestCode.Purgatory.purgatoryComputedDigest }
    /// The first kernel's exception vectors (`vectors` in its image, a kernel virtual address as a
    /// 6.x kernel with 48-bit VAs has it): nothing in kexec's path changes VBAR_EL1.
    static let firstKernelVectors: UInt64 = 0xffff_8000_0801_0800

    static func prepare(_ e: Arm64Engine, plan: Plan, startAddress: PhysAddr) -> VirtAddr {
        let control = plan.kimage.controlPage.raw
        e.write(.x0, plan.kimage.head)
        e.write(.x1, startAddress.raw)
        e.write(.x2, plan.handedArgument.raw)
        // PAGE_SIZE: the size of every kimage page, which the routine copies per IND_SOURCE entry
        // (arch/arm64/kernel/relocate_kernel.S: x6 = PAGE_SIZE for copy_page, read in 6.12.117).
        e.write(.x6, plan.kimage.pageSize)
        e.write(.vbarEL1, firstKernelVectors)
        guard let a = plan.arm64, a.relocation == .mmuOn, let layout = a.layout,
            let first = a.tables(named: "linear map"), let copy = a.tables(named: "linear-map copy"),
            let idmap = a.tables(named: "idmap")
        else {
            return VirtAddr(control + Arm64GuestCode.RelocateKernel.arm64RelocateNewKernel)
        }
        e.enableMMU(
            tcr: first.tcr(idmapT0SZ: idmap.txsz), ttbr0: idmap.root.raw, ttbr1: first.root.raw,
            mair: Arm64Descriptor.mair)
        e.write(.x3, layout.physToVirtOffset)
        e.write(.x4, copy.root.raw)
        e.write(.x5, a.zeroPage.raw)
        return VirtAddr(control + Arm64GuestCode.RelocateKernel.arm64RelocateNewKernelMmuOn)
    }

    static func relocationOffset(_ pc: UInt64, plan: Plan) -> UInt64? {
        let c = plan.kimage.controlPage.raw
        return pc >= c && pc - c < 0x1000 ? pc - c : nil
    }

    static func handOffProblem(_ e: Arm64Engine, plan: Plan) -> (summary: String, evidence: [Evidence])? {
        let regs = [e.read(.x0), e.read(.x1), e.read(.x2), e.read(.x3)]
        let sctlr = e.read(.sctlrEL1)
        guard regs != [plan.expectedHandOffArgument.raw, 0, 0, 0] || sctlr & 1 != 0 else { return nil }
        return (
            "reached the entry with wrong hand-off state",
            [Evidence(.x0ToX3, regs.map { hex($0) }.joined(separator: " ")), Evidence(.sctlrEL1, hex(sctlr))]
        )
    }

    static func landed(_ e: Arm64Engine, plan: Plan) -> (summary: String, evidence: [Evidence]) {
        let pc = e.read(.pc)
        return (
            "every destination byte matches, entry \(hex(pc)) with x0 = DTB \(hex(plan.handedArgument.raw)), MMU off, "
                + "nothing else changed",
            [
                Evidence(.entry, hex(pc)), Evidence(.x0Dtb, hex(plan.handedArgument.raw)), Evidence(.x1X2X3, "0 0 0"),
                Evidence(.mmu, "off (SCTLR_EL1.M = 0)"), Evidence(.relocation, plan.arm64?.relocation.rawValue ?? "-"),
            ]
        )
    }

    static func landedExtras(plan: Plan) -> [Evidence] {
        var ev: [Evidence] = []
        if let a = plan.arm64, let cost = a.firstKernelLinearMap {
            ev.append(Evidence(key: .tableCost("first_kernel_linear_map"), value: cost))
        }
        if plan.kimage.type == .crash && plan.arm64?.protection == .unmapped {
            ev.append(
                Evidence(
                    .crashkernelProtection,
                    "unmapped: arch_kexec_protect_crashkres made the loaded crash segments invalid in the first "
                        + "kernel's linear map; stamps into them cannot happen"))
            let stamps =
                plan.scenario.kexec?.inject.filter {
                    if case .flipSourceByte = $0 { return true } else { return false }
                }
                .count ?? 0
            if stamps > 0 { ev.append(Evidence(.stampsBlocked, "\(stamps)")) }
        }
        for t in plan.arm64?.tables ?? [] {
            let key =
                t.name.replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "-", with: "_") + "_tables"
            let cost = t.tables.cost
            ev.append(
                Evidence(
                    key: .tableCost(key),
                    value: "\(cost.pages) pages (\(formatSize(cost.bytes))), \(t.tables.granule) \(t.tables.mappings)"))
        }
        return ev
    }

    static func faultDetail(_ f: Arm64Walker.Fault, plan: Plan) -> (physical: UInt64, evidence: [Evidence]) {
        let pa = plan.arm64?.layout?.pa(f.va).map { $0.raw } ?? f.va.raw
        return (
            pa,
            [
                Evidence(.physical, hex(pa)), Evidence(.entryAddress, f.entryAddress.map { hex($0.raw) } ?? "-"),
                Evidence(.entry, hex(f.entry)), Evidence(.arm64Fault, f.description),
                Evidence(.faultStatusCode, hex(UInt64(f.statusCode))),
            ]
        )
    }

    static func exceptionEvidence(_ e: Arm64Engine) -> [Evidence] {
        [
            Evidence(.vbarEL1, hex(e.read(.vbarEL1))),
            Evidence(
                .onHardware,
                "VBAR_EL1 still points at the first kernel's vectors, a virtual address that means nothing "
                    + "with the MMU off: the vector fetch aborts again and again (an exception storm) and "
                    + "the CPU never gets anywhere; the emulator stops at the first exception instead"
            ),
        ]
    }

    static var touchProbeOffsets: (start: UInt64, done: UInt64) {
        (Arm64GuestCode.Probe.touchProbe, Arm64GuestCode.Probe.touchProbeDone)
    }

    static func setTouchProbeArguments(_ e: Arm64Engine, list: UInt64, count: Int) {
        e.write(.x0, list)
        e.write(.x1, UInt64(count))
    }

    static func touchesLeft(_ e: Arm64Engine) -> Int { Int(e.read(.x1)) }
}
