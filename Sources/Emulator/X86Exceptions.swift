import CUnicorn
import KexecModel

/// Delivering an exception through the guest's IDT as a 64-bit CPU does (Intel SDM vol. 3A,
/// 6.14 "Exception and interrupt handling in 64-bit mode"; 6.15 for the error codes): read the
/// 16-byte gate at IDTR.base + 16 × vector (present, type 0xE interrupt or 0xF trap), push SS,
/// RSP, RFLAGS, CS, RIP and the error code on the stack aligned down to 16 bytes, clear TF, NT, RF
/// (and IF for an interrupt gate), continue at the gate's offset. Done by the host because Unicorn
/// 2.1.4 calls the interrupt hook instead, and a fault of the project's walker stops the engine
/// without raising anything (shared/ENGINE-NOTES.md).
///
/// From CPL 3 to a CPL 0 handler the frame goes on TSS.RSP0's stack with the user SS and RSP, and
/// SS becomes NULL (6.14.2; X86PrivilegeChange.swift). Not modelled: IST stacks (a gate with
/// IST ≠ 0 is refused: `X86DeliveryProblem`), 32-bit and real-mode delivery.
public enum X86DeliveryProblem: Error, Sendable, Equatable, CustomStringConvertible {
    case beyondLimit(vector: UInt8, limit: UInt32)
    case gateUnreadable(vector: UInt8, address: VirtAddr)
    case gateNotPresent(vector: UInt8, gate: String)
    case istNotModelled(vector: UInt8, ist: Int)
    case stackUnwritable(vector: UInt8, address: VirtAddr)

    public var description: String {
        switch self {
        case .beyondLimit(let v, let l): return "vector \(v) is beyond the IDT limit \(hex(UInt64(l)))"
        case .gateUnreadable(let v, let a): return "the IDT gate of vector \(v) at \(hex(a.raw)) does not translate"
        case .gateNotPresent(let v, let g): return "the IDT gate of vector \(v) is not a present 64-bit gate (\(g))"
        case .istNotModelled(let v, let i): return "the gate of vector \(v) switches to IST stack \(i) (not modelled)"
        case .stackUnwritable(let v, let a):
            return "the exception frame of vector \(v) at \(hex(a.raw)) cannot be written"
        }
    }
}

extension Engine where Arch == X86 {
    /// IDTR (base, limit).
    public var idtr: (base: UInt64, limit: UInt32) {
        var m = uc_x86_mmr()
        _ = uc_reg_read(uc, Int32(UC_X86_REG_IDTR.rawValue), &m)
        return (m.base, m.limit)
    }

    private func readVirtual(_ va: UInt64, count: Int) -> [UInt8]? {
        guard case .success(let t) = translateSupervisor(VirtAddr(va), access: .read) else { return nil }
        return memory.read(t.pa, count: count)
    }

    private func writeVirtual64(_ va: UInt64, _ v: UInt64) -> Bool {
        guard case .success(let t) = translateSupervisor(VirtAddr(va), access: .write) else { return false }
        return memory.write64(t.pa, v)
    }

    /// Delivers `vector` (with `errorCode` pushed when the exception has one) as if the
    /// instruction at `returnRIP` raised it; returns the handler's address.
    public func deliver(vector: UInt8, errorCode: UInt64?, returnRIP: UInt64) -> Result<VirtAddr, X86DeliveryProblem> {
        let (base, limit) = idtr
        let off = UInt64(vector) * 16
        guard off + 15 <= UInt64(limit) else { return .failure(.beyondLimit(vector: vector, limit: limit)) }
        guard let g = readVirtual(base &+ off, count: 16) else {
            return .failure(.gateUnreadable(vector: vector, address: VirtAddr(base &+ off)))
        }
        func le(_ i: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(g[i + $1]) << (8 * UInt64($1)) } }
        let attr = g[5]
        let type = attr & 0x1f
        guard attr & 0x80 != 0, type == 0x0e || type == 0x0f else {
            return .failure(.gateNotPresent(vector: vector, gate: g.map { String(format: "%02x", $0) }.joined()))
        }
        let ist = Int(g[4] & 7)
        guard ist == 0 else { return .failure(.istNotModelled(vector: vector, ist: ist)) }
        let handler = le(0, 2) | le(6, 2) << 16 | le(8, 4) << 32
        let selector = le(2, 2)
        let ss = readRegister(Int32(UC_X86_REG_SS.rawValue))
        let cs = read(.cs)
        let rflags = read(.rflags)
        // From CPL 3 to a CPL 0 handler: the stack is TSS.RSP0's (X86PrivilegeChange.swift).
        let fromUser = cs & 3 == 3 && selector & 3 == 0
        let oldRSP = read(.rsp)
        var sp = oldRSP & ~0xf
        if fromUser {
            guard let rsp0 = tssRSP0 else { return .failure(.stackUnwritable(vector: vector, address: VirtAddr(0))) }
            sp = rsp0 & ~0xf
            // The frame is written at CPL 0 (the kernel stack is a supervisor page).
            guard enterKernelMode(cs: selector, ss: 0) else {
                return .failure(.gateNotPresent(vector: vector, gate: "CS \(hex(selector)) could not be loaded"))
            }
        }
        var frame = [ss, oldRSP, rflags, cs, returnRIP]
        if let e = errorCode { frame.append(e) }
        for v in frame {
            sp &-= 8
            guard writeVirtual64(sp, v) else {
                return .failure(.stackUnwritable(vector: vector, address: VirtAddr(sp)))
            }
        }
        write(.rsp, sp)
        var flags = rflags & ~UInt64(1 << 8 | 1 << 14 | 1 << 16)
        if type == 0x0e { flags &= ~UInt64(1 << 9) }
        write(.rflags, flags)
        if selector != read(.cs) { write(.cs, selector) }
        write(.rip, handler)
        return .success(VirtAddr(handler))
    }
}
