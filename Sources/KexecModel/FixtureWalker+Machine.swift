/// The `machine:` section: architecture, platform, the memory map (a list of regions, or an import
/// of a boot log), hazards, hotpluggable ranges and the crashkernel reservation.
///
/// Contract: a returned Machine has a memory map without overlaps; crashkernel ranges are the given
/// ones, else those crashkernel= reserves on this map, else those the imported log reports.
import Foundation
import Yams

private let machineKeys = [
    "name", "arch", "platform", "paging", "memory", "hazards", "hotpluggable", "crashkernel", "crashkernel_ranges",
    "efi_system_table", "efi", "mem_limit", "crashkernel_protection", "kernel", "memblock_reserved", "log_buf_len",
    "config", "dma_ranges_limit", "cpus", "id_aa64mmfr0", "acpi_rsdp", "efi_runtime_map", "cpu", "numa_nodes",
    "kho",
]
private let regionKeys = ["range", "start", "size", "type"]

extension Walker {

    func machine(_ node: Node, path: String) throws(InputError) -> Machine {
        let m = try mapping(node, path.isEmpty ? "document" : path, "a machine mapping")
        let f = try Fields(node, m, path: path, allowed: machineKeys, file: file)
        let arch = try choice(required(f, "arch"), f.field("arch"), Arch.allCases)
        let (memory, imported) = try memoryMap(required(f, "memory"), path: f.field("memory"))
        var machine = Machine(arch: arch, memory: memory, source: file)
        // The running kernel's version comes first: rules decoded below (the crashkernel
        // reservation) depend on it. Given wins; else the imported log's banner.
        if let n = f.value("kernel") {
            machine.kernel = try kernelVersion(n, f.field("kernel"))
        } else if let v = imported?.kernel {
            // Older than anything modelled: the oldest modelled version's rules are the nearest.
            machine.kernel = max(v, KernelVersion.oldestModelled)
        }
        if let n = f.value("name") { machine.name = try text(n, f.field("name"), allowEmpty: false) }
        if let n = f.value("platform") { machine.platform = try choice(n, f.field("platform"), Platform.allCases) }
        if let n = f.value("paging") { machine.paging = try choice(n, f.field("paging"), PagingLevels.allCases) }
        if let n = f.value("hazards") { machine.hazards = try ranges(n, f.field("hazards")) }
        if let n = f.value("hotpluggable") { machine.hotpluggable = try ranges(n, f.field("hotpluggable")) }
        if let n = f.value("config") { machine.config = try kernelConfig(n, f.field("config")) }
        if let n = f.value("id_aa64mmfr0") {
            machine.idAA64MMFR0 = Arm64MMFR0(raw: try number(n, f.field("id_aa64mmfr0")))
        }
        machine.laterReservations = imported?.memblockReserved ?? []
        if let n = f.value("cpus") {
            let c = try number(n, f.field("cpus"))
            guard c >= 1, c <= 8192 else {
                throw fail(n, f.field("cpus"), "cpus must be 1 to 8192 (NR_CPUS), found \(c)")
            }
            machine.cpus = Int(c)
        }
        if let n = f.value("acpi_rsdp") { machine.acpiRsdp = try address(n, f.field("acpi_rsdp")) }
        if let n = f.value("efi_runtime_map") {
            let c = try number(n, f.field("efi_runtime_map"))
            guard c <= 4096 else {
                throw fail(
                    n, f.field("efi_runtime_map"), "\(c) runtime map entries is more than a firmware has (at most 4096)"
                )
            }
            machine.efiRuntimeMapEntries = Int(c)
        }
        if let n = f.value("dma_ranges_limit") {
            machine.dmaRangesLimit = try address(n, f.field("dma_ranges_limit"))
        }
        if let n = f.value("crashkernel") {
            machine.crashkernel = try text(n, f.field("crashkernel"), allowEmpty: false)
        }
        // What the first kernel reserved before crashkernel=: given wins over an imported log's.
        machine.dmaZoneLimit = imported?.dmaZoneLimit
        machine.earlyReservations = imported?.earlyReservations ?? .none
        if let n = f.value("memblock_reserved") {
            machine.earlyReservations.ranges = try ranges(n, f.field("memblock_reserved"))
        }
        if let n = f.value("log_buf_len") {
            machine.earlyReservations.allocations = FirstKernelReservations.logBuffer(
                length: ByteCount(try size(n, f.field("log_buf_len"))))
        }
        // Crashkernel ranges: given ones win; else computed from crashkernel=; else what an imported log
        // says the kernel reserved.
        if let n = f.value("crashkernel_ranges") {
            machine.crashkernelRanges = try ranges(n, f.field("crashkernel_ranges"))
            machine.crashkernelOrigin = .given
        } else if let n = f.value("crashkernel"), machine.crashkernel != nil {
            machine.crashkernelRanges = try reserveCrashkernel(machine, node: n, field: f.field("crashkernel"))
            machine.crashkernelOrigin = .parameter
        } else if let imported, !imported.crashkernelRanges.isEmpty {
            machine.crashkernelRanges = imported.crashkernelRanges
            machine.crashkernelOrigin = .log
        }
        if let n = f.value("efi_system_table") { machine.efiSystemTable = try address(n, f.field("efi_system_table")) }
        if let n = f.value("efi") {
            if f.has("efi_system_table") {
                throw fail(n, f.field("efi"), "give the system table once: efi.system_table or efi_system_table")
            }
            (machine.efiSystemTable, machine.efiConfigTables, machine.efiRuntimeMapSize) = try efi(n, f.field("efi"))
        }
        if let n = f.value("cpu") {
            guard arch == .x86_64 else { throw fail(n, f.field("cpu"), "cpu describes an x86_64 CPU (CPUID)") }
            machine.cpu = try cpuModel(n, f.field("cpu"))
        }
        if let n = f.value("mem_limit") { machine.memLimit = ByteCount(try size(n, f.field("mem_limit"))) }
        if let n = f.value("crashkernel_protection") {
            machine.crashkernelProtection = try choice(
                n, f.field("crashkernel_protection"), CrashkernelProtection.allCases)
        }
        if let n = f.value("numa_nodes") { machine.numaNodes = try numaNodes(n, f.field("numa_nodes")) }
        if let n = f.value("kho") {
            machine.kho = try kho(n, key: f.key("kho"), path: f.field("kho"), machine: machine, imported: imported?.kho)
        }
        return machine
    }

