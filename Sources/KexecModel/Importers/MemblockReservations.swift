/// The memblock reservations an arm64 boot log names, which kexec_file_load's hole search never
/// uses (kexec_walk_memblock walks free memblock ranges only):
///
/// ```
/// Reserved memory: created CMA memory pool at 0x00000000f7000000, size 64 MiB   (kernel/dma/contiguous.c rmem_cma_setup)
/// Reserved memory: created DMA memory pool at 0x0000000030000000, size 4 MiB    (kernel/dma/coherent.c rmem_dma_setup)
/// cma: Reserved 64 MiB at 0x00000000fbc00000 on node -1                         (mm/cma.c cma_declare_contiguous_nid)
/// memblock_reserve: [0x0000000040210000-0x000000004224ffff] paging_init+0x…    (memblock=debug: the kernel image, its initrd, …)
/// ```
///
/// The sizes are in `%lu MiB` (the CMA and DMA pool lines) or `%lu MiB` / `%lu KiB` (cma: lines).
struct MemblockReservations {
    private(set) var ranges: [AddressRange] = []
    private(set) var notes: [String] = []

    /// Takes a line if it names a reservation; false for any other line. A line of the right shape
    /// with a malformed address or size is an error.
    mutating func take(_ l: LogLine) throws(ImportError) -> Bool {
        let body = l.body
        for prefix in ["Reserved memory: created CMA memory pool at ", "Reserved memory: created DMA memory pool at "] {
            guard body.hasPrefix(prefix) else { continue }
            var c = LineCursor(body.dropFirst(prefix.count))
            let at = try address(&c, l)
            guard c.skip(", size ") else { throw ImportError(l, "expected \", size N MiB\" after the address") }
            try add(at, try size(&c, l), l)
            return true
        }
        if body.hasPrefix("cma: Reserved ") {
            var c = LineCursor(body.dropFirst("cma: Reserved ".count))
            let n = try size(&c, l)
            guard c.skip(" at ") else { throw ImportError(l, "expected \" at 0x…\" after the size") }
            try add(try address(&c, l), n, l)
            return true
        }
        if body.hasPrefix("memblock_reserve: ") {
            var c = LineCursor(body.dropFirst("memblock_reserve: ".count))
            guard c.skip("[") else { return false }
            switch c.inclusiveRange("the reserved range") {
            case .success(let r):
                ranges.append(r)
                notes.append("line \(l.number): memblock reserved \(r)")
            case .failure(let p): throw ImportError(l, p.message)
            }
            return true
        }
        return false
    }

    private func address(_ c: inout LineCursor, _ l: LogLine) throws(ImportError) -> UInt64 {
        switch c.hex() {
        case .success(let v): return v
        case .failure(.missing): throw ImportError(l, "expected an address 0x…")
        case .failure(.overflow(let d)): throw ImportError(l, "address \(d) does not fit in 64 bits")
        }
    }

    /// `N MiB` or `N KiB`, in bytes.
    private func size(_ c: inout LineCursor, _ l: LogLine) throws(ImportError) -> UInt64 {
        guard case .success(let n) = c.decimal() else { throw ImportError(l, "expected a size \"N MiB\"") }
        let shift: UInt64
        if c.skip(" MiB") {
            shift = 20
        } else if c.skip(" KiB") {
            shift = 10
        } else {
            throw ImportError(l, "expected \" MiB\" or \" KiB\" after the size")
        }
        guard n <= UInt64.max >> shift else { throw ImportError(l, "size \(n) does not fit in 64 bits") }
        return n << shift
    }

    private mutating func add(_ at: UInt64, _ size: UInt64, _ l: LogLine) throws(ImportError) {
        guard size > 0, let r = AddressRange(start: PhysAddr(at), size: ByteCount(size)) else {
            throw ImportError(l, "the reserved range is empty or wraps past 0xffffffffffffffff")
        }
        ranges.append(r)
        notes.append("line \(l.number): memblock reserved \(r)")
    }
}
