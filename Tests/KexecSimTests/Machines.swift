import KexecModel

/// Machines built in code for the end-to-end tests (the YAML fixtures cover the decoder path).
enum TestMachines {
    static func region(_ first: UInt64, _ last: UInt64, _ t: RegionType) -> Region {
        Region(range: AddressRange(first: PhysAddr(first), last: PhysAddr(last))!, type: t)
    }

    /// 4 GiB of RAM: 640 KiB low, 1 MiB..2 GiB, an ACPI table window at 2 GiB, 4..6 GiB.
    static func fourGiB(platform: Platform = .generic, memLimit: ByteCount? = nil) -> Machine {
        let map = try! MemoryMap([
            region(0, 0x9_ffff, .usable),
            region(0xa_0000, 0xf_ffff, .reserved),
            region(0x10_0000, 0x7fff_ffff, .usable),
            region(0x8000_0000, 0x800f_ffff, .acpi),
            region(0x8010_0000, 0x801f_ffff, .nvs),
            region(0xfec0_0000, 0xffff_ffff, .reserved),
            region(0x1_0000_0000, 0x1_7fff_ffff, .usable),
        ])
        return Machine(name: "4 GiB test box", arch: .x86_64, platform: platform, memory: map, memLimit: memLimit)
    }

    static func basic(
        kernel: ByteCount = .mib(12), initrd: ByteCount? = .mib(32), placement: PlacementOrder = .topDown,
        inject: [Injection] = [], policy: IdentityMapPolicy = .ram2m
    ) -> Scenario {
        Scenario(
            name: "x86_64 basic", machine: fourGiB(),
            kexec: KexecRequest(
                syscall: .kexecFileLoad, type: .normal, kernel: PayloadSpec(size: kernel),
                initrd: initrd.map { PayloadSpec(size: $0) }, placement: placement, inject: inject),
            policy: .x86_64(X86Policy(identityMap: policy)), expect: Expectation(verdict: .landed))
    }
}
