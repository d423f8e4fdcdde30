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
/// region writable at EL0 never executes at EL1. Accesses are privileged (EL1).
///
/// 52 bits: on a CPU whose PARange is 52 bits (FEAT_LPA, `physicalAddressBits == 52`) with the
/// 64 KiB granule, output and table addresses carry PA[51:48] in descriptor bits [15:12] and TTBR
/// bits [5:2] and the level-1 block exists, whatever TCR_EL1.IPS says (the Arm ARM gates these on
/// AArch64.PAMax(), the implemented PARange; IPS only bounds the output address, an address above
/// it is an address size fault); TxSZ may go down to 12 (52-bit VAs, FEAT_LVA). The 4K / 16K 52-bit scheme (FEAT_LPA2,
/// TCR_EL1.DS) is not modelled: DS is ignored.
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
        /// The CPU's physical address size (ID_AA64MMFR0_EL1.PARange): 48 unless told otherwise;
        /// 52 enables the 64 KiB FEAT_LPA / FEAT_LVA forms.
        public var physicalAddressBits: Int

        public init(
            sctlr: UInt64, tcr: UInt64, ttbr0: UInt64, ttbr1: UInt64, mair: UInt64 = 0, physicalAddressBits: Int = 48
        ) {
            self.sctlr = sctlr
            self.tcr = tcr
            self.ttbr0 = ttbr0
            self.ttbr1 = ttbr1
            self.mair = mair
            self.physicalAddressBits = physicalAddressBits
        }

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
            let minTxSZ = granule == .g64k && physicalAddressBits >= 52 ? 12 : 16
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
        /// Level of the leaf descriptor (L1..L3); nil when the MMU is off (flat).
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

        /// The ESR_ELx DFSC / IFSC code the CPU would report.
        public var statusCode: UInt8 {
            let l = UInt8(level.rawValue)
            switch reason {
            case .addressSize: return l
            case .invalid, .reservedDescriptor, .outOfRange, .walkDisabled: return 0x04 | l
            case .accessFlag: return 0x08 | l
            case .readOnly, .executeNever: return 0x0c | l
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
        let oaBits = c.outputAddressBits
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
        let start = g.startLevel(vaBits: inputBits)
        let ttbr = select == 1 ? c.ttbr1 : c.ttbr0
        // BADDR: TTBR[47:1] (and PA[51:48] in TTBR[5:2] under FEAT_LPA), aligned to the start table.
        var table = ttbr & 0x0000_ffff_ffff_fffe
        if lpa { table = (ttbr & 0x0000_ffff_ffff_ffc0) | (((ttbr >> 2) & 0xf) << 48) }
        let startEntries = UInt64(1) << UInt64(inputBits - g.levelShift(start))
        table &= ~(max(startEntries * 8, 64) - 1)
        if table >> UInt64(oaBits) != 0 {
            return .failure(Fault(va: va, level: .l0, reason: .addressSize, ttbr: select))
        }

        // Address bits [47:shift] of a descriptor, plus [51:48] from bits [15:12] under FEAT_LPA.
        func address(_ e: UInt64, from shift: Int) -> UInt64 {
            var a = e & 0x0000_ffff_ffff_ffff & ~((UInt64(1) << UInt64(shift)) - 1)
            if lpa { a = (a & ~UInt64(0xf000)) | (((e >> 12) & 0xf) << 48) }
            return a
        }

        var readOnlyTable = false
        var el0NoAccessTable = false
        var pxnTable = false
        for level in start...3 {
            let lvl = Arm64TableLevel(rawValue: level) ?? .l3
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
                el0NoAccessTable = el0NoAccessTable || e & (1 << 61) != 0
                readOnlyTable = readOnlyTable || e & (1 << 62) != 0
                table = next
                continue
            }
            if level == 3 && !typeBit { return fault(.reservedDescriptor) }
            if level < 3 && !g.blockAllowed(level: level, outputBits52: lpa) { return fault(.reservedDescriptor) }
            // Block (level < 3) or page (level 3).
            let size = UInt64(1) << UInt64(shift)
            let oa = address(e, from: shift)
            if oa >> UInt64(oaBits) != 0 { return fault(.addressSize) }
            if e & (1 << 10) == 0 && !c.hardwareAccessFlag { return fault(.accessFlag) }
            let ap = (e >> 6) & 3
            let readOnly = ap & 2 != 0 || readOnlyTable
            let el0Writable = ap == 1 && !el0NoAccessTable && !readOnlyTable
            let pxn = e & (1 << 53) != 0 || pxnTable || el0Writable || (c.wxn && !readOnly)
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
