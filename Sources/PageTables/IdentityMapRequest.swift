import KexecModel

/// One range init_pgtable asks kernel_ident_mapping_init to map, and why.
public struct IdentityMapRequest: Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        /// A pfn_mapped range: RAM the first kernel direct-maps (merged with [0, 1 MiB) when adjacent).
        case ram
        /// [0, 1 MiB), which init_mem_mapping always maps, standing alone.
        case firstMiB
        /// A kimage segment [mem, mem + memsz), by name.
        case segment(String)
        /// The page holding the EFI system table (map_efi_systab).
        case efiSystemTable
        /// The EFI configuration table array (map_efi_systab since 5760929f6545).
        case efiConfigTables
        /// An ACPI tables region (IORES_DESC_ACPI_TABLES).
        case acpi
        /// An ACPI NVS region (IORES_DESC_ACPI_NV_STORAGE).
        case nvs
        /// A crashkernel= reservation (kdump-only policy).
        case crashkernel

        public var description: String {
            switch self {
            case .ram: return "ram"
            case .firstMiB: return "first-1MiB"
            case .segment(let name): return "segment \(name)"
            case .efiSystemTable: return "efi-system-table"
            case .efiConfigTables: return "efi-config-tables"
            case .acpi: return "acpi"
            case .nvs: return "nvs"
            case .crashkernel: return "crashkernel"
            }
        }
    }

    public var range: AddressRange
    public var reason: Reason

    public init(range: AddressRange, reason: Reason) {
        self.range = range
        self.reason = reason
    }

    public var description: String { "\(range) \(reason)" }
}

extension X86IdentityMap {
    /// [0, 1 MiB): init_mem_mapping maps it whatever the memory map says (ISA_END_ADDRESS).
    public static let firstMiB = AddressRange(first: PhysAddr(0), last: PhysAddr(0xf_ffff))!

    /// The ranges init_pgtable asks to map, in the kernel's order: every pfn_mapped range (usable RAM,
    /// page-trimmed, below `machine.memLimit` when set, plus [0, 1 MiB) which the kernel always maps;
    /// sorted and merged where they touch, as add_pfn_range_mapped keeps them), each segment
    /// [mem, mem + memsz) when `policy.mapSegments`, the EFI system table's page when given, the
    /// EFI config table array when kernel `kernel` maps it (X86IdentityMapRule.mapsEfiConfigTables:
    /// `nr_tables` × efi_config_table_64_t from the system table's `tables`), every ACPI region and
    /// then every NVS region (two walk_iomem_res_desc passes).
    ///
    /// For policy `.kdumpOnly` and a crash image: only [0, 1 MiB), the crashkernel ranges and the
    /// segments (which lie inside them). For a normal image `.kdumpOnly` asks for what `.ram2m` does.
    public static func requests(
        machine: Machine, segments: [(name: String, range: AddressRange)], policy: X86Policy,
        imageType: ImageType, crashkernel: [AddressRange], kernel: KernelVersion = .newestModelled
    ) -> [IdentityMapRequest] {
        var out: [IdentityMapRequest] = []
        let segmentRequests =
            policy.mapSegments ? segments.map { IdentityMapRequest(range: $0.range, reason: .segment($0.name)) } : []

        if policy.identityMap == .kdumpOnly && imageType == .crash {
            out.append(IdentityMapRequest(range: firstMiB, reason: .firstMiB))
            out += crashkernel.map { IdentityMapRequest(range: $0, reason: .crashkernel) }
            out += segmentRequests
            return out
        }

        out += pfnMapped(machine).map {
            IdentityMapRequest(range: $0, reason: $0 == firstMiB ? .firstMiB : .ram)
        }
        out += segmentRequests
        if let systab = machine.efiSystemTable,
            let page = AddressRange(start: systab.alignedDown(kexecPageSize), size: kexecPageSize)
        {
            out.append(IdentityMapRequest(range: page, reason: .efiSystemTable))
            if X86IdentityMapRule.of(kernel).mapsEfiConfigTables, let tables = machine.efiConfigTables?.range {
                out.append(IdentityMapRequest(range: tables, reason: .efiConfigTables))
            }
        }
        for (type, reason) in [(RegionType.acpi, IdentityMapRequest.Reason.acpi), (.nvs, .nvs)] {
            for region in machine.memory.regions where region.type == type {
                out.append(IdentityMapRequest(range: region.range, reason: reason))
            }
        }
        return out
    }

    /// pfn_mapped as the first kernel leaves it: [0, 1 MiB) plus every usable range trimmed to whole
    /// pages and cut at the mem= limit, sorted, touching ranges merged.
    static func pfnMapped(_ machine: Machine) -> [AddressRange] {
        var set = RangeSet([firstMiB])
        for r in machine.memory.usable.ranges {
            guard var piece = r.pageTrimmed() else { continue }
            if let limit = machine.memLimit {
                guard limit.raw > 0, let below = AddressRange(first: PhysAddr(0), last: PhysAddr(limit.raw - 1)),
                    let cut = piece.intersection(below), let trimmed = cut.pageTrimmed()
                else { continue }
                piece = trimmed
            }
            set.insert(piece)
        }
        return set.ranges
    }
}
