import Emulator
import KexecModel
import Testing

/// CPL 3 accesses through the x86 walker (Intel SDM vol. 3A 4.6.1): every level must set U/S,
/// and a read-only page refuses user writes whatever CR0.WP says.
@Suite struct X86WalkerUserModeTests {
    /// One 4 KiB page at VA 0x7000 → PA 0x5000, read-only, user at every level unless `pmdFlags`
    /// says otherwise.
    private func tables(pmdFlags: UInt64 = 0x67) throws -> GuestMemory {
        let mem = GuestMemory()
        try mem.add(start: PhysAddr(0x10_0000), size: ByteCount(0x4000), label: "tables")
        _ = mem.write64(PhysAddr(0x10_0000), 0x10_1000 | 0x67)
        _ = mem.write64(PhysAddr(0x10_1000), 0x10_2000 | 0x67)
        _ = mem.write64(PhysAddr(0x10_2000), 0x10_3000 | pmdFlags)
        _ = mem.write64(PhysAddr(0x10_3000 + 7 * 8), 0x5000 | 0x65)
        return mem
    }

    private func translate(_ mem: GuestMemory, _ access: MemoryAccess, user: Bool)
        -> Result<X86Walker.Translation, X86Walker.Fault>
    {
        // CR0.WP clear: supervisor writes to read-only pages are allowed.
        let c = X86Walker.Control(cr0: 0x8000_0011, cr3: 0x10_0000, cr4: 0x20, efer: 0x500, user: user)
        return X86Walker.translate(VirtAddr(0x7010), access: access, control: c) { mem.read64($0) }
    }

    @Test func userPagesAreReadableAndReadOnlyForCPL3() throws {
        let mem = try tables()
        #expect(try translate(mem, .read, user: true).get().pa == PhysAddr(0x5010))
        guard case .failure(let f) = translate(mem, .write, user: true) else {
            Issue.record("a user write to a read-only page must fault")
            return
        }
        #expect(f.reason == .writeProtected && f.level == .pte)
        #expect(try translate(mem, .write, user: false).get().writable)
    }

    @Test func aSupervisorLevelRefusesCPL3() throws {
        let mem = try tables(pmdFlags: 0x63)
        guard case .failure(let f) = translate(mem, .read, user: true) else {
            Issue.record("a user read through a supervisor PMD must fault")
            return
        }
        #expect(f.reason == .supervisorOnly && f.level == .pte && f.entry == 0x5065)
        #expect(try translate(mem, .read, user: false).get().pa == PhysAddr(0x5010))
    }
}
