import Foundation
import KexecModel
import KexecSim
import Kimage
import Testing

/// Segment roles: the labels they show, how fixture labels map to them, and `plan --json` naming
/// segments exactly as before roles existed.
@Suite struct SegmentRoleTests {
    @Test func namesAreTheLoaderLabels() {
        #expect(
            SegmentRole.loaderRoles.map(\.name) == [
                "purgatory", "boot_params", "kernel", "initrd", "elfcorehdr", "dtb", "backup", "setup_data",
                "efi_memmap", "rng_seed", "e820_ext", "kho_scratch",
            ])
        #expect(SegmentRole.user("segment3").name == "segment3")
        #expect(SegmentRole.bootParams.description == "boot_params")
    }

    @Test func fixtureLabelsMapToRoles() {
        #expect(SegmentRole(label: "boot_params") == .bootParams)
        #expect(SegmentRole(label: "dtb") == .dtb)
        #expect(SegmentRole(label: "purgatory") == .purgatory)
        #expect(SegmentRole(label: "bootparams") == .user("bootparams"))
        #expect(SegmentRole(label: "Kernel") == .user("Kernel"))
        // kexec_load: a user segment is never the purgatory kexec-tools adds.
        #expect(SegmentRole(userLabel: "kernel") == .kernel)
        #expect(SegmentRole(userLabel: "elfcorehdr") == .elfcorehdr)
        #expect(SegmentRole(userLabel: "purgatory") == .user("purgatory"))
        #expect(SegmentRole(userLabel: "segment0") == .user("segment0"))
        #expect(SegmentRole.roles(labelled: "purgatory") == [.purgatory, .user("purgatory")])
        #expect(SegmentRole.roles(labelled: "initrd") == [.initrd])
        #expect(SegmentRole.roles(labelled: "blob") == [.user("blob")])
    }

    @Test func segmentDerivesNameAndPurgatoryFromItsRole() {
        let p = Segment(role: .purgatory, mem: PhysAddr(0x3000), memsz: .kib(16), bytes: [])
        let u = Segment(role: .user("purgatory"), mem: PhysAddr(0x8000), memsz: .kib(4), bytes: [])
        #expect(p.name == "purgatory" && p.isPurgatory)
        #expect(u.name == "purgatory" && !u.isPurgatory)
        #expect(
            BufferRequest(role: .bootParams, memsz: .kib(4), align: .kib(4), bufMin: PhysAddr(0)).name == "boot_params")
    }

    /// kexec_load segments keep their labels; `boot_params` is found by role for rsi.
    @Test func kexecLoadSegmentsTakeRolesFromTheirLabels() throws {
        let sc = try FixtureDecoder.load(path: repoRoot + "/Fixtures/scenarios/x86_64-destination-mapped.yaml")
        guard case .planned(let plan) = try Planner.plan(sc) else {
            Issue.record("not planned")
            return
        }
        #expect(plan.segments.map(\.role) == [.kernel, .bootParams, .purgatory])
        #expect(plan.entryArgument == PhysAddr(0x1_0040_0000))
    }
}

extension CLITests {
    /// The segment names and purgatory flags `plan --json` prints, segment by segment.
    func planSegments(_ fixture: String) throws -> [String] {
        let r = try run(["plan", fixture, "--json"])
        #expect(r.status == 0, "\(r.err)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let segments = try #require(json["segments"] as? [[String: Any]])
        return segments.map { s in
            "\(s["name"] as? String ?? "?")\((s["purgatory"] as? Bool) == true ? " (purgatory)" : "")"
        }
    }

    @Test func planJSONNamesSegmentsByRole() throws {
        let dir = repoRoot + "/Fixtures/scenarios/"
        #expect(
            try planSegments(dir + "x86_64-kdump-24tib.yaml")
                == ["elfcorehdr", "purgatory (purgatory)", "boot_params", "kernel", "initrd"])
        // arm64 kexec_file_load has no purgatory.
        #expect(try planSegments(dir + "arm64-basic.yaml") == ["kernel", "initrd", "dtb"])
        #expect(try planSegments(dir + "arm64-image-file.yaml") == ["kernel", "initrd", "dtb"])
        #expect(
            try planSegments(dir + "x86_64-destination-mapped.yaml") == [
                "kernel", "boot_params", "purgatory (purgatory)",
            ])
    }

    /// kexec_load labels appear as written; a user segment labelled `purgatory` is not the purgatory.
    @Test func planJSONKeepsKexecLoadLabels() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kexec-sim-roles-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let scenario = """
            name: kexec_load labels
            machine: \(repoRoot)/Fixtures/machines/x86_64-4g.yaml
            kexec:
              syscall: kexec_load
              segments:
                - { name: kernel, mem: 0x1000000, memsz: 2MiB }
                - { mem: 0x1400000, memsz: 4KiB }
                - { name: purgatory, mem: 0x1600000, memsz: 4KiB }
                - { name: my blob, mem: 0x1800000, memsz: 4KiB }
              entry: 0x1000200
            expect: { verdict: landed }

            """
        let path = dir.appendingPathComponent("s.yaml").path
        try scenario.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(
            try planSegments(path) == ["kernel", "segment1", "purgatory", "my blob", "purgatory (purgatory)"])
    }
}