    /// `efi: { system_table: A, config_tables: A, nr_tables: N, runtime_map_size: S }`: the EFI
    /// system table and its configuration table array (the system table's `tables` and `nr_tables`
    /// fields), and the size of the EFI runtime memory map (entries × descriptor size, e.g. 0x120
    /// for OVMF's 6 × 48). The array needs both keys; a count above 4096 is refused as not a real
    /// firmware's, and so is a runtime map above 1 MiB.
    func efi(_ node: Node, _ field: String) throws(InputError) -> (PhysAddr, EfiConfigTables?, ByteCount?) {
        let m = try mapping(node, field, "a mapping { system_table, config_tables, nr_tables, runtime_map_size }")
        let f = try Fields(
            node, m, path: field, allowed: ["system_table", "config_tables", "nr_tables", "runtime_map_size"],
            file: file)
        let systab = try address(required(f, "system_table"), f.field("system_table"))
        var runtimeMap: ByteCount?
        if let n = f.value("runtime_map_size") {
            let bytes = try size(n, f.field("runtime_map_size"))
            guard bytes <= 0x10_0000 else {
                throw fail(
                    n, f.field("runtime_map_size"),
                    "a runtime map of \(bytes) bytes is more than a firmware has (at most 1 MiB)")
            }
            runtimeMap = ByteCount(bytes)
        }
        switch (f.value("config_tables"), f.value("nr_tables")) {
        case (nil, nil): return (systab, nil, runtimeMap)
        case (let a?, let n?):
            let at = try address(a, f.field("config_tables"))
            let count = try number(n, f.field("nr_tables"))
            guard count <= 4096 else {
                throw fail(
                    n, f.field("nr_tables"), "\(count) configuration tables is more than a firmware has (at most 4096)")
            }
            let tables = EfiConfigTables(address: at, count: count)
            guard count == 0 || tables.range != nil else {
                throw fail(a, f.field("config_tables"), "the table array runs past the end of the address space")
            }
            return (systab, tables, runtimeMap)
        case (let a?, nil): throw fail(a, f.field("config_tables"), "config_tables needs nr_tables")
        case (nil, let n?): throw fail(n, f.field("nr_tables"), "nr_tables needs config_tables")
        }
    }

