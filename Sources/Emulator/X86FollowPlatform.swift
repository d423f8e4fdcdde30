import KexecModel

/// The machine an x86_64 kernel finds after kexec when the run follows it: a 16550 UART on port
/// 0x3f8 collecting the early console (`earlyprintk=serial,ttyS0,115200`), the local APIC at
/// 0xfee00000, and every exception the
/// engine stops at delivered through the guest's own IDT (X86Exceptions.swift): page faults of the
/// project's walker with CR2 and the error code (Intel SDM vol. 3A 4.7), the engine's own
/// exceptions with error code 0. CPUID is the machine's CPU description where it gives one
/// (X86Cpuid.swift), else the engine's default model; MSRs are the engine's (Unicorn 2.1.4 cannot hook
/// RDMSR: QEMU's TCG reads an MSR it does not know as 0, where hardware raises #GP).
///
/// A fault whose delivery fails becomes a double fault (vector 8); one whose double fault fails
/// too is a triple fault: the CPU resets (`tripleFault`), as the machine would reboot into its
/// firmware. The same handler faulting again before it ran an instruction is also a triple
/// fault's path (the stack of nested #PFs ends in #DF on hardware): the run ends there.
public final class X86FollowPlatform {
    public let console: ConsoleLog
    public let uart: Uart8250
    public private(set) var delivered: [String: Int] = [:]
    public private(set) var log: [String] = []
    /// The exceptions that ended in a reset: the original, then why each delivery failed.
    public private(set) var tripleFault: [String]?
    /// Called with each fetch fill: lets the follower see the kernel reach a code address.
    private var lastHandler: VirtAddr?

    /// CPUID answers, when the machine describes its CPU.
    public let cpuid: X86Cpuid?

    /// The boot CPU's local APIC at 0xfee00000 (LocalApic.swift).
    public let apic = LocalApic()

    public init(engine: X86Engine, console: ConsoleLog, cpu: X86CpuModel? = nil) throws(EmulatorError) {
        self.console = console
        uart = Uart8250(console: console)
        try engine.attachPorts(uart)
        if let window = AddressRange(start: PhysAddr(LocalApic.defaultBase), size: kexecPageSize) {
            try engine.mapMMIO(window, device: apic)
        }
        cpuid = cpu.map(X86Cpuid.init(model:))
        if let c = cpuid { try engine.attachCpuid(c) }
    }

    public func handle(_ stop: StopReason<X86Walker.Fault>, engine e: X86Engine) -> FollowDecision {
        switch stop {
        case .translationFault(let f, let access, let pc):
            if f.reason == .nonCanonical { return raise(13, errorCode: 0, pc: pc, what: "#GP non-canonical", e) }
            var code: UInt64 = 0
            if f.reason != .notPresent && f.reason != .tableNotBacked { code |= 1 }
            if access == .write { code |= 2 }
            if f.reason == .reservedBit { code |= 8 }
            if access == .fetch { code |= 16 }
            let cr2 = access == .fetch && pc.raw & ~0xfff == f.va.raw & ~0xfff ? pc.raw : f.va.raw
            e.write(.cr2, cr2)
            return raise(14, errorCode: code, pc: pc, what: "#PF at \(hex(cr2))", e)
        case .cpuException(let pc, let intno?, _) where intno < 32:
            let withCode: Set<UInt32> = [8, 10, 11, 12, 13, 14, 17]
            return raise(
                UInt8(intno), errorCode: withCode.contains(intno) ? 0 : nil, pc: pc, what: X86.exceptionName(intno), e)
        default:
            return .end
        }
    }

    private func raise(_ vector: UInt8, errorCode: UInt64?, pc: VirtAddr, what: String, _ e: X86Engine)
        -> FollowDecision
    {
        var chain = ["\(what) (vector \(vector)) at RIP \(hex(pc.raw))"]
        if let h = lastHandler, h == pc {
            chain.append("the handler at \(hex(h.raw)) faulted before running an instruction")
            tripleFault = chain
            return .end
        }
        switch e.deliver(vector: vector, errorCode: errorCode, returnRIP: pc.raw) {
        case .success(let h):
            count(X86.exceptionName(UInt32(vector)), what, pc, h)
            lastHandler = h
            return .resume(h)
        case .failure(let p):
            chain.append(p.description + " → #DF")
            switch e.deliver(vector: 8, errorCode: 0, returnRIP: pc.raw) {
            case .success(let h):
                count(X86.exceptionName(8), what, pc, h)
                lastHandler = h
                return .resume(h)
            case .failure(let p2):
                chain.append(p2.description + " → triple fault, the CPU resets")
                tripleFault = chain
                return .end
            }
        }
    }

    private func count(_ name: String, _ what: String, _ pc: VirtAddr, _ h: VirtAddr) {
        delivered[name, default: 0] += 1
        if log.count < 16 { log.append("\(what) (RIP \(hex(pc.raw))) → \(hex(h.raw))") }
    }
}
