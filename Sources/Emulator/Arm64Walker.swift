import KexecModel

/// The project's AArch64 MMU: the stage-1 translation of the EL1&0 regime as the architecture
/// defines it (VMSAv8-64), over tables in guest memory. Unicorn runs in UC_TLB_VIRTUAL mode and
/// calls this on TLB misses only.
///
/// Modelled: TTBR0_EL1 / TTBR1_EL1 selection by VA[55]; the VA range check against T0SZ / T1SZ
/// (top byte ignored for data accesses when TBI0 / TBI1 is set); 4 KiB, 16 KiB and 64 KiB granules
/// with their different TG0 / TG1 encodings; the start level from TxSZ and the granule; table,
/// block and page descriptors (bits[1:0]); blocks only at the levels the granule allows (4K: L1,
/// L2; 16K: L2; 64K: L2, and L1 on a CPU with 52-bit PARange); EPD0 / EPD1; output address size
/// from TCR_EL1.IPS capped at the CPU's physical address size; the access flag (TCR_EL1.HA = 0:
/// a clear AF faults); AP[2] and APTable[1] (read-only); PXN, PXNTable, WXN and the rule that a
/// region writable at EL0 never executes at EL1. Accesses are privileged (EL1) unless
/// `Control.unprivileged` (the CPU is at EL0): then AP[1] and APTable[0] must grant EL0 access,
/// and UXN / UXNTable (bits 54 / 60) with WXN forbid fetches instead of PXN (Arm ARM DDI 0487,
/// D8.4 "Memory access control"; the kernel's user pages: PTE_USER, PTE_UXN, PTE_PXN in
/// arch/arm64/include/asm/pgtable-hwdef.h, v6.1).
///
/// 52 bits, 64 KiB granule (FEAT_LPA): on a CPU whose PARange is 52 bits, output and table
/// addresses carry PA[51:48] in descriptor bits [15:12] and TTBR bits [5:2] and the level-1 block
/// exists, whatever TCR_EL1.IPS says (the Arm ARM gates these on AArch64.PAMax(), the implemented
/// PARange; IPS only bounds the output address, an address above it is an address size fault);
/// TxSZ may go down to 12 (52-bit VAs, FEAT_LVA).
///
/// 52 bits, 4 KiB and 16 KiB granules (FEAT_LPA2): with TCR_EL1.DS (bit 59) set on a CPU whose
/// ID_AA64MMFR0_EL1.TGran4 / TGran16 says the granule implements 52-bit addresses (`Arm64MMFR0`;
/// otherwise DS is RES0 and ignored): descriptor bits [49:n] hold OA[49:n] and bits [9:8] hold
/// OA[51:50] (the shareability field moves to TCR_EL1.SH0/SH1), TTBR bits [5:2] hold BADDR[51:48];
/// TxSZ may go down to 12; a 4 KiB walk over more than 48 VA bits starts at level -1 (VA[51:48],
/// up to 16 entries); blocks are also legal at level 0 (4K, 512 GiB) and level 1 (16K, 64 GiB);
/// without DS an IPS of 52 bits reads as 48 for these granules. The kernel's side of the same
/// layout: PTE_ADDR_HIGH = 0x3 << 8, PTE_ADDR_HIGH_SHIFT 42, PHYS_TO_PTE_ADDR_MASK = bits [49:8]
/// (arch/arm64/include/asm/pgtable-hwdef.h), TCR_DS = bit 59, phys_to_ttbr() folding PA[51:48]
/// into TTBR[5:2] (asm/pgtable.h), the level -1 fault codes (arch/arm64/mm/fault.c), all read in
/// 6.12.117; Arm ARM DDI 0487 D8 ("VMSAv8-64 translation table format descriptors", "Translation
/// table walk", FEAT_LPA2). LPA2 stage 1 arrived in the kernel in v6.9.
///
/// Out-of-range TxSZ values (CONSTRAINED UNPREDICTABLE) are clamped to the nearest legal value, and
/// reserved TGn encodings select the 4 KiB granule, as QEMU does.
public enum Arm64Walker {
    public typealias Access = MemoryAccess

    public struct Control: Sendable, Equatable {
        public var sctlr: UInt64
        public var tcr: UInt64
        public var ttbr0: UInt64
        public var ttbr1: UInt64
        public var mair: UInt64
        /// The CPU's ID_AA64MMFR0_EL1: PARange (48 bits unless told otherwise; 52 enables the
        /// 64 KiB FEAT_LPA / FEAT_LVA forms) and the TGran4 / TGran16 FEAT_LPA2 fields.
        public var mmfr0: Arm64MMFR0
        /// The access comes from EL0 (PSTATE.EL = 0): the unprivileged permission checks apply.
        public var unprivileged = false