    /// `cpu: { vendor: amd | intel, sev: true | false }` (x86_64; sev only on amd).
    func cpuModel(_ node: Node, _ field: String) throws(InputError) -> X86CpuModel {
        let m = try mapping(node, field, "a mapping { vendor, sev }")
        let f = try Fields(node, m, path: field, allowed: ["vendor", "sev"], file: file)
        var c = X86CpuModel(vendor: try choice(required(f, "vendor"), f.field("vendor"), X86CpuModel.Vendor.allCases))
        if let n = f.value("sev") {
            c.sev = try bool(n, f.field("sev"))
            guard !c.sev || c.vendor == .amd else {
                throw fail(n, f.field("sev"), "SEV is an AMD feature (vendor: amd)")
            }
        }
        return c
    }

    /// `config: { zone_dma: true, rodata_full: true, va_bits: 48 }` (arm64); a key not given keeps
    /// Debian's value; `va_bits` is 48 or 52.
    func kernelConfig(_ node: Node, _ field: String) throws(InputError) -> Arm64KernelConfig {
        let m = try mapping(node, field, "a mapping { zone_dma, rodata_full, va_bits }")
        let f = try Fields(node, m, path: field, allowed: ["zone_dma", "rodata_full", "va_bits"], file: file)
        var c = Arm64KernelConfig.debian
        if let n = f.value("zone_dma") { c.zoneDma = try bool(n, f.field("zone_dma")) }
        if let n = f.value("rodata_full") { c.rodataFull = try bool(n, f.field("rodata_full")) }
        if let n = f.value("va_bits") {
            let v = try number(n, f.field("va_bits"))
            guard v == 48 || v == 52 else {
                throw fail(n, f.field("va_bits"), "va_bits must be 48 or 52 (CONFIG_ARM64_VA_BITS_52), found \(v)")
            }
            c.vaBits52 = v == 52
        }
        return c
    }

    /// `kernel: "6.1"` (X.Y, X.Y.Z or X.Y-rcN), no older than the oldest modelled version.
    func kernelVersion(_ node: Node, _ field: String) throws(InputError) -> KernelVersion {
        let t = try text(node, field, allowEmpty: false)
        guard let v = KernelVersion(t) else {
            throw fail(
                node, field,
                "\"\(t)\" is not a kernel version (expected X.Y, X.Y.Z or X.Y-rcN, e.g. \"6.1\" or \"6.1.79\")")
        }
        guard v >= KernelVersion.oldestModelled else {
            throw fail(
                node, field,
                "kernel \(v) is older than any version kexec-sim models (\(KernelVersion.oldestModelled) and newer)")
        }
        return v
    }

    /// crashkernel= parsed against the machine's usable RAM and reserved as the machine's kernel
    /// version would (Machine.crashkernelOutcome), lowest range first. A value that reserves nothing
    /// is an error naming what the kernel prints; a range form that matches no range reserves nothing.
    func reserveCrashkernel(_ machine: Machine, node: Node, field: String) throws(InputError) -> [AddressRange] {
        let outcome: CrashkernelOutcome?
        do throws(CrashkernelError) {
            outcome = try machine.crashkernelOutcome()
        } catch {
            throw fail(node, field, error.description)
        }
        guard let o = outcome else { return [] }
        if let why = o.failure, !o.reserved {
            if o.messages.isEmpty || o.messages == ["crashkernel size resulted in zero bytes"],
                why.hasSuffix("asks for nothing on \(machine.memory.totalRAM) of RAM")
            {
                return []
            }
            let said = o.messages.isEmpty ? "prints nothing" : "prints \"\(o.messages.joined(separator: " / "))\""
            throw fail(
                node, field,
                "\(why.hasPrefix("crashkernel=") ? "" : "crashkernel=\(machine.crashkernel ?? ""): ")\(why); Linux "
                    + "\(o.version) (\(o.rules.rawValue)) reserves nothing and \(said)")
        }
        return o.ranges.sorted()
    }

