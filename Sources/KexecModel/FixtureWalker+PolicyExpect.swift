/// The `policy:` and `expect:` sections (and each value of `expect_by_policy:`).
///
/// Contract: names are checked against the known policies, verdicts and errno names; a policy key
/// of the other architecture than machine.arch is an error naming the file, line and field.
import Foundation
import Yams

private let x86PolicyKeys = ["identity_map", "map_segments"]
private let arm64PolicyKeys = ["linear_map", "relocation"]
private let expectKeys = ["verdict", "address", "errno", "milestone"]
private let errnoNames = ["EINVAL", "EADDRNOTAVAIL", "ENOMEM", "EBUSY"]

extension Walker {

    /// The `policy:` section of a fixture whose machine is `arch`: only that architecture's keys
    /// (x86_64: identity_map, map_segments; arm64: relocation, linear_map). The other
    /// architecture's keys are an error at the key's line; unset keys keep `Policy.default(for:)`.
    func policy(_ node: Node, path: String, arch: Arch) throws(InputError) -> Policy {
        let m = try mapping(node, path, "a mapping")
        let f = try Fields(node, m, path: path, allowed: x86PolicyKeys + arm64PolicyKeys, file: file)
        let (own, other): ([String], [String]) =
            arch == .x86_64 ? (x86PolicyKeys, arm64PolicyKeys) : (arm64PolicyKeys, x86PolicyKeys)
        for (k, _) in m {
            guard let name = k.scalar?.string, other.contains(name) else { continue }
            let otherArch: Arch = arch == .x86_64 ? .arm64 : .x86_64
            throw fail(
                k, f.field(name),
                "\"\(name)\" is an \(otherArch.rawValue) policy key, but machine.arch is \(arch.rawValue) "
                    + "(expected one of: \(own.joined(separator: ", ")))")
        }
        switch arch {
        case .x86_64:
            var p = X86Policy()
            if let n = f.value("identity_map") {
                p.identityMap = try choice(n, f.field("identity_map"), IdentityMapPolicy.allCases)
            }
            if let n = f.value("map_segments") { p.mapSegments = try bool(n, f.field("map_segments")) }
            return .x86_64(p)
        case .arm64:
            var p = Arm64Policy()
            if let n = f.value("relocation") {
                p.relocation = try choice(n, f.field("relocation"), RelocationMode.allCases)
            }
            if let n = f.value("linear_map") {
                let field = f.field("linear_map")
                let lm = try mapping(n, field, "a mapping { granule, mappings }")
                let g = try Fields(n, lm, path: field, allowed: ["granule", "mappings"], file: file)
                if let v = g.value("granule") { p.granule = try choice(v, g.field("granule"), Granule.allCases) }
                if let v = g.value("mappings") {
                    p.mappings = try choice(v, g.field("mappings"), Arm64Mappings.allCases)
                }
            }
            return .arm64(p)
        }
    }

    /// `follow: true | false | banner | memory | init`: true follows to `memory` (the issue's
    /// default), false not at all.
    func followGoal(_ node: Node, _ field: String) throws(InputError) -> FollowGoal? {
        if case .scalar(let s) = node, s.string == "true" || s.string == "false" {
            return s.string == "true" ? .memory : nil
        }
        return try choice(node, field, FollowGoal.allCases)
    }

    func expectation(_ node: Node, path: String) throws(InputError) -> Expectation {
        let m = try mapping(node, path, "a mapping")
        let f = try Fields(node, m, path: path, allowed: expectKeys, file: file)
        var e = Expectation(verdict: try choice(required(f, "verdict"), f.field("verdict"), VerdictKind.allCases))
        if let n = f.value("address") { e.address = try number(n, f.field("address"), what: "an address") }
        if let n = f.value("errno") {
            let s = try text(n, f.field("errno"), allowEmpty: false)
            guard errnoNames.contains(s) else {
                throw fail(
                    n, f.field("errno"),
                    "unknown value \"\(s)\" (expected one of: \(errnoNames.joined(separator: ", ")))")
            }
            e.errno = s
        }
        if let n = f.value("milestone") { e.milestone = try choice(n, f.field("milestone"), FollowGoal.allCases) }
        return e
    }

}
