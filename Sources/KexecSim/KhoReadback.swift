import Emulator
import KexecModel
import Kimage

/// After a run that reached the next kernel's entry: reads back from guest memory what that
/// kernel finds of the Kexec HandOver, the way it looks for it, and checks it against the plan.
///
/// - x86_64: boot_params (rsi) → hdr.setup_data (0x250) → the chain → the SETUP_KEXEC_KHO entry's
///   struct kho_data (arch/x86/kernel/setup.c parse_setup_data → add_kho → kho_populate).
/// - arm64: the DTB (x0) → /chosen linux,kho-fdt and linux,kho-scratch (drivers/of/fdt.c
///   early_init_dt_check_kho → kho_populate).
/// - then, as kho_populate and kho_memory_init do: the KHO FDT (fdt_check_header, compatible,
///   preserved-memory-map), the kho_scratch array, and the preserved-memory map walked from its
///   root (kho_mem_deserialize in 6.16, kho_mem_retrieve / kho_radix_walk_tree in 2026).
enum KhoReadback {
    struct Handover {
        var fdt: UInt64
        var fdtSize: UInt64
        var scratch: UInt64
        var scratchSize: UInt64
        var text: String
    }

    /// The evidence of a correct handover, or a `corruption` verdict naming what is wrong.
    enum Outcome {
        case success([Evidence])
        case failure(Verdict)
    }

    static func check(_ plan: Plan, memory: GuestMemory) -> Outcome {
        guard let k = plan.kho else { return .success([]) }
        func corrupt(_ what: String, _ ev: [Evidence] = []) -> Outcome {
            .failure(
                Verdict(
                    kind: .corruption, summary: "the Kexec HandOver the next kernel reads is wrong: \(what)",
                    evidence: [Evidence(.detail, what)] + ev))
        }
        let read: (PhysAddr, Int) -> [UInt8]? = { memory.read($0, count: $1) }
        var ev: [Evidence] = []
        if k.handsOver {
            guard let seg = plan.segments.first(where: { $0.role == .khoScratch }) else {
                return corrupt("the plan has no kho_scratch segment")
            }
            let found: Handover
            switch plan.arch {
            case .x86:
                guard let h = x86(plan.entryArgument, memory) else {
                    return corrupt("no SETUP_KEXEC_KHO entry in boot_params' setup_data chain at \(plan.entryArgument)")
                }
                found = h
            case .arm64:
                guard let h = arm64(plan.entryArgument, memory) else {
                    return corrupt(
                        "no linux,kho-fdt / linux,kho-scratch in /chosen of the DTB at \(plan.entryArgument)")
                }
                found = h
            }
            ev.append(Evidence(.khoHandover, found.text))
            guard found.fdt == k.fdt.raw, found.fdtSize == 0x1000, found.scratch == seg.mem.raw,
                found.scratchSize == seg.bufsz.raw
            else {
                return corrupt(
                    "handed over fdt \(hex(found.fdt))+\(hex(found.fdtSize)), scratch \(hex(found.scratch))+"
                        + "\(hex(found.scratchSize)); the plan has fdt \(k.fdt)+0x1000, scratch \(seg.mem)+\(hex(seg.bufsz.raw))",
                    ev)
            }
            guard let array = read(PhysAddr(found.scratch), Int(found.scratchSize)) else {
                return corrupt("the scratch array at \(hex(found.scratch)) is not in memory", ev)
            }
            let areas = KhoScratchLayout.areas(fromArray: array)
            guard areas.map({ [$0.addr.raw, $0.size.raw] }) == k.scratch.map({ [$0.addr.raw, $0.size.raw] }) else {
                return corrupt("the scratch array reads \(KhoScratchLayout.describe(areas))", ev)
            }
            ev.append(
                Evidence(
                    .khoScratch,
                    "\(areas.count) areas read back from the segment at \(hex(found.scratch)): "
                        + KhoScratchLayout.describe(areas)))
        }
        guard let page = read(k.fdt, 0x1000) else { return corrupt("the KHO FDT page \(k.fdt) is not in memory", ev) }
        let fdt: (compatible: String, mapRoot: PhysAddr)
        do throws(KhoMapError) {
            fdt = try KhoMemoryMap.readFdt(page)
        } catch {
            return corrupt(error.description, ev)
        }
        guard fdt.compatible == k.rules.abi.compatible, fdt.mapRoot == k.mapRoot else {
            return corrupt(
                "the KHO FDT says compatible \"\(fdt.compatible)\", map at \(fdt.mapRoot); expected "
                    + "\"\(k.rules.abi.compatible)\" at \(k.mapRoot)", ev)
        }
        ev.append(
            Evidence(
                .khoFdt,
                "\(k.fdt): compatible \"\(fdt.compatible)\", \(KhoMemoryMap.memoryMapProperty) = \(fdt.mapRoot)"))
        let blocks: [KhoBlock]
        do throws(KhoMapError) {
            switch k.rules.abi {
            case .chunkList(let b):
                blocks = try KhoMemoryMap.readChunkList(root: fdt.mapRoot, bitmapBytes: b, read: read)
            case .radixTree:
                blocks = try KhoMemoryMap.readRadixTree(root: fdt.mapRoot, read: read)
            }
        } catch {
            return corrupt("the preserved-memory map: \(error.description)", ev)
        }
        guard blocks == k.blocks else {
            return corrupt(
                "the preserved-memory map lists \(blocks.count) blocks (\(KhoMemoryMap.ranges(of: blocks).map(\.description).joined(separator: ", "))); "
                    + "\(k.blocks.count) were preserved", ev)
        }
        let pages = k.preserved.reduce(UInt64(0)) { $0 + $1.range.size.raw / 0x1000 }
        ev.append(
            Evidence(
                .khoPreserved,
                "\(k.preserved.count) ranges (\(pages) pages) unchanged (sha256 before and after); the map read back "
                    + "lists \(blocks.count) blocks covering exactly them: "
                    + k.preserved.map { "\"\($0.owner)\" \($0.range)" }.joined(separator: ", ")))
        return .success(ev)
    }