    /// Reads `memory:` (a list of regions, or an import of a boot log: `{ import: { format, file, boot } }`,
    /// `boot` picking one boot of a log that holds several, the first by default).
    func memoryMap(_ node: Node, path: String) throws(InputError) -> (MemoryMap, ImportedMachine?) {
        if case .mapping(let m) = node {
            let f = try Fields(node, m, path: path, allowed: ["import"], file: file)
            guard let imp = f.value("import") else { throw fail(node, path, "missing required field \"import\"") }
            let im = try mapping(imp, f.field("import"), "a mapping { format, file, boot }")
            let g = try Fields(imp, im, path: f.field("import"), allowed: ["format", "file", "boot"], file: file)
            let format = try choice(required(g, "format"), g.field("format"), ImportFormat.allCases)
            let fileNode = try required(g, "file")
            let given = try text(fileNode, g.field("file"), allowEmpty: false)
            var boot = 1
            if let n = g.value("boot") {
                let v = try number(n, g.field("boot"))
                guard v >= 1, v <= UInt64(Int32.max) else {
                    throw fail(n, g.field("boot"), "boots are numbered from 1, found \(v)")
                }
                boot = Int(v)
            }
            let logPath = FixtureDecoder.resolve(given, against: base)
            let logBytes: [UInt8]
            do throws(InputError) {
                logBytes = try FixtureDecoder.readData(logPath)
            } catch {
                throw fail(fileNode, g.field("file"), "cannot read boot log \"\(logPath)\": \(error.message)")
            }
            do throws(ImportError) {
                let imported = try BootLog.parse(bytes: logBytes, format: format, file: logPath, boot: boot)
                return (imported.memory, imported)
            } catch {
                if error.field == "boot" {
                    throw fail(g.value("boot") ?? imp, g.field("boot"), "\"\(logPath)\": \(error.message)")
                }
                var e = BootLog.inputError(error, file: logPath, format: format)
                e.message += " (imported by \(file)" + (fileNode.mark.map { " line \($0.line)" } ?? "") + ")"
                throw e
            }
        }
        return (try regionList(node, path: path), nil)
    }

    func regionList(_ node: Node, path: String) throws(InputError) -> MemoryMap {
        let entries = try list(node, path, "a list of regions or { import: { format, file } }")
        guard !entries.isEmpty else { throw fail(node, path, "the memory map has no regions") }
        var regions: [Region] = []
        for (i, e) in entries.enumerated() {
            regions.append(try region(e, path: "\(path)[\(i)]"))
        }
        do throws(MemoryMapError) {
            return try MemoryMap(regions)
        } catch {
            switch error {
            case .empty:
                throw fail(node, path, "the memory map has no regions")
            case .overlap(let a, let b):
                // Blame the one given later in the file.
                let (later, earlier) = (a.source?.line ?? 0) > (b.source?.line ?? 0) ? (a, b) : (b, a)
                let at = earlier.source.map { " given at line \($0.line)" } ?? ""
                throw InputError(
                    file: file, line: later.source?.line, field: later.source?.field ?? path,
                    message: "region \(later.range) (\(later.type.rawValue)) overlaps region \(earlier.range) "
                        + "(\(earlier.type.rawValue))\(at)")
            }
        }
    }

    func region(_ node: Node, path: String) throws(InputError) -> Region {
        let m = try mapping(node, path, "a region { range, type } or { start, size, type }")
        let f = try Fields(node, m, path: path, allowed: regionKeys, file: file)
        let type = try choice(required(f, "type"), f.field("type"), RegionType.allCases)
        let range: AddressRange
        let field: String
        let line: Int?
        if let r = f.value("range") {
            guard !f.has("start") && !f.has("size") else {
                throw fail(node, path, "give either range or start and size, not both")
            }
            range = try self.range(r, f.field("range"))
            field = f.field("range")
            line = r.mark?.line
        } else {
            guard f.has("start") || f.has("size") else {
                throw fail(node, path, "missing required field \"range\" (or \"start\" and \"size\")")
            }
            let startNode = try required(f, "start")
            let sizeNode = try required(f, "size")
            let start = try number(startNode, f.field("start"), what: "an address")
            let size = try size(sizeNode, f.field("size"))
            switch Parse.startSize(start, size) {
            case .success(let r): range = r
            case .failure(.zeroSize): throw fail(sizeNode, f.field("size"), "size must not be 0")
            case .failure: throw fail(sizeNode, f.field("size"), "range wraps past 0xffffffffffffffff")
            }
            field = f.field("start")
            line = startNode.mark?.line
        }
        let source = SourceLocation(file: file, line: line ?? node.mark?.line ?? 0, field: field)
        return Region(range: range, type: type, source: source)
    }

}
