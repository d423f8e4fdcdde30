/// A minimal PSCI 1.0 firmware for a machine with one CPU, answering the calls a Linux kernel makes
/// (Arm DEN 0022D "Power State Coordination Interface"; function ids and return codes as
/// include/uapi/linux/psci.h and drivers/firmware/psci/psci.c, v6.1, use them).
///
/// Answers: PSCI_VERSION → 1.0; PSCI_FEATURES → SUCCESS for the functions answered here,
/// NOT_SUPPORTED for the rest (so the kernel stays on SMCCC 1.0 and asks nothing else);
/// MIGRATE_INFO_TYPE → 2 (no trusted OS to migrate); AFFINITY_INFO → 0 (on) for CPU 0, INVALID
/// PARAMETERS otherwise; CPU_ON → ALREADY_ON for CPU 0, INVALID_PARAMETERS for any other (one
/// CPU); SYSTEM_OFF and SYSTEM_RESET(2) end the run (`powerRequest`); anything else →
/// NOT_SUPPORTED.
public struct Psci: Sendable {
    /// How the kernel calls the firmware (the DTB's /psci `method`).
    public enum Conduit: String, Sendable { case hvc, smc }

    public enum Function: UInt32, Sendable, CaseIterable {
        case version = 0x8400_0000
        case cpuSuspend = 0x8400_0001
        case cpuOff = 0x8400_0002
        case cpuOn32 = 0x8400_0003
        case affinityInfo32 = 0x8400_0004
        case migrateInfoType = 0x8400_0006
        case systemOff = 0x8400_0008
        case systemReset = 0x8400_0009
        case features = 0x8400_000a
        case cpuOn64 = 0xc400_0003
        case affinityInfo64 = 0xc400_0004
        case systemReset2 = 0xc400_0012
    }

    public static let success: Int64 = 0
    public static let notSupported: Int64 = -1
    public static let invalidParameters: Int64 = -2
    public static let alreadyOn: Int64 = -4

    /// What a call does to the machine.
    public enum Power: String, Sendable { case off = "SYSTEM_OFF", reset = "SYSTEM_RESET" }

    public struct Answer: Sendable, Equatable {
        /// The value for x0.
        public var x0: UInt64
        /// Set when the call powers the machine off or resets it: the run ends.
        public var power: Power?
    }

    public var conduit: Conduit
    public init(conduit: Conduit) { self.conduit = conduit }

    /// The HVC / SMC instruction (`#0`) of the conduit: HVC 0xd4000002, SMC 0xd4000003.
    public var instruction: UInt32 { conduit == .hvc ? 0xd400_0002 : 0xd400_0003 }

    /// The answer to function `x0` with arguments `x1`, `x2`.
    public func call(x0: UInt64, x1: UInt64) -> Answer {
        func ret(_ v: Int64) -> Answer { Answer(x0: UInt64(bitPattern: v), power: nil) }
        guard let f = Function(rawValue: UInt32(truncatingIfNeeded: x0)), x0 >> 32 == 0 else {
            return ret(Self.notSupported)
        }
        switch f {
        case .version: return ret(0x1_0000)
        case .features:
            let answered: Set<Function> = [
                .version, .features, .migrateInfoType, .cpuOn32, .cpuOn64, .affinityInfo32, .affinityInfo64,
                .systemOff, .systemReset,
            ]
            let asked = Function(rawValue: UInt32(truncatingIfNeeded: x1))
            return ret(asked.map { answered.contains($0) } == true ? Self.success : Self.notSupported)
        case .migrateInfoType: return ret(2)
        case .affinityInfo32, .affinityInfo64: return ret(x1 & 0xff_00ff_ffff == 0 ? 0 : Self.invalidParameters)
        case .cpuOn32, .cpuOn64: return ret(x1 & 0xff_00ff_ffff == 0 ? Self.alreadyOn : Self.invalidParameters)
        case .systemOff: return Answer(x0: 0, power: .off)
        case .systemReset, .systemReset2: return Answer(x0: 0, power: .reset)
        case .cpuSuspend, .cpuOff: return ret(Self.notSupported)
        }
    }
}
