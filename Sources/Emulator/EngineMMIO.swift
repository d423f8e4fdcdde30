import CUnicorn
import KexecModel

/// A device register window: what the guest reads at an offset, and what it writes.
///
/// Contract: `read` returns the value of the `size`-byte register access at `offset` from the
/// window's start; `write` receives the value the guest stored. Both run on the engine's thread,
/// inside the emulation (they may call `EngineCore.requestStop`).
public protocol MMIODevice: AnyObject {
    func read(offset: UInt64, size: Int) -> UInt64
    func write(offset: UInt64, size: Int, value: UInt64)
}

/// Carries a device through Unicorn's C callbacks.
final class MMIOBox {
    let device: MMIODevice
    init(_ d: MMIODevice) { device = d }
}

extension EngineCore {
    /// Puts `device` at the physical window `range` (4 KiB aligned, no guest memory there): every
    /// guest access inside it calls the device (Unicorn's uc_mmio_map), and the project MMU's
    /// fill hook maps the window's pages like memory (readable and writable, never executable).
    /// Memory hooks are not used: a hook over RAM sends every store down the slow path.
    public func mapMMIO(_ range: AddressRange, device: MMIODevice) throws(EmulatorError) {
        guard range.first.isAligned(kexecPageSize), range.size.raw % kexecPageSize.raw == 0 else {
            throw .memory("MMIO window \(range) is not 4 KiB aligned")
        }
        if let b = memory.blocks.first(where: { $0.range.overlaps(range) }) {
            throw .memory("MMIO window \(range) overlaps guest memory \(b.label) \(b.range)")
        }
        let box = MMIOBox(device)
        let ud = Unmanaged.passUnretained(box).toOpaque()
        try check(
            uc_mmio_map(
                uc, range.first.raw, range.size.raw,
                { _, offset, size, ud in
                    Unmanaged<MMIOBox>.fromOpaque(ud!).takeUnretainedValue().device.read(
                        offset: offset, size: Int(size))
                }, ud,
                { _, offset, size, value, ud in
                    Unmanaged<MMIOBox>.fromOpaque(ud!).takeUnretainedValue().device.write(
                        offset: offset, size: Int(size), value: value)
                }, ud), "uc_mmio_map(\(range))")
        mmioOwners.append(box)
        mmioRanges.append(range)
    }
}