        /// A CPU of `physicalAddressBits` without FEAT_LPA2, or the one `mmfr0` describes.
        public init(
            sctlr: UInt64, tcr: UInt64, ttbr0: UInt64, ttbr1: UInt64, mair: UInt64 = 0, physicalAddressBits: Int = 48,
            mmfr0: Arm64MMFR0? = nil
        ) {
            self.sctlr = sctlr
            self.tcr = tcr
            self.ttbr0 = ttbr0
            self.ttbr1 = ttbr1
            self.mair = mair
            self.mmfr0 = mmfr0 ?? Arm64MMFR0(physicalAddressBits: physicalAddressBits)
        }

        /// The CPU's physical address size (ID_AA64MMFR0_EL1.PARange).
        public var physicalAddressBits: Int {
            get { mmfr0.physicalAddressBits }
            set { mmfr0.physicalAddressBits = newValue }
        }

        /// TCR_EL1.DS in effect for `granule`: set, and the CPU implements FEAT_LPA2 for it.
        public func lpa2(_ granule: Granule) -> Bool { tcr & (1 << 59) != 0 && mmfr0.lpa2(granule) }

        /// SCTLR_EL1.M.
        public var mmuEnabled: Bool { sctlr & 1 != 0 }
        /// SCTLR_EL1.WXN: writable regions never execute.
        public var wxn: Bool { sctlr & (1 << 19) != 0 }
        /// TCR_EL1.HA: hardware sets the access flag instead of faulting.
        public var hardwareAccessFlag: Bool { tcr & (1 << 39) != 0 }

        /// Output address size: TCR_EL1.IPS capped at the physical address size.
        public var outputAddressBits: Int {
            let ips = [32, 36, 40, 42, 44, 48, 52]
            let i = Int((tcr >> 32) & 7)
            let bits = i < ips.count ? ips[i] : physicalAddressBits
            return min(bits, physicalAddressBits)
        }

        /// TTBRn's walk parameters: granule, TxSZ (clamped), EPDn, TBIn.
        public func regime(_ n: Int) -> (granule: Granule, txsz: Int, disabled: Bool, tbi: Bool) {
            let granule = n == 0 ? Granule(tg0: tcr >> 14) : Granule(tg1: tcr >> 30)
            let raw = Int(n == 0 ? tcr & 0x3f : (tcr >> 16) & 0x3f)
            let minTxSZ = (granule == .g64k && physicalAddressBits >= 52) || lpa2(granule) ? 12 : 16
            let txsz = min(max(raw, minTxSZ), 39)
            let disabled = tcr & (n == 0 ? 1 << 7 : 1 << 23) != 0
            let tbi = tcr & (n == 0 ? 1 << 37 : 1 << 38) != 0
            return (granule, txsz, disabled, tbi)
        }
    }

    public struct Translation: Sendable, Equatable {
        /// Physical address of the byte at the VA.
        public var pa: PhysAddr
        /// Size of the block or page that maps it (the granule when the MMU is off).
        public var leafSize: ByteCount
        /// Level of the leaf descriptor (L0..L3); nil when the MMU is off (flat).
        public var level: Arm64TableLevel?
        /// Which TTBR the walk used; nil when the MMU is off.
        public var ttbr: Int?
        /// The granule the walk used (from TCR_EL1.TG0 / TG1); nil when the MMU is off.
        public var granule: Granule?
        /// Writable at EL1.
        public var writable: Bool
        /// Executable at EL1.
        public var executable: Bool
        /// AttrIndx[2:0] of the leaf (index into MAIR_EL1).
        public var attrIndx: Int
        /// The leaf descriptor (0 when the MMU is off).
        public var descriptor: UInt64
    }

    public enum Reason: String, Sendable {
        /// Translation fault: bit 0 of the descriptor is clear.
        case invalid = "invalid descriptor"
        /// Translation fault: a block where the granule allows none, or bits[1:0] = 0b01 at level 3.
        case reservedDescriptor = "reserved descriptor type at this level"
        /// Translation fault: the VA is outside both TTBR ranges (TxSZ).
        case outOfRange = "address outside the TTBR0/TTBR1 ranges"
        /// Translation fault: TCR_EL1.EPDn forbids walks through this TTBR.
        case walkDisabled = "walks disabled by TCR_EL1.EPD"
        /// Address size fault: a table or output address beyond the output address size.
        case addressSize = "address beyond the output address size"
        /// Access flag fault: AF clear and TCR_EL1.HA clear.
        case accessFlag = "access flag clear"
        /// Permission fault: a write to a read-only (AP[2] or APTable[1]) region.
        case readOnly = "write to a read-only page"
        /// Permission fault: an instruction fetch from a privileged-execute-never region.
        case executeNever = "fetch from an execute-never page"
        /// Permission fault: an EL0 access to a page without EL0 access (AP[1] or APTable[0]).
        case privilegedOnly = "EL0 access to a privileged-only page"
        /// Synchronous external abort on the walk: the table page is not in guest memory.
        case tableNotBacked = "table page not in guest memory"
    }

