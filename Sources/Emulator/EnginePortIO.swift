import CUnicorn

/// An x86 I/O port device: what IN reads at a port, what OUT writes.
///
/// Contract: called on the engine's thread while the guest runs, for every IN / OUT instruction
/// (`size` 1, 2 or 4 bytes); ports the device does not claim read all ones (an empty ISA bus) and
/// ignore writes.
public protocol PortDevice: AnyObject {
    /// The ports the device answers.
    var ports: ClosedRange<UInt16> { get }
    func portIn(_ port: UInt16, size: Int) -> UInt32
    func portOut(_ port: UInt16, size: Int, value: UInt32)
}

/// The devices on an engine's I/O ports, reached through Unicorn's IN / OUT instruction hooks.
final class PortBus {
    var devices: [PortDevice] = []
    func device(_ port: UInt32) -> PortDevice? {
        devices.first { $0.ports.contains(UInt16(truncatingIfNeeded: port)) }
    }
}

extension Engine where Arch == X86 {
    /// Puts `device` on the I/O ports it names (x86 IN / OUT instruction hooks).
    public func attachPorts(_ device: PortDevice) throws(EmulatorError) {
        let bus: PortBus
        if let b = mmioOwners.compactMap({ $0 as? PortBus }).first {
            bus = b
        } else {
            bus = PortBus()
            mmioOwners.append(bus)
            let ud = Unmanaged.passUnretained(bus).toOpaque()
            var hh: uc_hook = 0
            try check(
                ks_hook_add_x86_in(
                    uc, &hh,
                    { _, port, size, ud in
                        let bus = Unmanaged<PortBus>.fromOpaque(ud!).takeUnretainedValue()
                        guard let d = bus.device(port) else { return size == 1 ? 0xff : size == 2 ? 0xffff : ~0 }
                        return d.portIn(UInt16(truncatingIfNeeded: port), size: Int(size))
                    }, ud), "uc_hook_add(UC_HOOK_INSN IN)")
            try check(
                ks_hook_add_x86_out(
                    uc, &hh,
                    { _, port, size, value, ud in
                        let bus = Unmanaged<PortBus>.fromOpaque(ud!).takeUnretainedValue()
                        bus.device(port)?.portOut(UInt16(truncatingIfNeeded: port), size: Int(size), value: value)
                    }, ud), "uc_hook_add(UC_HOOK_INSN OUT)")
        }
        bus.devices.append(device)
    }
}
