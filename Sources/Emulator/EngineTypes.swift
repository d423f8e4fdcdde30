import CUnicorn
import KexecModel

/// Which engine runs, as every report states it.
public struct EngineVersion: Sendable, CustomStringConvertible, Equatable {
    public var major: UInt32
    public var minor: UInt32
    public var patch: UInt32
    public init(major: UInt32, minor: UInt32, patch: UInt32) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }
    public var description: String { "Unicorn \(major).\(minor).\(patch)" }

    public static var current: EngineVersion {
        var maj: UInt32 = 0
        var min: UInt32 = 0
        let combined = uc_version(&maj, &min)
        return EngineVersion(major: maj, minor: min, patch: (combined >> 8) & 0xff)
    }
    public var isSupported: Bool { major > 2 || (major == 2 && minor >= 1) }
}

public enum EmulatorError: Error, CustomStringConvertible, Equatable {
    case engineTooOld(EngineVersion)
    case engine(String, Int)
    case memory(String)
    public var description: String {
        switch self {
        case .engineTooOld(let v):
            return
                "\(v) is too old: kexec-sim needs Unicorn 2.1 or newer (2.0.x maps every x86_64 access to physical = "
                + "virtual and truncates arm64 addresses above 4 GiB). Run scripts/setup-unicorn, which installs "
                + "Unicorn 2.1 from the PyPI wheel into .unicorn/ in this checkout, then rebuild."
        case .engine(let what, let code):
            return "Unicorn: \(what) failed: \(String(cString: uc_strerror(uc_err(UInt32(code))))) (\(code))"
        case .memory(let m): return m
        }
    }
}

func check(_ e: uc_err, _ what: String) throws(EmulatorError) {
    if e != UC_ERR_OK { throw .engine(what, Int(e.rawValue)) }
}

/// A memory access as the MMU sees it.
public enum MemoryAccess: String, Sendable, Equatable, Codable {
    case read, write, fetch
}

/// What a walker's fault tells the shared diagnosis, whatever the architecture.
public protocol WalkFault: Error, Sendable, Equatable, CustomStringConvertible {
    var va: VirtAddr { get }
    /// The level whose entry stopped the walk (nil when no entry was read: a non-canonical or
    /// out-of-range address).
    var tableLevel: TableLevel? { get }
    /// The entry was simply absent (x86 P = 0; arm64 an invalid descriptor), as opposed to a
    /// present entry that forbids the access or is malformed.
    var isNotPresent: Bool { get }
    /// The cause in words ("not present", "write to a read-only page").
    var reasonText: String { get }
    var entryAddress: PhysAddr? { get }
    var entry: UInt64 { get }
}

/// What a successful walk gives the engine's TLB fill.
public protocol WalkTranslation: Sendable {
    var pa: PhysAddr { get }
    var writable: Bool { get }
    var executable: Bool { get }
}

/// Why a run stopped. Unicorn's return code alone does not say (a hook that stops makes it return
/// OK), so the engine records what its hooks saw and classifies here. `Fault` is the
/// architecture's own walker fault.
public enum StopReason<Fault: WalkFault>: Sendable, Equatable {
    /// PC reached the `until` address.
    case reached(pc: VirtAddr)
    /// A code hook on a named address fired (e.g. purgatory's digest-mismatch spin).
    case stoppedAt(pc: VirtAddr, name: String)
    /// The project's walker found no usable translation.
    case translationFault(Fault, access: MemoryAccess, pc: VirtAddr)
    /// A translated access reached a physical address nobody backs and the policy refused to back it.
    case unbackedAccess(pa: PhysAddr, access: MemoryAccess, pc: VirtAddr)
    /// The instruction budget ran out.
    case budgetExhausted(pc: VirtAddr, executed: UInt64)
    /// The wall-clock limit ran out.
    case timedOut(pc: VirtAddr)
    /// A CPU exception the guest raised (`vector` in Unicorn's numbering), or an engine error
    /// (`vector` nil).
    case cpuException(pc: VirtAddr, vector: UInt32?, detail: String)

    /// The PC the run stopped at.
    public var pc: VirtAddr {
        switch self {
        case .reached(let pc), .stoppedAt(let pc, _), .translationFault(_, _, let pc), .unbackedAccess(_, _, let pc),
            .budgetExhausted(let pc, _), .timedOut(let pc), .cpuException(let pc, _, _):
            return pc
        }
    }
}

public enum MMUMode: Sendable {
    /// UC_TLB_VIRTUAL + UC_HOOK_TLB_FILL with the project's walker (the default).
    case project
    /// UC_TLB_CPU: Unicorn's own walker, for the differential tests only.
    case engine
}

/// A register an architecture's engine can read and write.
public protocol EngineRegister: Sendable {
    var ucID: Int32 { get }
}

extension X86Walker.Fault: WalkFault {
    public var tableLevel: TableLevel? { level.map { .x86($0) } }
    public var isNotPresent: Bool { reason == .notPresent }
    public var reasonText: String { reason.rawValue }
    public var description: String {
        let at = entryAddress.map { " (entry \(hex(entry)) at \($0), index \(index))" } ?? ""
        return "\(level?.rawValue ?? "walk") fault at \(va): \(reason.rawValue)\(at)"
    }
}

extension X86Walker.Translation: WalkTranslation {}

extension Arm64Walker.Fault: WalkFault {
    public var tableLevel: TableLevel? {
        reason == .outOfRange || reason == .walkDisabled ? nil : .arm64(level)
    }
    public var isNotPresent: Bool { reason == .invalid }
    public var reasonText: String { reason.rawValue }
}

extension Arm64Walker.Translation: WalkTranslation {}

/// A TLB-miss walk's outcome, before the architecture types it.
enum WalkOutcome {
    case hit(any WalkTranslation)
    case fault(any WalkFault)
}
