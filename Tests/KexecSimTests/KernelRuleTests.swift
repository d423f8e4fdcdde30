import KexecModel
import Kimage
import PageTables
import Testing

@testable import KexecSim

/// The x86_64 rules that follow the running kernel's version: identity map, control page,
/// relocation copy, kimage allocation order, elfcorehdr size.
@Suite struct KernelRuleTests {
    func under(_ name: String, _ version: String) throws -> Scenario {
        var sc = try fixture(name)
        sc.machine.kernel = KernelVersion(version)!
        return sc
    }

    func plan(_ sc: Scenario) throws -> Plan {
        guard case .planned(let p) = try Planner.plan(sc) else {
            Issue.record("rejected")
            throw PlanError.unsupported("rejected")
        }
        return p
    }

    /// Before v6.14 the relocation swaps every page through the swap page (3 × 4 KiB moved), since
    /// then it copies it once: both land the same bytes, and the swap runs exactly two more
    /// 512-quadword `rep movsq` per source page: the copy moves a third of the bytes.
    @Test func swapAndCopyLandTheSameBytesCopyMovesAThird() throws {
        func small(_ v: String) throws -> Scenario {
            var sc = try under("x86_64-basic.yaml", v)
            sc.kexec?.kernel = PayloadSpec(size: .mib(1))
            sc.kexec?.initrd = PayloadSpec(size: .kib(64))
            return sc
        }
        // 6.13 and 6.14 place alike (reverse walk, the same buf_min): only the relocation differs.
        let old = try Runner.run(small("6.13"), options: RunOptions(countInstructions: true))
        let new = try Runner.run(small("6.14"), options: RunOptions(countInstructions: true))
        #expect(old.verdict.kind == .landed && new.verdict.kind == .landed)
        #expect(old.verdict.evidenceByName["segments"] == new.verdict.evidenceByName["segments"])
        #expect(old.verdict.evidenceByName["rule.relocation_copy"]?.hasPrefix("3-way swap") == true)
        #expect(new.verdict.evidenceByName["rule.relocation_copy"]?.hasPrefix("single copy") == true)
        let pages = UInt64(try plan(small("6.14")).kimage.sourcePages.count)
        // kernel (memsz = the init_size estimate, 4 MiB), initrd, purgatory (20 KiB), boot_params
        #expect(pages == 1024 + 16 + 5 + 2)
        let swap = try #require(old.stats.relocationInstructions)
        let copy = try #require(new.stats.relocationInstructions)
        // Per page the swap adds two `rep movsq` of 512 quadwords (the engine counts a rep as its
        // 512 iterations plus the final check: 513) and 7 set-up moves; the v6.14 entry runs one
        // instruction more (mov %rcx, %r12; jmp against mov $1, %r12d).
        #expect(swap + 1 - copy == pages * (2 * 513 + 7))
    }

    /// 6.1.192: an 8 KiB control block whose first page is the identity map's PGD; 6.18: a 4 KiB
    /// control page and the PGD as the first table page after the swap page. Tables come before
    /// any source page in both (machine_kexec_prepare runs before kimage_load_segment).
    @Test func controlBlockAndAllocationOrder() throws {
        let p61 = try plan(under("x86_64-basic.yaml", "6.1.192"))
        let k61 = p61.kimage
        #expect(k61.controlPGD == PhysAddr(0x100_0000))
        #expect(k61.controlPage == PhysAddr(0x100_1000))
        #expect(k61.swapPage == PhysAddr(0x100_2000))
        #expect(p61.x86?.tables.root == PhysAddr(0x100_0000))
        #expect(k61.extraControlPages.first == PhysAddr(0x100_3000))
        let p618 = try plan(under("x86_64-basic.yaml", "6.18"))
        let k618 = p618.kimage
        #expect(k618.controlPGD == nil)
        #expect(k618.controlPage == PhysAddr(0x100_0000))
        #expect(k618.swapPage == PhysAddr(0x100_1000))
        #expect(p618.x86?.tables.root == PhysAddr(0x100_2000))
        for k in [k61, k618] {
            let lastTable = try #require(k.extraControlPages.max())
            #expect(k.sourcePages.allSatisfy { $0.source > lastTable })
            #expect(k.indirectionPages.allSatisfy { $0.pa > lastTable })
        }
        // Transition tables are ordinary pages, not the image's control pages.
        let transition = try #require(p618.x86?.tables.transitionPages)
        #expect(!transition.isEmpty)
        #expect(transition.allSatisfy { !k618.extraControlPages.contains($0) })
    }

