/// The first kernel's early memblock reservations a boot log names, for the crashkernel= model:
///
/// - `RAMDISK: [mem 0x…-0x…]` (arch/x86/kernel/setup.c reserve_initrd): the initrd, reserved by
///   early_reserve_initrd before anything is allocated.
/// - `NODE_DATA(N) allocated [mem 0x…-0x…]` (arch/x86/mm/numa.c alloc_node_data, 6.1): pg_data_t,
///   allocated in initmem_init, before reserve_crashkernel.
/// - `Command line: …`: `log_buf_len=` sizes setup_log_buf's three allocations
///   (FirstKernelReservations.logBuffer); `nokaslr` puts the image at LOAD_PHYSICAL_ADDR (16 MiB).
/// - `Memory: …K/…K available (NK kernel code, NK rwdata, NK rodata, NK init, NK bss, …)`: the
///   image's size, when its place is known (nokaslr). An iomem `Kernel code` … `Kernel bss` span
///   gives place and size exactly and wins.
enum EarlyReservationLines {
    /// CONFIG_PHYSICAL_START (Debian's and the default): where a kernel without KASLR runs.
    static let loadPhysicalAddr = PhysAddr(0x100_0000)

    struct Found {
        var reservations = FirstKernelReservations.none
        var lines: [ImportedLine] = []
        var notes: [String] = []
    }

    static func scan(_ lines: [LogLine], firstKernel: [AddressRange]) throws(ImportError) -> Found {
        var f = Found()
        var nokaslr = false
        var imageSize: ByteCount?
        var imageLine: ImportedLine?
        for l in lines {
            let body = l.body
            let line = ImportedLine(number: l.number, text: String(l.raw))
            if body.hasPrefix("RAMDISK: ") {
                var c = LineCursor(body.dropFirst("RAMDISK: ".count))
                switch c.memBracket() {
                case .success(let r):
                    if !f.reservations.ranges.contains(r) {
                        f.reservations.ranges.append(r)
                        f.lines.append(line)
                    }
                case .failure(let p): throw ImportError(l, p.message)
                }
            } else if body.hasPrefix("NODE_DATA("), let at = body.range(of: ") allocated ") {
                var c = LineCursor(body[at.upperBound...])
                switch c.memBracket() {
                case .success(let r):
                    f.reservations.ranges.append(r)
                    f.lines.append(line)
                case .failure(let p): throw ImportError(l, p.message)
                }
            } else if body.hasPrefix("Command line: ") {
                let cmd = String(body.dropFirst("Command line: ".count))
                nokaslr = cmd.split(separator: " ").contains("nokaslr")
                if let len = FirstKernelReservations.logBufLen(commandLine: cmd) {
                    f.reservations.allocations = FirstKernelReservations.logBuffer(length: len)
                    if !f.reservations.allocations.isEmpty { f.lines.append(line) }
                }
            } else if body.hasPrefix("Memory: "), let open = body.firstIndex(of: "(") {
                var total: UInt64 = 0
                for part in body[body.index(after: open)...].split(separator: ",") {
                    let p = part.drop { $0 == " " }
                    guard let k = p.firstIndex(of: "K") else { continue }
                    let what = p[p.index(after: k)...].drop { $0 == " " }
                    guard ["kernel code", "rwdata", "rodata", "init", "bss"].contains(where: { what.hasPrefix($0) }),
                        let n = UInt64(p[..<k]), n < 1 << 40
                    else { continue }
                    total += n << 10
                }
                if total > 0 {
                    imageSize = ByteCount(total)
                    imageLine = line
                }
            }
        }
        if let first = firstKernel.first, let last = firstKernel.max(by: { $0.last < $1.last }),
            let image = AddressRange(first: first.first, last: last.last)
        {
            f.reservations.ranges.append(image)
        } else if nokaslr, let size = imageSize, let image = AddressRange(start: loadPhysicalAddr, size: size) {
            f.reservations.ranges.append(image)
            if let imageLine { f.lines.append(imageLine) }
            f.notes.append(
                "the running kernel's image is taken as \(image) (nokaslr: LOAD_PHYSICAL_ADDR, the size the "
                    + "Memory: line sums; the brk area after it is not counted)")
        }
        f.lines.sort { $0.number < $1.number }
        return f
    }
}
