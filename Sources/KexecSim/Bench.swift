import Crypto
import Foundation
import KexecModel

/// `kexec-sim bench`: a fixed set of runs in one process, timed per phase, against the host's
/// own memcpy and sha256 on the same bytes. Figures only; tests never check wall-clock time.
public enum Bench {
    public struct Case: Sendable {
        public var name: String
        public var yaml: String
        /// Count guest instructions (a per-instruction hook, ~10× slower): only on small runs.
        public var count: Bool
    }

    public struct Result: Sendable {
        public var name: String
        public var arch: String
        public var payloadBytes: UInt64
        public var ramBytes: UInt64
        public var phases: [(String, Double)]
        public var totalSeconds: Double
        public var guestInstructions: UInt64?
        /// True when guestInstructions is scaled from the counted calibration run.
        public var instructionsEstimated: Bool
        public var guestMBps: Double
        public var peakRSS: UInt64
        public var verdict: String
    }

    public struct Host: Sendable {
        public var memcpyMBps: Double
        public var sha256MBps: Double
    }

    static func region(_ first: UInt64, _ last: UInt64, _ type: String) -> String {
        "    - { range: \(hex16(first))-\(hex16(last)), type: \(type) }\n"
    }

    /// A machine with `ram` bytes: 640 KiB low, RAM to 2 GiB (or less), a reserved PCI hole up to
    /// 4 GiB, the rest above 4 GiB.
    static func machineYAML(name: String, ram: UInt64, crash: String? = nil, extraRegions: String? = nil) -> String {
        var y = "machine:\n  name: \(name)\n  arch: x86_64\n  memory:\n"
        if let extra = extraRegions {
            y += extra
        } else {
            y += region(0, 0x9_fbff, "usable") + region(0x9_fc00, 0xf_ffff, "reserved")
            let low = min(ram, 0x8000_0000)
            y += region(0x10_0000, low - 1, "usable")
            if ram > low {
                y += region(0x8000_0000, 0x800f_ffff, "acpi") + region(0xfe00_0000, 0xffff_ffff, "reserved")
                y += region(0x1_0000_0000, 0x1_0000_0000 + (ram - low) - 1, "usable")
            }
        }
        if let c = crash { y += "  crashkernel_ranges: [\(c)]\n" }
        return y
    }

    static func scenarioYAML(
        _ name: String, machine: String, kernel: String, initrd: String, type: String = "normal",
        policy: String = "ram-2m"
    ) -> String {
        "name: \(name)\n" + machine
            + "kexec:\n  type: \(type)\n  kernel: { size: \(kernel) }\n  initrd: { size: \(initrd) }\n"
            + "policy: { identity_map: \(policy) }\nexpect: { verdict: landed }\n"
    }

    static func arm64YAML(relocation: String) -> String {
        "name: arm64 10MiB \(relocation)\nmachine:\n  name: arm64 virt 4 GiB\n  arch: arm64\n  memory:\n"
            + region(0x4000_0000, 0x1_3fff_ffff, "usable")
            + "kexec:\n  kernel: { size: 9MiB }\n  initrd: { size: 1MiB }\n"
            + "policy: { relocation: \(relocation), linear_map: { granule: 4k, mappings: blocks } }\nexpect: { verdict: landed }\n"
    }

    public static var cases: [Case] {
        let gib: UInt64 = 1 << 30
        let tib: UInt64 = 1 << 40
        var map4096 = ""
        // 4096 entries: 2048 usable 4 MiB ranges above 16 MiB, each followed by a 4 KiB reserved page.
        map4096 +=
            region(0, 0x9_fbff, "usable") + region(0x9_fc00, 0xf_ffff, "reserved")
            + region(0x10_0000, 0xff_ffff, "usable")
        var a: UInt64 = 0x100_0000
        for _ in 0..<2046 {
            map4096 += region(a, a + 0x3f_efff, "usable") + region(a + 0x3f_f000, a + 0x3f_ffff, "reserved")
            a += 0x40_0000
        }
        map4096 += region(a, a + 0x3fff_ffff, "usable")
        return [
            Case(
                name: "x86_64-10MiB-payload-1GiB-machine",
                yaml: scenarioYAML(
                    "10MiB on 1GiB", machine: machineYAML(name: "1 GiB", ram: gib), kernel: "9MiB", initrd: "1MiB"),
                count: false),
            Case(
                name: "x86_64-64MiB-payload-4GiB-machine",
                yaml: scenarioYAML(
                    "64MiB on 4GiB", machine: machineYAML(name: "4 GiB", ram: 4 * gib), kernel: "16MiB", initrd: "48MiB"
                ), count: false),
            Case(
                name: "x86_64-512MiB-payload-4GiB-machine",
                yaml: scenarioYAML(
                    "512MiB on 4GiB", machine: machineYAML(name: "4 GiB", ram: 4 * gib), kernel: "32MiB",
                    initrd: "480MiB"), count: false),
            Case(
                name: "x86_64-kdump-24TiB-machine-ram-2m",
                yaml: scenarioYAML(
                    "kdump 24TiB", machine: machineYAML(name: "24 TiB", ram: 24 * tib, crash: "0x40000000-0x5fffffff"),
                    kernel: "9MiB", initrd: "1MiB", type: "crash", policy: "ram-2m"),
                count: false),
            Case(
                name: "x86_64-4096-entry-map",
                yaml: scenarioYAML(
                    "4096-entry map", machine: machineYAML(name: "4096 entries", ram: 8 * gib, extraRegions: map4096),
                    kernel: "9MiB", initrd: "1MiB"), count: false),
            Case(
                name: "arm64-10MiB-payload-4GiB-machine-mmu-off", yaml: arm64YAML(relocation: "mmu-off"), count: false),
            Case(name: "arm64-10MiB-payload-4GiB-machine-mmu-on", yaml: arm64YAML(relocation: "mmu-on"), count: false),
            Case(
                name: "x86_64-10MiB-payload-1GiB-machine-ram-1g",
                yaml: scenarioYAML(
                    "flat 1GiB", machine: machineYAML(name: "1 GiB", ram: gib), kernel: "9MiB", initrd: "1MiB",
                    policy: "ram-1g"), count: false),
            Case(
                name: "x86_64-10MiB-payload-1TiB-machine-ram-1g",
                yaml: scenarioYAML(
                    "flat 1TiB", machine: machineYAML(name: "1 TiB", ram: tib), kernel: "9MiB", initrd: "1MiB",
                    policy: "ram-1g"), count: false),
            Case(
                name: "x86_64-10MiB-payload-24TiB-machine-ram-1g",
                yaml: scenarioYAML(
                    "flat 24TiB", machine: machineYAML(name: "24 TiB", ram: 24 * tib), kernel: "9MiB", initrd: "1MiB",
                    policy: "ram-1g"), count: false),
        ]
    }