    @Test func identityMapRuleByVersion() {
        func rule(_ v: String) -> String {
            let r = X86IdentityMapRule.of(KernelVersion(v)!)
            return "\(r.gbpages.rawValue)\(r.mapsEfiConfigTables ? "+cfg" : "")"
        }
        let want: [(String, String)] = [
            ("5.10", "full"), ("5.14", "full"), ("6.1", "full"), ("6.1.78", "full"), ("6.1.79", "exact"),
            ("6.1.84", "exact"), ("6.1.85", "full"), ("6.1.112", "full"), ("6.1.113", "full+cfg"),
            ("6.1.187", "full+cfg"), ("6.1.188", "exact+cfg"), ("6.1.192", "exact+cfg"), ("6.6", "full"),
            ("6.6.18", "exact"), ("6.6.26", "full"), ("6.6.55", "full+cfg"), ("6.6.78", "exact+cfg"),
            ("6.7.6", "exact"), ("6.8", "exact"), ("6.8.5", "full"), ("6.9-rc1", "exact"), ("6.9-rc2", "full"),
            ("6.11.2", "full"), ("6.11.3", "exact+cfg"), ("6.12", "exact+cfg"), ("6.18", "exact+cfg"),
        ]
        for (v, r) in want { #expect(rule(v) == r, "\(v)") }
    }

    /// The firmware-table machine under the kernel that shipped the broken change and under
    /// Debian's 6.1.192: the config table request appears only on the latter.
    @Test func efiConfigTableIsRequestedByVersion() throws {
        let sc = try fixture("x86_64-firmware-table-6.1.192.yaml")
        #expect(sc.machine.efiConfigTables == EfiConfigTables(address: PhysAddr(0xbf80_0000), count: 12))
        #expect(sc.machine.efiSystemTable == PhysAddr(0xbf7f_f018))
        func reasons(_ v: String) -> [IdentityMapRequest] {
            X86IdentityMap.requests(
                machine: sc.machine, segments: [], policy: X86Policy(), imageType: .normal, crashkernel: [],
                kernel: KernelVersion(v)!
            ).filter { $0.reason == .efiSystemTable || $0.reason == .efiConfigTables }
        }
        #expect(reasons("6.1.80").map(\.description) == ["[0x00000000bf7ff000-0x00000000bf7fffff] efi-system-table"])
        #expect(
            reasons("6.1.192").map(\.description) == [
                "[0x00000000bf7ff000-0x00000000bf7fffff] efi-system-table",
                "[0x00000000bf800000-0x00000000bf80011f] efi-config-tables",
            ])
    }

