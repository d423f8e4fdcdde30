import KexecModel

/// The EFI state an EFI-booted x86_64 machine hands a kexec'd kernel, for machines whose fixture
/// gives `efi: { system_table, config_tables, nr_tables }`.
///
/// - In boot_params, as kexec_file's bzImage64 loader fills it (arch/x86/kernel/kexec-bzimage64.c
///   setup_efi_state and prepare_add_efi_setup_data, v6.1.192): efi_info (at 0x1c0) gets the
///   loader signature "EL64", efi_systab / efi_systab_hi, efi_memdesc_version 1 and
///   efi_memdesc_size 48; with a runtime map (`efi.runtime_map_size`) efi_memmap / efi_memmap_hi
///   point at its copy after the command line area (params_cmdline_sz = ALIGN(sizeof(boot_params)
///   + cmdline_len + MAX_ELFCOREHDR_STR_LEN, 16)) and efi_memmap_size is its size (its
///   descriptors are zeros: the fixture gives only the size), without one they stay 0
///   (setup_efi_info_memmap writes nothing); a SETUP_EFI (4) setup_data follows the map, holding
///   struct efi_setup_data (arch/x86/include/asm/efi.h: fw_vendor, __unused, tables, smbios,
///   reserved[8]) with `tables` the physical config table array, fw_vendor the system table's
///   (0) and smbios EFI_INVALID_TABLE_ADDR (no SMBIOS entry among the tables), linked at
///   hdr.setup_data (0x250).
/// - In firmware memory, as the firmware left it: the 64-bit system table (include/linux/efi.h
///   efi_system_table_64_t: header signature EFI_SYSTEM_TABLE_SIGNATURE, revision 2.70, header size
///   120, nr_tables at +104, tables at +112) and `nr_tables` efi_config_table_64_t entries. The
///   fixture gives no table contents: every entry has a zero GUID and a zero table pointer (none is
///   a vendor table the kernel looks for, e.g. the SEV CC blob).
public enum X86EfiState {
    /// "EL64", little-endian (arch/x86/include/asm/efi.h EFI64_LOADER_SIGNATURE).
    static let loaderSignature: UInt64 = 0x3436_4c45
    static let systemTableSignature: UInt64 = 0x5453_5953_2049_4249
    static let revision270: UInt64 = 2 << 16 | 70
    static let systemTableSize = 120
    static let setupEfi: UInt64 = 4
    /// sizeof(struct setup_data) + sizeof(struct efi_setup_data).
    static let setupDataBytes = 16 + 96

    /// Fills efi_info and links the SETUP_EFI setup_data into `bp` (boot_params loaded at
    /// `loadAddress`): the runtime map's copy at `mapOffset`, the setup_data at `setupDataOffset`
    /// into the buffer; grows `bp` with zeros to hold it. Leaves `bp` alone when the machine was
    /// not booted through EFI.
    public static func apply(
        to bp: inout [UInt8], machine: Machine, loadAddress: PhysAddr, mapOffset: Int, setupDataOffset: Int
    ) {
        guard let systab = machine.efiSystemTable else { return }
        if bp.count < setupDataOffset + setupDataBytes {
            bp += [UInt8](repeating: 0, count: setupDataOffset + setupDataBytes - bp.count)
        }
        func put(_ off: Int, _ v: UInt64, _ n: Int) {
            for i in 0..<n { bp[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        put(0x1c0, loaderSignature, 4)
        put(0x1c4, systab.raw & 0xffff_ffff, 4)
        put(0x1c8, 48, 4)  // efi_memdesc_size: sizeof(efi_memory_desc_t) as firmware reports it
        put(0x1cc, 1, 4)  // efi_memdesc_version
        put(0x1d8, systab.raw >> 32, 4)
        if let map = machine.efiRuntimeMapSize, map.raw > 0 {
            let at = loadAddress.raw &+ UInt64(mapOffset)
            put(0x1d0, at & 0xffff_ffff, 4)  // efi_memmap
            put(0x1d4, map.raw & 0xffff_ffff, 4)  // efi_memmap_size
            put(0x1dc, at >> 32, 4)  // efi_memmap_hi
        }
        let sd = setupDataOffset
        put(sd, bp.count >= 0x258 ? readLE(bp, 0x250) : 0, 8)  // next: the chain so far
        put(sd + 8, setupEfi, 4)
        put(sd + 12, 96, 4)
        put(sd + 16, 0, 8)  // fw_vendor
        put(sd + 16 + 16, machine.efiConfigTables?.address.raw ?? 0, 8)  // tables
        put(sd + 16 + 24, ~0, 8)  // smbios: EFI_INVALID_TABLE_ADDR
        put(0x250, loadAddress.raw &+ UInt64(sd), 8)  // hdr.setup_data
    }

    /// The firmware's EFI tables: (address, bytes) of the system table and of the config table
    /// array (when the fixture gives one).
    public static func firmwareTables(_ machine: Machine) -> [(PhysAddr, [UInt8])] {
        guard let systab = machine.efiSystemTable else { return [] }
        var st = [UInt8](repeating: 0, count: systemTableSize)
        func put(_ off: Int, _ v: UInt64, _ n: Int) {
            for i in 0..<n { st[off + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
        }
        put(0, systemTableSignature, 8)
        put(8, revision270, 4)
        put(12, UInt64(systemTableSize), 4)
        var out = [(systab, st)]
        if let t = machine.efiConfigTables {
            put(104, t.count, 4)
            put(112, t.address.raw, 8)
            out[0].1 = st
            if t.count > 0 {
                out.append((t.address, [UInt8](repeating: 0, count: Int(t.count * EfiConfigTables.entrySize))))
            }
        }
        return out
    }

    private static func readLE(_ b: [UInt8], _ off: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(b[off + $1]) << (8 * UInt64($1)) }
    }
}
