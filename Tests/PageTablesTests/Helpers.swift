import KexecModel
import PageTables

func range(_ first: UInt64, _ last: UInt64) -> AddressRange {
    AddressRange(first: PhysAddr(first), last: PhysAddr(last))!
}

func machine(
    _ regions: [(UInt64, UInt64, RegionType)], platform: Platform = .generic, efiSystemTable: UInt64? = nil,
    memLimit: UInt64? = nil
) throws -> Machine {
    Machine(
        arch: .x86_64, platform: platform,
        memory: try MemoryMap(regions.map { Region(range: range($0.0, $0.1), type: $0.2) }),
        efiSystemTable: efiSystemTable.map(PhysAddr.init), memLimit: memLimit.map(ByteCount.init))
}

/// The 4 GiB machine of the brief: RAM in GiBs 0, 1, 4 and 5, an ACPI region at the start of GiB 2.
func fourGiBMachine() throws -> Machine {
    try machine([
        (0, 0x9_ffff, .usable),
        (0x10_0000, 0x7fff_ffff, .usable),
        (0x8000_0000, 0x800f_ffff, .acpi),
        (0x1_0000_0000, 0x1_7fff_ffff, .usable),
    ])
}

func ramRequests(_ m: Machine) -> [IdentityMapRequest] {
    X86IdentityMap.requests(machine: m, segments: [], policy: X86Policy(), imageType: .normal, crashkernel: [])
}

let transitionVA = VirtAddr(0xffff_ffff_a000_0000)
let controlPage = PhysAddr(0x7_5000)

/// Builds with a bump allocator handing out pages from 16 MiB upwards.
func build(
    _ requests: [IdentityMapRequest], _ policy: IdentityMapPolicy, platform: Platform = .generic, levels: Int = 4,
    gbpages: Bool = true, transition: Bool = false, start: UInt64 = 0x100_0000
) throws -> X86PageTables {
    var next = start
    return try X86IdentityMap.build(
        requests: requests, policy: policy, platform: platform, levels: levels, gbpagesSupported: gbpages,
        transition: transition ? (transitionVA, controlPage) : nil,
        allocate: {
            defer { next += 0x1000 }
            return PhysAddr(next)
        })
}

func request(_ first: UInt64, _ last: UInt64, _ reason: IdentityMapRequest.Reason = .ram) -> IdentityMapRequest {
    IdentityMapRequest(range: range(first, last), reason: reason)
}

func translated(_ t: X86PageTables, _ va: UInt64) -> (UInt64, PageSize)? {
    if case .success(let r) = t.translate(VirtAddr(va)) { return (r.pa.raw, r.leaf) }
    return nil
}

func missing(_ t: X86PageTables, _ va: UInt64) -> MissingLevel? {
    if case .failure(let m) = t.translate(VirtAddr(va)) { return m }
    return nil
}

let TiB: UInt64 = 1 << 40
let GiB: UInt64 = 1 << 30
let MiB: UInt64 = 1 << 20
