import KexecModel

/// The project's x86_64 MMU: walks 4- or 5-level tables in guest memory the way the CPU does.
/// Unicorn runs in UC_TLB_VIRTUAL mode and calls this on every TLB miss (never per access).
public enum X86Walker {
    public struct Control: Sendable, Equatable {
        public var cr0: UInt64
        public var cr3: UInt64
        public var cr4: UInt64
        public var efer: UInt64
        /// The access is made at CPL 3: every level must allow user access (U/S, bit 2), and a
        /// read-only page is read-only whatever CR0.WP says (Intel SDM vol. 3A 4.6.1).
        public var user: Bool
        public init(cr0: UInt64, cr3: UInt64, cr4: UInt64, efer: UInt64, user: Bool = false) {
            self.cr0 = cr0
            self.cr3 = cr3
            self.cr4 = cr4
            self.efer = efer
            self.user = user
        }
        public var paging: Bool { cr0 & (1 << 31) != 0 }
        public var la57: Bool { cr4 & (1 << 12) != 0 }
        public var writeProtect: Bool { cr0 & (1 << 16) != 0 }
        public var nxe: Bool { efer & (1 << 11) != 0 }
    }

    public typealias Access = MemoryAccess

    public struct Translation: Sendable, Equatable {
        /// Physical address of the byte at the VA.
        public var pa: PhysAddr
        /// Size of the leaf that maps it (4 KiB, 2 MiB, 1 GiB), and its level (nil with paging off).
        public var leafSize: ByteCount
        public var leafLevel: X86TableLevel?
        public var writable: Bool
        public var executable: Bool
        /// Where the leaf entry sits (nil with paging off).
        public var leafEntryAddress: PhysAddr? = nil
    }

    public enum Reason: String, Sendable {
        case notPresent = "not present"
        case reservedBit = "reserved bit set"
        case nonCanonical = "non-canonical address"
        case tableNotBacked = "table page not in guest memory"
        case writeProtected = "write to a read-only page"
        case noExecute = "fetch from a no-execute page"
        case supervisorOnly = "user-mode access to a supervisor page"
    }

    public struct Fault: Sendable, Equatable, Error {
        public var va: VirtAddr
        /// Level whose entry stopped the walk (nil for a non-canonical address: no entry was read).
        public var level: X86TableLevel?
        public var index: Int
        public var entryAddress: PhysAddr?
        public var entry: UInt64
        public var reason: Reason
    }

    static let addrMask: UInt64 = 0x000f_ffff_ffff_f000

    /// Walks for `va`; `read64` reads guest physical memory (nil: not backed).
    public static func translate(
        _ va: VirtAddr, access: Access, control c: Control, read64: (PhysAddr) -> UInt64?
    ) -> Result<Translation, Fault> {
        guard c.paging else {
            return .success(
                Translation(
                    pa: PhysAddr(va.raw), leafSize: ByteCount(1 << 12), leafLevel: nil, writable: true,
                    executable: true))
        }
        let levels = c.la57 ? 5 : 4
        let names = X86TableLevel.walk(levels: levels)
        let vaBits = levels == 5 ? 57 : 48
        // Canonical: bits 63..vaBits-1 all equal.
        let top = va.raw >> UInt64(vaBits - 1)
        let allOnes = UInt64.max >> UInt64(vaBits - 1)
        guard top == 0 || top == allOnes else {
            return .failure(Fault(va: va, level: nil, index: 0, entryAddress: nil, entry: 0, reason: .nonCanonical))
        }
        var table = c.cr3 & addrMask
        var writable = true
        var executable = true
        var userAllowed = true
        for (i, name) in names.enumerated() {
            let shift = UInt64(12 + 9 * (levels - 1 - i))
            let index = Int((va.raw >> shift) & 0x1ff)
            let ea = PhysAddr(table + UInt64(index) * 8)
            guard let e = read64(ea) else {
                return .failure(
                    Fault(va: va, level: name, index: index, entryAddress: ea, entry: 0, reason: .tableNotBacked))
            }
            func fault(_ r: Reason) -> Result<Translation, Fault> {
                .failure(Fault(va: va, level: name, index: index, entryAddress: ea, entry: e, reason: r))
            }
            if e & 1 == 0 { return fault(.notPresent) }
            if !c.nxe && e & (1 << 63) != 0 { return fault(.reservedBit) }
            writable = writable && e & 2 != 0
            userAllowed = userAllowed && e & 4 != 0
            executable = executable && (!c.nxe || e & (1 << 63) == 0)
            let isLeafLevel = name == .pte
            let ps = e & (1 << 7) != 0
            if (name == .pgd || name == .p4d) && ps { return fault(.reservedBit) }
            if isLeafLevel || ps {
                let size = UInt64(1) << shift
                if !isLeafLevel {
                    // Bits 12 .. log2(size)-1 other than PAT (bit 12) must be zero in a large leaf.
                    let reservedLow = (size - 1) & ~UInt64(0x1fff)
                    if e & reservedLow != 0 { return fault(.reservedBit) }
                }
                let base = e & addrMask & ~(size - 1)
                let pa = base | (va.raw & (size - 1))
                if c.user && !userAllowed { return fault(.supervisorOnly) }
                let w = writable || (!c.writeProtect && !c.user)
                if access == .write && !w { return fault(.writeProtected) }
                if access == .fetch && !executable { return fault(.noExecute) }
                return .success(
                    Translation(
                        pa: PhysAddr(pa), leafSize: ByteCount(size), leafLevel: name, writable: w,
                        executable: executable, leafEntryAddress: ea))
            }
            table = e & addrMask
        }
        fatalError("unreachable: the pte level always ends the walk")
    }
}
