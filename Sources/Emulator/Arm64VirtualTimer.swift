import KexecModel

/// The EL1 virtual timer of the Arm generic timer with a deterministic clock kept by the host
/// (Arm ARM DDI 0487, D11.2 "The AArch64 view of the Generic Timer": CNTVCT_EL0, CNTV_CTL_EL0,
/// CNTV_CVAL_EL0, CNTV_TVAL_EL0; CNTVOFF is 0, so CNTPCT_EL0 reads the same count).
///
/// The kernel side read for each register (drivers/clocksource/arm_arch_timer.c and
/// arch/arm64/include/asm/arch_timer.h, v6.1.192): the counter is read with `isb; mrs cntvct_el0`
/// (sched_clock, the clocksource, udelay); `set_next_event` reads CNTV_CTL, then writes CNTV_CVAL
/// = now + delta, then CNTV_CTL with ENABLE set and IMASK clear; the interrupt handler reads CTL,
/// and on ISTATUS sets IMASK; the timer is the virtual one (arch_timer_select_ppi: no EL2), whose
/// interrupt is PPI 11 (GIC ID 27). CNTFRQ_EL0 is left to the CPU model (62.5 MHz in Unicorn's
/// Cortex-A72): the DTB's timer node names no clock-frequency, so the kernel reads it.
///
/// The clock: Unicorn's own CNTVCT follows host time, which makes every run different. Here the
/// count moves only by what the guest does: `ticksPerRead` per read of the counter (a busy-wait
/// such as udelay advances time by reading it), a jump to the deadline when the CPU waits for an
/// interrupt (WFI), and `advance(by:)` from the host for a stretch of guest execution in which
/// nothing read the counter (see Arm64FollowPlatform).
public final class Arm64VirtualTimer {
    /// CNTV_CTL_EL0 bits: ENABLE, IMASK, ISTATUS (include/clocksource/arm_arch_timer.h, v6.1).
    public static let enable: UInt64 = 1
    public static let interruptMask: UInt64 = 2
    public static let interruptStatus: UInt64 = 4
    /// The virtual timer's PPI as a GIC interrupt ID (PPI 11 = ID 16 + 11).
    public static let interruptID = 27

    /// Counter ticks per read of CNTVCT_EL0.
    public let ticksPerRead: UInt64
    /// The virtual count now.
    public private(set) var count: UInt64 = 0
    /// ENABLE and IMASK as the guest last wrote them.
    public private(set) var control: UInt64 = 0
    public private(set) var compareValue: UInt64 = 0
    /// Reads of the counter so far.
    public private(set) var reads: UInt64 = 0

    public init(ticksPerRead: UInt64 = 64) { self.ticksPerRead = ticksPerRead }

    /// ISTATUS: enabled and the count has reached CVAL (D11.2.4: the condition holds whatever IMASK).
    public var conditionMet: Bool { control & Self.enable != 0 && count >= compareValue }
    /// The timer's interrupt line: the condition holds and IMASK is clear.
    public var interruptAsserted: Bool { conditionMet && control & Self.interruptMask == 0 }
    /// The count at which the line will rise, when it is armed and not yet up.
    public var deadline: UInt64? {
        control & (Self.enable | Self.interruptMask) == Self.enable && compareValue > count ? compareValue : nil
    }

    /// MRS CNTVCT_EL0 / CNTPCT_EL0: the count, which then moves on by `ticksPerRead`.
    public func readCounter() -> UInt64 {
        let v = count
        count &+= ticksPerRead
        reads &+= 1
        return v
    }
    /// MRS CNTV_CTL_EL0.
    public var controlRegister: UInt64 { control | (conditionMet ? Self.interruptStatus : 0) }
    /// MRS CNTV_TVAL_EL0: CVAL − count as a signed 32-bit value, sign-extended.
    public var timerValue: UInt64 {
        UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: compareValue &- count)))
    }

    /// MSR CNTV_CTL_EL0 (ISTATUS is read-only).
    public func writeControl(_ v: UInt64) { control = v & (Self.enable | Self.interruptMask) }
    /// MSR CNTV_CVAL_EL0.
    public func writeCompare(_ v: UInt64) { compareValue = v }
    /// MSR CNTV_TVAL_EL0: CVAL = count + sign-extended value.
    public func writeTimerValue(_ v: UInt64) {
        compareValue = count &+ UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: v)))
    }

    /// Moves the count on by `ticks` (never backwards).
    public func advance(by ticks: UInt64) { count &+= ticks }
    /// WFI: the count jumps to the deadline when one is armed; false when nothing will ever wake
    /// the CPU through this timer.
    public func fastForwardToDeadline() -> Bool {
        if interruptAsserted { return true }
        guard let d = deadline else { return false }
        count = d
        return true
    }
}
