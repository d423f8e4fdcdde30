// libFuzzer target: Crashkernel.parse and Crashkernel.reserve on a fixed 4 GiB machine (the e820 map
// of QEMU q35 with 4 GiB: 3 GiB below the PCI hole, 1 GiB above 4 GiB), for x86_64 and for arm64
// with a 4 GiB and a 1 GiB DMA limit.
//
// Checked beyond "does not crash": a parsed size is above 0 and below the RAM; the reservation is
// sorted, disjoint, inside usable RAM, of the asked size, aligned to CRASH_ALIGN (unless placed at a
// fixed offset, which must be exactly where asked), never in the first MiB on x86_64, and a second
// range is the low part: below the low limit, of the low size.
import KexecModel

private func region(_ first: UInt64, _ last: UInt64, _ t: RegionType) -> Region {
    Region(range: AddressRange(first: PhysAddr(first), last: PhysAddr(last))!, type: t)
}

private let memory = try! MemoryMap([
    region(0x0, 0x9_fbff, .usable),
    region(0x9_fc00, 0x9_ffff, .reserved),
    region(0xf_0000, 0xf_ffff, .reserved),
    region(0x10_0000, 0xbffd_efff, .usable),
    region(0xbffd_f000, 0xbfff_ffff, .reserved),
    region(0xfeff_c000, 0xfeff_ffff, .reserved),
    region(0xfffc_0000, 0xffff_ffff, .reserved),
    region(0x1_0000_0000, 0x1_3fff_ffff, .usable),
])

private let arches: [CrashkernelArch] = [
    .x86_64, .arm64(dmaLimit: PhysAddr(1 << 32)), .arm64(dmaLimit: PhysAddr(1 << 30)),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCrashkernel(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let ram = memory.totalRAM
    let spec: CrashkernelSpec?
    do throws(CrashkernelError) {
        spec = try Crashkernel.parse(text, systemRAM: ram)
    } catch {
        precondition(!error.description.isEmpty, "empty parse error")
        return 0
    }
    guard let spec else { return 0 }
    precondition(spec.size.raw > 0 && spec.size < ram, "parsed \(spec) for \(text.debugDescription)")
    for arch in arches {
        let got: [AddressRange]
        do throws(CrashkernelError) {
            got = try Crashkernel.reserve(spec, in: memory, arch: arch)
        } catch {
            precondition(!error.description.isEmpty, "empty reserve error")
            continue
        }
        let what = "\(spec) on \(arch): \(got) for \(text.debugDescription)"
        precondition(got.count == 1 || got.count == 2, "not one or two ranges: \(what)")
        for r in got { precondition(memory.usable.covers(r), "outside usable RAM: \(what)") }
        if got.count == 2 { precondition(got[0].last < got[1].first, "unsorted or overlapping: \(what)") }
        let main = got[got.count - 1]
        precondition(main.size == spec.size, "main range has the wrong size: \(what)")
        if case .fixed(let at) = spec.placement, at.raw != 0 {
            precondition(got == [main] && main.first == at, "fixed placement moved: \(what)")
            continue
        }
        for r in got { precondition(r.first.isAligned(arch.alignment), "unaligned: \(what)") }
        if arch == .x86_64 { for r in got { precondition(r.first.raw >= 1 << 20, "in the first MiB: \(what)") } }
        if got.count == 2 {
            let low = got[0]
            precondition(main.first >= arch.lowLimit, "a low part without a high reservation: \(what)")
            precondition(low.endSaturated <= arch.lowLimit.raw, "low part above the low limit: \(what)")
            let want = spec.placement == .high ? (spec.lowSize ?? arch.defaultLowSize) : arch.defaultLowSize
            precondition(low.size == want, "low part of the wrong size: \(what)")
        }
    }
    return 0
}
