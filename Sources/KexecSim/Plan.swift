import Foundation
import KexecModel
import Kimage
import PageTables

/// Everything a run needs, decided on the host before any guest instruction runs: the segments
/// the running kernel placed, the kimage, and the architecture's tables.
public struct Plan: Sendable {
    public var scenario: Scenario
    public var segments: [Segment]
    public var kimage: Kimage
    public var kernelEntry: PhysAddr
    /// The argument the next kernel is entered with: x86_64 rsi = boot_params, arm64 x0 = DTB
    /// (0 when there is none).
    public var entryArgument: PhysAddr
    /// The argument the next kernel is really handed: `entryArgument`, or the pointer of a
    /// `handoff-pointer` injection (the planner rejected one that overflows).
    public var handedArgument: PhysAddr {
        scenario.kexec?.handedArgument(real: entryArgument) ?? entryArgument
    }
    /// True when an injection hands the next kernel something other than `entryArgument`.
    public var handsWrongPointer: Bool { handedArgument != entryArgument }
    /// The argument register the hand-off check expects at the next kernel's entry: the real
    /// boot_params / DTB; with `--follow` the injected pointer, so the run goes on and the next
    /// kernel's own code shows what the wrong pointer does (without `--follow` a wrong pointer is
    /// `corruption`: the registers are not the hand-off).
    public var expectedHandOffArgument: PhysAddr { scenario.follow == nil ? entryArgument : handedArgument }
    /// `handoff_pointer`: the injected pointer and where the real one points (none without the injection).
    var handoffPointerEvidence: [Evidence] {
        guard handsWrongPointer else { return [] }
        let what = arm64 == nil ? "boot_params" : "the DTB"
        let region = scenario.machine.memory.describe(handedArgument)
        return [
            Evidence(
                .handoffPointer,
                "injected \(hex(handedArgument.raw)) (\(region)) instead of \(what) at \(hex(entryArgument.raw))")
        ]
    }
    /// Where our purgatory blob is loaded (its symbols count from here): the purgatory segment's
    /// start, or inside kexec-tools' purgatory segment (`loader: kexec-tools`: at its entry); nil
    /// when the load has none (arm64 kexec_file_load: the relocation routine enters the kernel).
    public var purgatoryBase: PhysAddr?
    public var purgatoryEntry: PhysAddr?
    public var digest: [UInt8]
    public var storedDigest: [UInt8]
    public var crashRegions: [AddressRange]
    public var planSeconds: Double
    public var tablesSeconds: Double = 0
    /// Fields parsed from real image files (bzImage setup header, Image header …), for the landed evidence.
    public var imageInfo: [(String, String)] = []
    /// What only one architecture has.
    public var arch: ArchPlan
    /// The version-dependent rules this plan applied, for the evidence (with
    /// `scenario.machine.kernelVersion`).
    public var rules: [AppliedRule] = []
    /// Kexec HandOver: scratch, preserved memory, metadata and what was handed over (nil: no KHO).
    public var kho: KhoPlan?

    public var purgatorySegment: Segment? { segments.first { $0.isPurgatory } }
    public var x86: X86Plan? {
        if case .x86(let p) = arch { return p }
        return nil
    }
    public var arm64: Arm64Plan? {
        if case .arm64(let p) = arch { return p }
        return nil
    }
    /// The policy as reports name it: "ram-2m"; "mmu-on 4k blocks".
    public var policyLabel: String { scenario.policyLabel }
}

/// The architecture-specific part of a plan.
public enum ArchPlan: Sendable {
    case x86(X86Plan)
    case arm64(Arm64Plan)
}

/// x86_64: the identity map machine_kexec_prepare builds (arch/x86/kernel/machine_kexec_64.c
/// init_pgtable) and the first kernel's own tables at the moment of the jump.
public struct X86Plan: Sendable {
    public var tables: X86PageTables
    /// Only the control page's kernel-virtual alias: what relocate_kernel runs on before its CR3 switch.
    public var firstKernelTables: X86PageTables
    /// The control page's kernel-virtual alias the relocation routine is entered at.
    public var controlVA: VirtAddr
}