    public struct Fault: Sendable, Equatable, Error, CustomStringConvertible {
        public var va: VirtAddr
        /// Level the fault is reported at.
        public var level: Arm64TableLevel
        public var reason: Reason
        /// TTBR the walk used (nil: the MMU is off).
        public var ttbr: Int?
        /// Index of the descriptor in its table (-1 when no descriptor was read).
        public var index: Int
        public var entryAddress: PhysAddr?
        public var entry: UInt64

        public init(
            va: VirtAddr, level: Arm64TableLevel, reason: Reason, ttbr: Int?, index: Int = -1,
            entryAddress: PhysAddr? = nil,
            entry: UInt64 = 0
        ) {
            self.va = va
            self.level = level
            self.reason = reason
            self.ttbr = ttbr
            self.index = index
            self.entryAddress = entryAddress
            self.entry = entry
        }

        /// The ESR_ELx DFSC / IFSC code the CPU would report (level -1: FEAT_LPA2's own codes,
        /// arch/arm64/mm/fault.c fault_info, read in 6.12.117).
        public var statusCode: UInt8 {
            if level == .lMinus1 {
                switch reason {
                case .addressSize: return 0x29
                case .tableNotBacked: return 0x13
                default: return 0x2b  // translation fault; a leaf never sits at level -1
                }
            }
            let l = UInt8(level.rawValue)
            switch reason {
            case .addressSize: return l
            case .invalid, .reservedDescriptor, .outOfRange, .walkDisabled: return 0x04 | l
            case .accessFlag: return 0x08 | l
            case .readOnly, .executeNever, .privilegedOnly: return 0x0c | l
            case .tableNotBacked: return 0x14 | l
            }
        }

        public var description: String {
            let at = entryAddress.map { " (entry \(hex(entry)) at \($0), index \(index))" } ?? ""
            return "level \(level.rawValue) fault at \(va): \(reason.rawValue)\(at)"
        }
    }