    /// With CRASH_HOTPLUG (6.6+) purgatory's digest leaves the elfcorehdr out; before, it covers it.
    @Test func elfcorehdrLeavesTheDigestFrom66() throws {
        let sc = try fixture("x86_64-uv-hazard.yaml")  // a crash load, kernel 6.6
        let p66 = try plan(sc)
        let hdr = try #require(p66.segments.first { $0.role == .elfcorehdr })
        let rule66 = try #require(p66.rules.first { $0.name == "elfcorehdr_size" })
        #expect(rule66.choice.hasPrefix("CRASH_HOTPLUG: memsz 64 + (2 + NR_CPUS + 8192) x 56"))
        let others = p66.segments.filter { !$0.isPurgatory && $0.role != .elfcorehdr }
        let (d66, r66) = Planner.segmentsDigest(p66.segments, skippingElfcorehdr: true)
        #expect(d66 == p66.digest)
        #expect(r66.count == others.count)
        #expect(!r66.contains { $0.start == hdr.mem.raw })
        var sc61 = sc
        sc61.machine.kernel = KernelVersion(6, 1, 192)
        let p61 = try plan(sc61)
        #expect(p61.digest == Planner.segmentsDigest(p61.segments).digest)
        #expect(Planner.segmentsDigest(p61.segments).regions.count == others.count + 1)
        #expect(p61.rules.first { $0.name == "elfcorehdr_size" }?.choice.hasPrefix("memsz = bufsz = ALIGN(") == true)
    }

    /// totalram_pages leaves out the crashkernel region: half of (RAM − crashkernel).
    @Test func halfOfRAMCountsTotalram() {
        let ram = ByteCount(UInt64(1) << 30)
        let crash = [AddressRange(first: PhysAddr(0x2000_0000), last: PhysAddr(0x2fff_ffff))!]
        let seg = Segment(role: .user("k"), mem: PhysAddr(0x100_0000), memsz: ByteCount(0x1a00_0000), bytes: [])
        let limits = ArchLimits.x86_64(fiveLevel: false)
        // 416 MiB: under half of 1 GiB, over half of 1 GiB − 256 MiB.
        #expect(throws: Never.self) {
            try SanityCheck.check(
                segments: [seg], syscall: .kexecLoad, type: .normal, totalRAM: ram, crashRegions: [], limits: limits)
        }
        #expect(throws: Rejection.self) {
            try SanityCheck.check(
                segments: [seg], syscall: .kexecLoad, type: .normal, totalRAM: ram, crashRegions: crash, limits: limits)
        }
    }
}

@Suite struct EfiFixtureTests {
    func decode(_ machine: String) throws(InputError) -> Scenario {
        try FixtureDecoder.decode(
            yaml: "name: efi\nmachine:\n" + machine + "kexec: { kernel: { size: 1MiB } }\n", file: "efi.yaml",
            baseDirectory: "/tmp")
    }
    let base = "  arch: x86_64\n  memory: [{ range: 0x0-0x7fffffff, type: usable }]\n"

    @Test func efiBlockAndItsErrors() throws {
        let sc = try decode(base + "  efi: { system_table: 0x7f000018, config_tables: 0x7f001000, nr_tables: 3 }\n")
        #expect(sc.machine.efiSystemTable == PhysAddr(0x7f00_0018))
        #expect(
            sc.machine.efiConfigTables?.range == AddressRange(first: PhysAddr(0x7f00_1000), last: PhysAddr(0x7f00_1047))
        )
        let bare = try decode(base + "  efi: { system_table: 0x7f000018 }\n")
        #expect(bare.machine.efiConfigTables == nil)
        #expect(bare.machine.efiRuntimeMapSize == nil)
        let map = try decode(base + "  efi: { system_table: 0x7f000018, runtime_map_size: 0x120 }\n")
        #expect(map.machine.efiRuntimeMapSize == ByteCount(0x120))
        func message(_ extra: String) -> String? {
            do {
                _ = try decode(base + extra)
                return nil
            } catch { return "\(error.field): \(error.message)" }
        }
        #expect(
            message("  efi: { system_table: 0x1, config_tables: 0x2 }\n")
                == "machine.efi.config_tables: config_tables needs nr_tables")
        #expect(
            message("  efi_system_table: 0x1\n  efi: { system_table: 0x1 }\n")
                == "machine.efi: give the system table once: efi.system_table or efi_system_table")
        #expect(
            message("  efi: { system_table: 0x1, runtime_map_size: 2MiB }\n")
                == "machine.efi.runtime_map_size: a runtime map of 2097152 bytes is more than a firmware has (at most 1 MiB)"
        )
    }
}