    /// Peak resident set since the last reset (Linux: VmHWM; reset by writing 5 to clear_refs).
    /// `kexec-sim bench` runs each case in a fresh child process, so the peak is that run's alone.
    static func resetPeakRSS() {
        if let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") {
            h.write(Data("5".utf8))
            try? h.close()
        }
    }
    static func peakRSS() -> UInt64 {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { UInt64($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    /// Instructions per payload byte of relocation and of purgatory, counted on a small run
    /// (counting hooks every instruction and slows the engine ~50×, so timed runs never count).
    public static func calibrate() throws -> (relocation: Double, purgatory: Double, counted: UInt64) {
        let y = scenarioYAML(
            "calibration", machine: machineYAML(name: "1 GiB", ram: 1 << 30), kernel: "768KiB", initrd: "256KiB")
        let sc = try FixtureDecoder.decode(yaml: y, file: "calibration", baseDirectory: ".")
        let r = try Runner.run(sc, options: RunOptions(countInstructions: true))
        let b = Double(r.stats.payloadBytes)
        let ri = r.stats.relocationInstructions ?? 0
        let pi = r.stats.purgatoryInstructions ?? 0
        return (Double(ri) / b, Double(pi) / b, ri + pi)
    }

    public static func runCase(_ c: Case, perByte: (relocation: Double, purgatory: Double)? = nil) throws -> Result {
        resetPeakRSS()
        let t0 = Date()
        let sc = try FixtureDecoder.decode(yaml: c.yaml, file: c.name, baseDirectory: ".")
        let parse = Date().timeIntervalSince(t0)
        let r = try Runner.run(sc, options: RunOptions())
        let s = r.stats
        // The calibration counts the x86_64 routines; arm64 runs get no estimate.
        let instr =
            sc.machine.arch == .x86_64
            ? perByte.map { UInt64(($0.relocation + $0.purgatory) * Double(s.payloadBytes)) } : nil
        let emu = s.relocationSeconds + s.purgatorySeconds
        return Result(
            name: c.name, arch: sc.machine.arch.rawValue, payloadBytes: s.payloadBytes,
            ramBytes: sc.machine.memory.totalRAM.raw,
            phases: [
                ("parse", parse), ("plan", s.planSeconds - s.tablesSeconds), ("tables", s.tablesSeconds),
                ("guest_memory_setup", s.setupSeconds), ("relocation", s.relocationSeconds),
                ("purgatory", s.purgatorySeconds),
                ("verification", s.verifySeconds),
            ],
            totalSeconds: parse + s.totalSeconds, guestInstructions: instr, instructionsEstimated: instr != nil,
            guestMBps: emu > 0 ? Double(s.payloadBytes) / emu / 1e6 : 0, peakRSS: peakRSS(),
            verdict: r.verdict.kind.rawValue)
    }

    /// Host memcpy and sha256 (swift-crypto) over `bytes` bytes, best of three.
    public static func host(bytes: Int = 64 << 20) -> Host {
        let src = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        defer {
            src.deallocate()
            dst.deallocate()
        }
        let payload = Payload.synthetic(name: "kernel", size: bytes)
        payload.withUnsafeBytes { src.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
        memset(dst, 0, bytes)
        var bestCopy = Double.infinity
        var bestHash = Double.infinity
        for _ in 0..<3 {
            var t = Date()
            memcpy(dst, src, bytes)
            bestCopy = min(bestCopy, Date().timeIntervalSince(t))
            t = Date()
            let d = SHA256.hash(data: UnsafeRawBufferPointer(start: src, count: bytes))
            bestHash = min(bestHash, Date().timeIntervalSince(t))
            _ = d
        }
        return Host(memcpyMBps: Double(bytes) / bestCopy / 1e6, sha256MBps: Double(bytes) / bestHash / 1e6)
    }
}