    /// x86_64: the SETUP_KEXEC_KHO entry of the setup_data chain (at most 32 entries followed).
    static func x86(_ bootParams: PhysAddr, _ memory: GuestMemory) -> Handover? {
        guard var at = memory.read64(PhysAddr(bootParams.raw + 0x250)) else { return nil }
        for _ in 0..<32 where at != 0 {
            guard let next = memory.read64(PhysAddr(at)), let tl = memory.read64(PhysAddr(at + 8)) else { return nil }
            let type = UInt32(truncatingIfNeeded: tl)
            let len = UInt32(truncatingIfNeeded: tl >> 32)
            if type == KhoPlanner.setupKexecKho, len == 32,
                let f = memory.read64(PhysAddr(at + 16)), let fs = memory.read64(PhysAddr(at + 24)),
                let s = memory.read64(PhysAddr(at + 32)), let ss = memory.read64(PhysAddr(at + 40))
            {
                return Handover(
                    fdt: f, fdtSize: fs, scratch: s, scratchSize: ss,
                    text: "setup_data at \(hex(at)): type SETUP_KEXEC_KHO (10), len 32, fdt_addr \(hex(f)), "
                        + "fdt_size \(hex(fs)), scratch_addr \(hex(s)), scratch_size \(hex(ss)) (hdr.setup_data "
                        + "at boot_params \(bootParams) + 0x250)")
            }
            at = next
        }
        return nil
    }

    /// arm64: /chosen's KHO properties in the DTB at `dtb`.
    static func arm64(_ dtb: PhysAddr, _ memory: GuestMemory) -> Handover? {
        guard let head = memory.read(PhysAddr(dtb.raw + 4), count: 4) else { return nil }
        let total = head.reduce(0) { $0 << 8 | Int($1) }
        guard total >= 40, total <= 1 << 22, let blob = memory.read(dtb, count: total),
            let t = try? Fdt.decode(blob), let chosen = t.root.child("chosen"),
            let f = chosen.property("linux,kho-fdt")?.rangesValue, f.count == 1,
            let s = chosen.property("linux,kho-scratch")?.rangesValue, s.count == 1
        else { return nil }
        return Handover(
            fdt: f[0].0, fdtSize: f[0].1, scratch: s[0].0, scratchSize: s[0].1,
            text: "/chosen of the DTB at \(dtb): linux,kho-fdt = <\(hex(f[0].0)) \(hex(f[0].1))>, "
                + "linux,kho-scratch = <\(hex(s[0].0)) \(hex(s[0].1))>")
    }
}