    /// Walks for `va`; `read64` reads guest physical memory (nil: not backed).
    public static func translate(
        _ va: VirtAddr, access: Access, control c: Control, read64: (PhysAddr) -> UInt64?
    ) -> Result<Translation, Fault> {
        guard c.mmuEnabled else {
            // Flat: PA = VA, within the physical address size.
            if c.physicalAddressBits < 64 && va.raw >> UInt64(c.physicalAddressBits) != 0 {
                return .failure(Fault(va: va, level: .l0, reason: .addressSize, ttbr: nil))
            }
            return .success(
                Translation(
                    pa: PhysAddr(va.raw), leafSize: ByteCount(1 << 12), level: nil, ttbr: nil, granule: nil,
                    writable: true, executable: true, attrIndx: 0, descriptor: 0))
        }
        let select = Int((va.raw >> 55) & 1)
        let r = c.regime(select)
        let inputBits = 64 - r.txsz
        // Range check: bits [top:inputBits] must all equal VA[55].
        let topBit = r.tbi && access != .fetch ? 55 : 63
        let width = UInt64(topBit + 1 - inputBits)
        let field = (va.raw >> UInt64(inputBits)) & ((1 << width) - 1)
        guard field == (select == 1 ? (1 << width) - 1 : 0) else {
            return .failure(Fault(va: va, level: .l0, reason: .outOfRange, ttbr: select))
        }
        if r.disabled { return .failure(Fault(va: va, level: .l0, reason: .walkDisabled, ttbr: select)) }

        let g = r.granule
        let lpa = g == .g64k && c.physicalAddressBits >= 52
        let ds = c.lpa2(g)
        // Without DS, a 4K / 16K walk has 48-bit output addresses whatever IPS says.
        let oaBits = g == .g64k || ds ? c.outputAddressBits : min(c.outputAddressBits, 48)
        let start = g.startLevel(vaBits: inputBits)
        let ttbr = select == 1 ? c.ttbr1 : c.ttbr0
        // BADDR: TTBR[47:1] (and PA[51:48] in TTBR[5:2] under FEAT_LPA / LPA2), aligned to the
        // start table.
        var table = ttbr & 0x0000_ffff_ffff_fffe
        if lpa || ds { table = (ttbr & 0x0000_ffff_ffff_ffc0) | (((ttbr >> 2) & 0xf) << 48) }
        let startEntries = UInt64(1) << UInt64(inputBits - g.levelShift(start))
        table &= ~(max(startEntries * 8, 64) - 1)
        if table >> UInt64(oaBits) != 0 {
            return .failure(Fault(va: va, level: .l0, reason: .addressSize, ttbr: select))
        }

        // Address bits [47:shift] of a descriptor, plus [51:48] from bits [15:12] under FEAT_LPA;
        // under DS bits [49:shift] plus [51:50] from bits [9:8].
        func address(_ e: UInt64, from shift: Int) -> UInt64 {
            let low = ~((UInt64(1) << UInt64(shift)) - 1)
            if ds { return (e & 0x0003_ffff_ffff_ffff & low) | (((e >> 8) & 3) << 50) }
            var a = e & 0x0000_ffff_ffff_ffff & low
            if lpa { a = (a & ~UInt64(0xf000)) | (((e >> 12) & 0xf) << 48) }
            return a
        }

        var readOnlyTable = false
        var el0NoAccessTable = false
        var pxnTable = false
        var uxnTable = false
        for level in start...3 {
            let lvl = Arm64TableLevel(rawValue: level) ?? .lMinus1
            let shift = g.levelShift(level)
            let bits = level == start ? inputBits - shift : g.stride
            let index = Int((va.raw >> UInt64(shift)) & ((1 << UInt64(bits)) - 1))
            let ea = PhysAddr(table + UInt64(index) * 8)
            guard let e = read64(ea) else {
                return .failure(
                    Fault(va: va, level: lvl, reason: .tableNotBacked, ttbr: select, index: index, entryAddress: ea))
            }
            func fault(_ reason: Reason) -> Result<Translation, Fault> {
                .failure(
                    Fault(va: va, level: lvl, reason: reason, ttbr: select, index: index, entryAddress: ea, entry: e))
            }
            if e & 1 == 0 { return fault(.invalid) }
            let typeBit = e & 2 != 0
            if level < 3 && typeBit {
                // Table descriptor.
                let next = address(e, from: g.shift)
                if next >> UInt64(oaBits) != 0 { return fault(.addressSize) }
                pxnTable = pxnTable || e & (1 << 59) != 0
                uxnTable = uxnTable || e & (1 << 60) != 0
                el0NoAccessTable = el0NoAccessTable || e & (1 << 61) != 0
                readOnlyTable = readOnlyTable || e & (1 << 62) != 0
                table = next
                continue
            }
            if level == 3 && !typeBit { return fault(.reservedDescriptor) }
            if level < 3 && !g.blockAllowed(level: level, outputBits52: lpa, lpa2: ds) {
                return fault(.reservedDescriptor)
            }
            // Block (level < 3) or page (level 3).
            let size = UInt64(1) << UInt64(shift)
            let oa = address(e, from: shift)
            if oa >> UInt64(oaBits) != 0 { return fault(.addressSize) }
            if e & (1 << 10) == 0 && !c.hardwareAccessFlag { return fault(.accessFlag) }
            let ap = (e >> 6) & 3
            let readOnly = ap & 2 != 0 || readOnlyTable
            let el0Writable = ap == 1 && !el0NoAccessTable && !readOnlyTable
            var pxn = e & (1 << 53) != 0 || pxnTable || el0Writable || (c.wxn && !readOnly)
            if c.unprivileged {
                if ap & 1 == 0 || el0NoAccessTable { return fault(.privilegedOnly) }
                pxn = e & (1 << 54) != 0 || uxnTable || (c.wxn && !readOnly)
            }
            if access == .write && readOnly { return fault(.readOnly) }
            if access == .fetch && pxn { return fault(.executeNever) }
            return .success(
                Translation(
                    pa: PhysAddr(oa | (va.raw & (size - 1))), leafSize: ByteCount(size), level: lvl, ttbr: select,
                    granule: g, writable: !readOnly, executable: !pxn, attrIndx: Int((e >> 2) & 7), descriptor: e))
        }
        fatalError("unreachable: level 3 always ends the walk")
    }
}

extension Granule {
    /// Decodes TCR_EL1.TG0 (its low 2 bits): 0b00 4k, 0b01 64k, 0b10 16k; the reserved 0b11
    /// selects 4k, as QEMU does.
    public init(tg0 v: UInt64) {
        switch v & 3 {
        case 1: self = .g64k
        case 2: self = .g16k
        default: self = .g4k
        }
    }
    /// Decodes TCR_EL1.TG1 (its low 2 bits): 0b01 16k, 0b10 4k, 0b11 64k; the reserved 0b00
    /// selects 4k, as QEMU does.
    public init(tg1 v: UInt64) {
        switch v & 3 {
        case 1: self = .g16k
        case 3: self = .g64k
        default: self = .g4k
        }
    }
}
