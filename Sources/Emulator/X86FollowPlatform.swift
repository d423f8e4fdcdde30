import KexecModel

/// The machine an x86_64 kernel finds after kexec when the run follows it: a 16550 UART on port
/// 0x3f8 collecting the early console (`earlyprintk=serial,ttyS0,115200`), the local APIC at
/// 0xfee00000, the 8259A pair (I8259Pic) and the 8254 PIT with port 0x61 (I8254Pit) on a
/// deterministic virtual clock shared with RDTSC (X86VirtualClock), IRQs taken through the IDT at
/// a block boundary with RFLAGS.IF set, SYSCALL and CPL 3 → 0 delivery (X86PrivilegeChange), HLT
/// (IF set: the clock jumps to the next deadline; IF clear: the run ends, `halted`), the ports no
/// device claims recorded (PortRecorder), and every exception the
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
    /// The ports no device model claims, as the guest tried them (PortRecorder.swift).
    public let unclaimedPorts = PortRecorder()
    /// The time base of the TSC and the PIT (X86VirtualClock.swift).
    public let clock = X86VirtualClock()
    /// The 8259A pair and the 8254 PIT whose channel 0 drives IRQ0 (I8259Pic, I8254Pit).
    public let pic = I8259Pic()
    public let pit: I8254Pit
    /// External interrupts delivered through the IDT, by vector.
    public private(set) var interrupts: [UInt8: Int] = [:]
    static let irqStop = "irq", clockStop = "block clock", syscallStop = "syscall"
    /// HLTs executed, and where the CPU halted for good (IF clear, or no timer armed).
    public private(set) var waits = 0
    public private(set) var halted: VirtAddr?
    /// SYSCALLs performed for the guest (Unicorn runs hooks instead: X86PrivilegeChange.swift).
    public private(set) var syscalls = 0
    private unowned let engine: X86Engine

    public init(engine: X86Engine, console: ConsoleLog, cpu: X86CpuModel? = nil) throws(EmulatorError) {
        self.console = console
        self.engine = engine
        uart = Uart8250(console: console)
        pit = I8254Pit(clock: clock)
        try engine.attachPorts(uart)
        try engine.attachPorts(pic.masterPorts)
        try engine.attachPorts(pic.slavePorts)
        try engine.attachPorts(pit)
        try engine.attachPorts(I8254PortB(pit: pit))
        try engine.attachPorts(unclaimedPorts)
        try engine.attachTSC(clock)
        try engine.stopAtSyscalls(name: Self.syscallStop)
        if let window = AddressRange(start: PhysAddr(LocalApic.defaultBase), size: kexecPageSize) {
            try engine.mapMMIO(window, device: apic)
        }
        cpuid = cpu.map(X86Cpuid.init(model:))
        if let c = cpuid { try engine.attachCpuid(c) }
        pit.onIRQ0 = { [unowned pic] in pic.raise(0) }
        pic.onChange = { [unowned self] in self.reschedule() }
        clock.onScheduleChange = { [unowned self] in self.reschedule() }
        clock.onDue = { [unowned self] in self.due() }
    }

    /// A device changed what it will do next: the block hook looks again at the next block when
    /// the PIC requests an interrupt now, else at the PIT's next IRQ0. The first time the PIT is
    /// programmed the run stops so the block clock can be installed between runs.
    private func reschedule() {
        if !clock.blockClockRunning {
            if pit.nextIRQ0 != nil { engine.requestStop(Self.clockStop) }
            return
        }
        clock.deadline = pic.interruptRequested ? clock.now : (pit.nextIRQ0 ?? .max)
    }

    /// From the block hook: raises the PIT's due edge, then stops the run to deliver when the
    /// PIC requests an interrupt and RFLAGS.IF is set, or watches for IF when it is clear.
    private func due() {
        pit.catchUp()
        if pic.interruptRequested {
            if engine.read(.rflags) & 0x200 != 0 {
                clock.watchIF = false
                engine.requestStop(Self.irqStop)
            } else {
                clock.watchIF = true
            }
        } else {
            clock.watchIF = false
        }
        clock.deadline = pit.nextIRQ0 ?? .max
    }

    /// At an instruction boundary with IF = 1: the INTA cycle, then delivery through the IDT
    /// (an interrupt gate, the 64-bit frame without an error code; Intel SDM vol. 3A 6.14).
    private func serviceInterrupt(at pc: VirtAddr, _ e: X86Engine) -> FollowDecision {
        guard e.read(.rflags) & 0x200 != 0, let vector = pic.acknowledge() else {
            reschedule()
            return .resume(pc)
        }
        reschedule()
        switch e.deliver(vector: vector, errorCode: nil, returnRIP: pc.raw) {
        case .success(let h):
            interrupts[vector, default: 0] += 1
            return .resume(h)
        case .failure(let p):
            tripleFault = ["external interrupt vector \(vector) at RIP \(hex(pc.raw)): \(p)"]
            return .end
        }
    }

    /// True when the byte before `pc` is HLT (F4): the engine's reasonless stop after it.
    private func followsHLT(_ pc: VirtAddr, _ e: X86Engine) -> Bool {
        guard case .success(let t) = e.translateSupervisor(VirtAddr(pc.raw &- 1), access: .read),
            let b = e.memory.read(t.pa, count: 1)
        else { return false }
        return b == [0xf4]
    }

    public func handle(_ stop: StopReason<X86Walker.Fault>, engine e: X86Engine) -> FollowDecision {
        switch stop {
        case .stoppedAt(let pc, Self.clockStop):
            do { try e.startBlockClock(clock) } catch { return .end }
            reschedule()
            return .resume(pc)
        case .stoppedAt(let pc, Self.syscallStop):
            guard e.read(.cs) & 3 == 3, let entry = e.performSyscall(next: pc.raw) else {
                tripleFault = ["SYSCALL at CPL \(e.read(.cs) & 3) before \(hex(pc.raw)) could not enter the kernel"]
                return .end
            }
            syscalls += 1
            return .resume(entry)
        case .stoppedAt(let pc, Self.irqStop):
            return serviceInterrupt(at: pc, e)
        case .cpuException(let pc, nil, _) where followsHLT(pc, e):
            // Unicorn 2.1.4 ends the run after HLT (EIP past it) with no reason given, and every
            // resume ends at once. IF = 0: nothing can wake the CPU (the ACPI-less power-off path:
            // kernel_halt → stop_this_cpu, arch/x86/kernel/process.c v6.1); IF = 1: the clock
            // jumps to the next timer deadline and the interrupt wakes it.
            waits += 1
            if e.read(.rflags) & 0x200 == 0 || !clock.fastForward() {
                halted = pc
                return .end
            }
            pit.catchUp()
            return serviceInterrupt(at: pc, e)
        case .translationFault(let f, let access, let pc):
            if f.reason == .nonCanonical { return raise(13, errorCode: 0, pc: pc, what: "#GP non-canonical", e) }
            var code: UInt64 = 0
            if f.reason != .notPresent && f.reason != .tableNotBacked { code |= 1 }
            if access == .write { code |= 2 }
            if e.read(.cs) & 3 == 3 { code |= 4 }
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
        let entry = "\(what) (RIP \(hex(pc.raw))) → \(hex(h.raw))"
        if log.count < 16 { log.append(entry) }
        recent.append(entry)
        if recent.count > 4 { recent.removeFirst() }
    }
    /// The last four exceptions delivered (the first sixteen are in `log`).
    public private(set) var recent: [String] = []
}
