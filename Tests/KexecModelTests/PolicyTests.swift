import Foundation
import Testing

@testable import KexecModel

/// The package root, from this file's path (Tests/KexecModelTests/<file>).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

private func decode(_ yaml: String, file: String = "p.yaml", base: String = "") -> Result<Scenario, InputError> {
    Result { () throws(InputError) -> Scenario in
        try FixtureDecoder.decode(yaml: yaml, file: file, baseDirectory: base)
    }
}

private func decodeError(_ yaml: String, file: String = "p.yaml", base: String = "") -> InputError? {
    if case .failure(let e) = decode(yaml, file: file, base: base) { return e }
    return nil
}

private let arm64Machine = """
    name: t
    machine:
      arch: arm64
      memory: [{ start: 0x40000000, size: 4GiB, type: usable }]

    """

private let x86Machine = """
    name: t
    machine:
      arch: x86_64
      memory: [{ range: 0x100000-0x7fffffff, type: usable }]

    """

/// The per-architecture `policy:` section and the one Granule type.
@Suite("Policy and granule")
struct PolicyTests {
    @Test func arm64PolicyDecodes() throws {
        let s = try decode(
            arm64Machine + "policy: { relocation: mmu-on, linear_map: { granule: 16k, mappings: base-pages } }\n"
        ).get()
        #expect(s.policy == .arm64(Arm64Policy(relocation: .mmuOn, granule: .g16k, mappings: .basePages)))
        #expect(s.arm64Policy?.granule == .g16k)
        #expect(s.x86Policy == nil)
        #expect(s.policy.arch == .arm64)
        // Unset keys are left to the running kernel's rules (nil).
        let g = try decode(arm64Machine + "policy: { linear_map: { granule: 64k } }\n").get()
        #expect(g.policy == .arm64(Arm64Policy(relocation: nil, granule: .g64k, mappings: nil)))
    }

    @Test func x86PolicyDecodes() throws {
        let s = try decode(x86Machine + "policy: { identity_map: kdump-only }\n").get()
        #expect(s.policy == .x86_64(X86Policy(identityMap: .kdumpOnly, mapSegments: true)))
        #expect(s.x86Policy?.identityMap == .kdumpOnly)
        #expect(s.arm64Policy == nil)
    }

