import KexecModel

/// What a piece of a verdict's evidence is about: the vocabulary every run of either
/// architecture uses, and the fields of a real image's header (named as the header names them).
/// The name is the key in the text report, `run --json` and the matrix outputs.
public enum EvidenceKey: Hashable, Sendable, CustomStringConvertible {
    case known(Name)
    /// A field of a real kernel image's header (bzImage setup header, arm64 Image header), or the
    /// file it came from: `kernel_file`, `init_size`, `text_offset` …
    case imageField(String)
    /// arm64: the cost of one set of tables: `linear_map_tables`, `linear_map_copy_tables`, `idmap_tables`.
    case tableCost(String)
    /// A rule that depends on the running kernel's version, by name (`rule.placement_walk`): which
    /// variant applied, and the source it follows.
    case rule(String)
    /// `--follow`: one milestone the next kernel reached (`milestone.banner`): time, instructions, line.
    case milestone(String)

    /// The shared vocabulary.
    public enum Name: String, Sendable, CaseIterable {
        // The running kernel whose rules apply.
        case kernel
        // Where and what.
        case address, access, pc, routine, region, level, reason, policy, physical
        case entryAddress = "entry_address"
        case entry, page, what
        case firstDifferingByte = "first_differing_byte"
        case firstDifferingAddress = "first_differing_address"
        case segment, offset
        case offsetInSegment = "offset_in_segment"
        case stampedSegment = "stamped_segment"
        // Rejections.
        case errno, check, detail
        // Hangs and runaways.
        case loop, budget, cause, limit
        case onDemandPages = "on_demand_pages"
        case storedDigest = "stored_digest"
        case segmentsDigest = "segments_digest"
        // Purgatory: how its sha256 ran, and the digest it computed.
        case purgatory
        case purgatoryDigest = "purgatory_digest"
        // Hand-off.
        case rip, rsi
        case expectedRip = "expected_rip"
        case expectedRsi = "expected_rsi"
        case x0Dtb = "x0_dtb"
        case x1X2X3 = "x1_x2_x3"
        case x0ToX3 = "x0..x3"
        case sctlrEL1 = "sctlr_el1"
        case vbarEL1 = "vbar_el1"
        case mmu, relocation
        case relocationInstructions = "relocation_instructions"
        // Landing.
        case segments, sha256
        case protectedPages = "protected_pages"
        case nextKernelTouches = "next_kernel_touches"
        case touchedReserved = "touched_reserved"
        case onHardware = "on_hardware"
        case arm64Fault = "arm64_fault"
        case faultStatusCode = "fault_status_code"
        case crashkernelProtection = "crashkernel_protection"
        case stampsBlocked = "stamps_blocked"
        // UV hazards.
        case leafLevel = "leaf_level"
        case leafSize = "leaf_size"
        case leafRange = "leaf_range"
        case hazard
        case leavesOverHazards = "leaves_over_hazards"
        case effectiveLeafRule = "effective_leaf_rule"
        // Kexec HandOver.
        case preservedRange = "preserved_range"
        case owner
        case khoHandover = "kho_handover"
        case khoFdt = "kho_fdt"
        case khoScratch = "kho_scratch"
        case khoPreserved = "kho_preserved"
        case chain
        case chainStep = "chain_step"
        case khoAfterFollow = "kho_after_follow"
        // Following the next kernel.
        case milestones, console
        case followStop = "follow_stop"
        case phase, handler
        case nextKernelMemory = "next_kernel_memory"
        case handedMemory = "handed_memory"
        case nextKernelTotal = "next_kernel_total"
        case memoryCheck = "memory_check"
        case exceptionsDelivered = "exceptions_delivered"
        case firmwareCalls = "firmware_calls"
        case interrupts
        case gicRegisters = "gic_registers"
        case initCmdline = "init_cmdline"
        case initVmcore = "init_vmcore"
        case initVmcoreWhy = "init_vmcore_why"
        case nextKernelZones = "next_kernel_zones"
        case consoleTail = "console_tail"
        case cpuidLeaves = "cpuid_leaves"
        case localApic = "local_apic"
        case ioPorts = "io_ports"
        case lastExceptions = "last_exceptions"
        case cpuHalted = "cpu_halted"
        // A next kernel handed a wrong boot_params / DTB pointer (`handoff-pointer`).
        case handoffPointer = "handoff_pointer"
        case handoffPointerRead = "handoff_pointer_read"
        case kernelLog = "kernel_log"
    }

    public var name: String {
        switch self {
        case .known(let n): return n.rawValue
        case .imageField(let s), .tableCost(let s): return s
        case .rule(let s): return "rule." + s
        case .milestone(let s): return "milestone." + s
        }
    }
    public var description: String { name }
}

/// One piece of a verdict's evidence, in the order the diagnosis gives it.
public struct Evidence: Sendable, Equatable {
    public var key: EvidenceKey
    public var value: String

    public init(_ key: EvidenceKey.Name, _ value: String) {
        self.key = .known(key)
        self.value = value
    }
    public init(key: EvidenceKey, value: String) {
        self.key = key
        self.value = value
    }

    /// A real image's header fields, as the image parsers list them.
    public static func imageFields(_ pairs: [(String, String)]) -> [Evidence] {
        pairs.map { Evidence(key: .imageField($0.0), value: $0.1) }
    }
}

extension Verdict {
    /// The evidence by key name (each key appears once in a verdict).
    public var evidenceByName: [String: String] {
        var out: [String: String] = [:]
        for e in evidence where out[e.key.name] == nil { out[e.key.name] = e.value }
        return out
    }
}

extension AppliedRule {
    /// The rule as evidence: `rule.NAME`, the variant and where it was read.
    public var evidence: Evidence { Evidence(key: .rule(name), value: "\(choice) [\(source)]") }
}