/// arm64: the first kernel's linear map, its trans_pgd copy and the idmap of the control page
/// (MMU-on relocation, arch/arm64/kernel/machine_kexec.c machine_kexec_post_load), and the zero
/// page the routine's break-before-make TTBR1 switch uses.
public struct Arm64Plan: Sendable {
    public struct NamedTables: Sendable {
        public var name: String
        public var tables: Arm64Tables
    }
    /// "linear map", "linear-map copy", "idmap" (empty with the MMU off).
    public var tables: [NamedTables]
    public var layout: Arm64Layout?
    public var zeroPage: PhysAddr
    public var relocation: RelocationMode
    /// Whether the first kernel unmapped the loaded crash segments from its linear map
    /// (arch_kexec_protect_crashkres, up to v6.3): stamps into them cannot happen.
    public var protection: CrashkernelProtection = .none
    /// PAGE_SIZE of the running kernel: the granule.
    public var pageSize: ByteCount = kexecPageSize
    /// The first kernel's own fault in trans_pgd_create_copy during the load (5 levels, v6.9–v6.12):
    /// the run ends there, before any relocation.
    public var loadFault: Arm64LoadFault?
    /// What the first kernel's own linear map costs in table pages under the linear-map rule,
    /// against blocks: "2054 pages (8MiB), whole-map base pages; 2 pages (8KiB) with blocks".
    public var firstKernelLinearMap: String?

    public func tables(named name: String) -> Arm64Tables? { tables.first { $0.name == name }?.tables }
}

public enum PlanOutcome: Sendable {
    case planned(Plan)
    case rejected(Rejection, Scenario)
}

public enum PlanError: Error, CustomStringConvertible {
    case input(InputError)
    case unsupported(String)
    public var description: String {
        switch self {
        case .input(let e): return e.description
        case .unsupported(let s): return s
        }
    }

    /// A scenario whose policy is for another architecture than its machine (built in code: the
    /// decoder never makes one).
    static func policyMismatch(_ sc: Scenario) -> PlanError {
        .unsupported(
            "\(sc.file): policy: a \(sc.policy.arch.rawValue) policy on a machine whose arch is \(sc.machine.arch.rawValue)"
        )
    }
}

extension Scenario {
    /// The policy a run of this scenario uses, as reports and the matrix name it: the x86_64
    /// identity-map policy, or arm64's relocation mode, granule and mapping kind.
    public var policyLabel: String {
        switch policy {
        case .x86_64(let p): return p.identityMap.rawValue
        case .arm64: return MatrixPlanner.arm64PolicyLabel(effectiveArm64Policy ?? Arm64Policy())
        }
    }
}
/// Lets the table builder's allocate closure draw from the kimage's allocator.
final class AllocatorBox: @unchecked Sendable {
    var allocator: PageAllocator
    var handed: [PhysAddr] = []
    /// Handed out by the first `next()` instead of a fresh page: x86_64's PGD in the 8 KiB control
    /// block before v6.14 (not an extra control page).
    var first: PhysAddr?
    init(_ a: PageAllocator, first: PhysAddr? = nil) {
        allocator = a
        self.first = first
    }
    func next() throws -> PhysAddr {
        if let f = first {
            first = nil
            return f
        }
        let p = try allocator.allocateNonDestination()
        handed.append(p)
        return p
    }
    /// An ordinary page (get_zeroed_page), not one of the image's control pages.
    func ordinary() throws -> PhysAddr { try allocator.allocateOrdinary() }
    /// `size` bytes of consecutive, `size`-aligned non-destination pages. A table page of the
    /// granule is one kimage page when PAGE_SIZE is the granule (arm64: trans_pgd's
    /// kexec_page_alloc takes one order-0 control page, arch/arm64/kernel/machine_kexec.c, read in
    /// 6.12.117); a larger `size` gathers a run, and pages skipped on the way stay handed out.
    func aligned(_ size: UInt64) throws -> PhysAddr {
        let page = allocator.pageSize
        if size <= page { return try next() }
        var run: [PhysAddr] = []
        while true {
            let p = try next()
            if let last = run.last, p.raw == last.raw + page {
                run.append(p)
            } else {
                run = p.raw % size == 0 ? [p] : []
            }
            if UInt64(run.count) * page == size { return run[0] }
        }
    }
}

extension Plan {
    /// Every page the architecture's tables occupy (x86_64: the identity map; arm64: the linear
    /// map, its copy and the idmap, each granule-sized page as its first 4 KiB page).
    public var tablePageAddresses: [PhysAddr] {
        switch arch {
        case .x86(let x): return Array(x.tables.pages.keys)
        case .arm64(let a): return a.tables.flatMap { Array($0.tables.pages.keys) }
        }
    }

    /// Physical memory the relocation runs with a mapping for: the identity map's coverage
    /// (x86_64), the linear-map copy's RAM (arm64 MMU-on); empty when the MMU is off.
    public var mappedCoverage: [AddressRange] {
        switch arch {
        case .x86(let x): return x.tables.identityCoverage.ranges
        case .arm64(let a):
            guard a.relocation == .mmuOn, let l = a.layout else { return [] }
            return scenario.machine.memory.usable.ranges.compactMap { $0.intersection(l.reachable) }
        }
    }
}
