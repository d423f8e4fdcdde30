import Emulator
import KexecModel

/// A hand-assembled arm64 guest on the follow platform, as the platform and timer tests run it:
/// 8 KiB of code at 0x40000000 (MMU off), PL011 at 0x9000000, PSCI over HVC.
struct Arm64FollowGuest {
    static let base: UInt64 = 0x4000_0000
    let memory = GuestMemory()

    init() throws {
        try memory.add(start: PhysAddr(Self.base), size: .kib(8), label: "code")
    }

    /// Puts instruction words (little endian) at `at`.
    func put(_ at: UInt64, _ words: [UInt32]) -> Bool {
        memory.write(PhysAddr(at), words.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) } })
    }

    /// Runs from 0x40000000 with VBAR_EL1 = `vbar` until the platform ends the run (power-off, a
    /// recursive exception) or 10 s pass; the engine, the platform and the last stop.
    func run(vbar: UInt64, console: ConsoleLog = ConsoleLog()) throws -> (
        engine: Arm64Engine, machine: Arm64FollowPlatform, stop: StopReason<Arm64.Fault>
    ) {
        let e = try Arm64Engine(memory: memory)
        let machine = try Arm64FollowPlatform(
            engine: e, uartBase: PhysAddr(0x900_0000), conduit: .hvc, console: console)
        e.write(.vbarEL1, vbar)
        let stop = e.follow(
            from: VirtAddr(Self.base), until: VirtAddr(0xffff_ffff_ffff_fffc), timeoutMicros: 10_000_000
        ) { machine.handle($0, engine: e) }
        return (e, machine, stop)
    }
}