    @Test func defaultPolicyFollowsTheArch() throws {
        let m = try decode(arm64Machine).get().machine
        #expect(Scenario(name: "a", machine: m, kexec: nil).policy == .arm64(Arm64Policy()))
        let x = try decode(x86Machine).get().machine
        #expect(Scenario(name: "x", machine: x, kexec: nil).policy == .x86_64(X86Policy()))
        #expect(
            Policy.default(for: .arm64) == .arm64(Arm64Policy(relocation: nil, granule: .g4k, mappings: nil)))
    }

    /// An x86_64 key on an arm64 machine (block style: the key's own line) and an arm64 key on an
    /// x86_64 machine (flow style) name the file, the line and the field.
    @Test func otherArchitectureKeysAreInputErrors() {
        let onArm = decodeError(arm64Machine + "policy:\n  relocation: mmu-on\n  map_segments: false\n")
        #expect(
            onArm
                == InputError(
                    file: "p.yaml", line: 7, field: "policy.map_segments",
                    message:
                        "\"map_segments\" is an x86_64 policy key, but machine.arch is arm64 (expected one of: linear_map, relocation)"
                ))
        let onX86 = decodeError(x86Machine + "policy: { relocation: mmu-on }\n")
        #expect(
            onX86
                == InputError(
                    file: "p.yaml", line: 5, field: "policy.relocation",
                    message:
                        "\"relocation\" is an arm64 policy key, but machine.arch is x86_64 (expected one of: identity_map, map_segments)"
                ))
        // An unknown key is still reported as unknown, with every policy key listed.
        let unknown = decodeError(arm64Machine + "policy: { granule: 4k }\n")
        #expect(
            unknown
                == InputError(
                    file: "p.yaml", line: 5, field: "policy.granule",
                    message:
                        "unknown key \"granule\" (expected one of: identity_map, map_segments, linear_map, relocation)")
        )
    }

    /// The arch comes from a machine file too: the error names the scenario file.
    @Test func machineFileArchDecidesThePolicyKeys() {
        let yaml = "name: t\nmachine: ../machines/arm64-4g.yaml\npolicy: { identity_map: ram-1g }\n"
        let file = packageRoot + "/Fixtures/scenarios/p.yaml"
        let e = decodeError(yaml, file: file, base: packageRoot + "/Fixtures/scenarios")
        #expect(e?.file == file)
        #expect(e?.line == 3)
        #expect(e?.field == "policy.identity_map")
    }

    /// Every shipped scenario decodes, with its machine's policy case.
    @Test func shippedScenariosCarryTheirArchPolicy() throws {
        let dir = packageRoot + "/Fixtures/scenarios"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(names.count >= 40)
        var arm64 = 0
        for name in names {
            let s = try Result { () throws(InputError) in try FixtureDecoder.load(path: dir + "/" + name) }.get()
            #expect(s.policy.arch == s.machine.arch, "\(name)")
            if s.machine.arch == .arm64 { arm64 += 1 }
        }
        #expect(arm64 == 26)
        let g = try Result { () throws(InputError) in try FixtureDecoder.load(path: dir + "/arm64-mmu-on-64k.yaml") }
            .get()
        #expect(g.policy == .arm64(Arm64Policy(relocation: .mmuOn, granule: .g64k, mappings: .blocks)))
    }

    @Test func identityMapOverrideIsX86Only() throws {
        var x = try decode(
            x86Machine + "expect: { verdict: landed }\nexpect_by_policy: { ram-1g: { verdict: hang } }\n"
        )
        .get()
        x.policy = .x86_64(X86Policy(identityMap: .ram2m, mapSegments: false))
        let same = x.overridingIdentityMap(.ram2m)
        #expect(same.expect == Expectation(verdict: .landed))
        let other = x.overridingIdentityMap(.ram1g)
        #expect(other.policy == .x86_64(X86Policy(identityMap: .ram1g, mapSegments: false)))
        #expect(other.expect == Expectation(verdict: .hang))
        #expect(x.overridingIdentityMap(.kdumpOnly).expect == nil)

        let a = try decode(arm64Machine + "expect: { verdict: landed }\n").get()
        let kept = a.overridingIdentityMap(.ram1g)
        #expect(kept.policy == .arm64(Arm64Policy()))
        #expect(kept.expect == Expectation(verdict: .landed))
    }

    @Test func granuleGeometry() {
        #expect(Granule.allCases.map(\.rawValue) == ["4k", "16k", "64k"])
        #expect(Granule.allCases.map(\.description) == ["4k", "16k", "64k"])
        #expect(Granule.allCases.map(\.shift) == [12, 14, 16])
        #expect(Granule.allCases.map(\.size) == [0x1000, 0x4000, 0x1_0000])
        #expect(Granule.allCases.map(\.stride) == [9, 11, 13])
        #expect(Granule.allCases.map(\.entriesPerTable) == [512, 2048, 8192])
        #expect((0...3).map(Granule.g4k.levelShift) == [39, 30, 21, 12])
        #expect((0...3).map(Granule.g16k.levelShift) == [47, 36, 25, 14])
        #expect((0...3).map(Granule.g64k.levelShift) == [55, 42, 29, 16])
        #expect(Granule.allCases.map { $0.startLevel(vaBits: 48) } == [0, 0, 1])
        #expect((0...3).filter { Granule.g4k.blockAllowed(level: $0) } == [1, 2])
        #expect((0...3).filter { Granule.g16k.blockAllowed(level: $0) } == [2])
        #expect((0...3).filter { Granule.g64k.blockAllowed(level: $0) } == [2])
        #expect((0...3).filter { Granule.g64k.blockAllowed(level: $0, outputBits52: true) } == [1, 2])
        #expect(Granule.allCases.map(\.tg0) == [0, 2, 1])
        #expect(Granule.allCases.map(\.tg1) == [2, 1, 3])
    }
}
