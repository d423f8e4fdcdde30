import CUnicorn

/// The x86 follow machine's time base: one deterministic count of nanoseconds shared by the TSC
/// (1 GHz: RDTSC reads the count), the 8254 PIT (I8254Pit) and whatever else keeps time. The
/// same idea as the arm64 side's Arm64VirtualTimer: time moves only by what the guest does —
///   - `ticksPerTSCRead` per RDTSC / RDTSCP (a TSC busy-wait advances time by reading it);
///   - `nanosecondsPerIO` per access to a timekeeping port (an ISA bus cycle takes about 1 µs:
///     the kernel's own outb_p delay through port 0x80 counts on that);
///   - `nanosecondsPerBlock` per translated block executed once `startBlockClock` ran: a guest
///     spinning on memory (the jiffies wait of calibrate_delay) sees time pass. The block hook is
///     C (CUnicorn ks_hook_add_x86_clock) and calls back into Swift only at the deadline or, when
///     an interrupt waits for RFLAGS.IF, at the first block that starts with IF set;
///   - a jump to the deadline when the CPU halts (`fastForward`).
/// Nothing depends on wall time, and no run is resumed after Unicorn's own time-out stop.
public final class X86VirtualClock {
    public let nanosecondsPerBlock: UInt64
    public let ticksPerTSCRead: UInt64
    public let nanosecondsPerIO: UInt64
    let state: UnsafeMutablePointer<ks_x86_clock>
    /// Called from the block hook when `now` reached `deadline`, or IF rose while `watchIF`.
    public var onDue: () -> Void = {}
    /// Called when a device changed its next event (the owner recomputes `deadline`).
    public var onScheduleChange: () -> Void = {}
    public private(set) var tscReads: UInt64 = 0
    public private(set) var blockClockRunning = false

    public init(nanosecondsPerBlock: UInt64 = 16, ticksPerTSCRead: UInt64 = 64, nanosecondsPerIO: UInt64 = 1000) {
        self.nanosecondsPerBlock = nanosecondsPerBlock
        self.ticksPerTSCRead = ticksPerTSCRead
        self.nanosecondsPerIO = nanosecondsPerIO
        state = .allocate(capacity: 1)
        state.initialize(
            to: ks_x86_clock(
                now: 0, per_block: nanosecondsPerBlock, deadline: .max, blocks: 0, watch_if: 0, cb: nil, ud: nil))
    }
    deinit { state.deallocate() }

    /// Nanoseconds since the follow run began.
    public var now: UInt64 {
        get { state.pointee.now }
        set { state.pointee.now = newValue }
    }
    /// The clock time at which the block hook calls `onDue` (`.max`: never).
    public var deadline: UInt64 {
        get { state.pointee.deadline }
        set { state.pointee.deadline = newValue }
    }
    /// When set, the block hook calls `onDue` at the first block starting with RFLAGS.IF = 1.
    public var watchIF: Bool {
        get { state.pointee.watch_if != 0 }
        set { state.pointee.watch_if = newValue ? 1 : 0 }
    }
    /// Blocks the block hook saw.
    public var blocks: UInt64 { state.pointee.blocks }

    /// RDTSC: the count, which then moves on.
    public func readTSC() -> UInt64 {
        let v = now
        now &+= ticksPerTSCRead
        tscReads &+= 1
        return v
    }
    /// An I/O access to a timekeeping device.
    public func ioAccess() { now &+= nanosecondsPerIO }
    func scheduleChanged() { onScheduleChange() }
    /// HLT: the count jumps to the deadline (false when none is set: nothing will wake the CPU).
    public func fastForward() -> Bool {
        guard deadline != .max else { return false }
        if deadline > now { now = deadline }
        return true
    }
    func markBlockClockRunning() { blockClockRunning = true }
}

extension Engine where Arch == X86 {
    /// RDTSC and RDTSCP answer from `clock` (RDTSCP's ECX, TSC_AUX, reads 0: CPU 0).
    public func attachTSC(_ clock: X86VirtualClock) throws(EmulatorError) {
        mmioOwners.append(clock)
        let ud = Unmanaged.passUnretained(clock).toOpaque()
        for p in [Int32(0), 1] {
            var hh: uc_hook = 0
            let cb: uc_cb_insn_cpuid_t =
                p == 0
                ? { uc, ud in
                    let c = Unmanaged<X86VirtualClock>.fromOpaque(ud!).takeUnretainedValue()
                    writeTSC(uc, c.readTSC(), aux: false)
                    return 1
                }
                : { uc, ud in
                    let c = Unmanaged<X86VirtualClock>.fromOpaque(ud!).takeUnretainedValue()
                    writeTSC(uc, c.readTSC(), aux: true)
                    return 1
                }
            try check(ks_hook_add_x86_rdtsc(uc, &hh, p, cb, ud), "uc_hook_add(UC_HOOK_INSN RDTSC)")
            addHook(hh)
        }
    }

    /// Starts moving `clock` by executed blocks (a C block hook; drops translated blocks so that
    /// code translated before sees it). Call between runs, never from a hook.
    public func startBlockClock(_ clock: X86VirtualClock) throws(EmulatorError) {
        guard !clock.blockClockRunning else { return }
        clock.state.pointee.ud = Unmanaged.passUnretained(clock).toOpaque()
        clock.state.pointee.cb = { _, _, ud in
            Unmanaged<X86VirtualClock>.fromOpaque(ud!).takeUnretainedValue().onDue()
        }
        var hh: uc_hook = 0
        try check(ks_hook_add_x86_clock(uc, &hh, clock.state), "uc_hook_add(UC_HOOK_BLOCK clock)")
        addHook(hh)
        clock.markBlockClockRunning()
        flushTranslations()
    }
}

private func writeTSC(_ uc: OpaquePointer?, _ v: UInt64, aux: Bool) {
    var lo = v & 0xffff_ffff
    var hi = v >> 32
    _ = uc_reg_write(uc, Int32(UC_X86_REG_RAX.rawValue), &lo)
    _ = uc_reg_write(uc, Int32(UC_X86_REG_RDX.rawValue), &hi)
    if aux {
        var zero: UInt64 = 0
        _ = uc_reg_write(uc, Int32(UC_X86_REG_RCX.rawValue), &zero)
    }
}
