/// The `policy:` and `expect:` sections (and each value of `expect_by_policy:`).
///
/// Contract: names are checked against the known policies, verdicts and errno names.
import Foundation
import Yams

private let policyKeys = ["identity_map", "map_segments", "linear_map", "relocation"]
private let expectKeys = ["verdict", "address", "errno"]
private let errnoNames = ["EINVAL", "EADDRNOTAVAIL", "ENOMEM", "EBUSY"]

extension Walker {

    func policy(_ node: Node, path: String) throws(InputError) -> PolicySpec {
        let m = try mapping(node, path, "a mapping")
        let f = try Fields(node, m, path: path, allowed: policyKeys, file: file)
        var p = PolicySpec()
        if let n = f.value("identity_map") {
            p.identityMap = try choice(n, f.field("identity_map"), IdentityMapPolicy.allCases)
        }
        if let n = f.value("map_segments") { p.mapSegments = try bool(n, f.field("map_segments")) }
        if let n = f.value("relocation") {
            p.relocation = try choice(n, f.field("relocation"), RelocationMode.allCases)
        }
        if let n = f.value("linear_map") {
            let field = f.field("linear_map")
            let lm = try mapping(n, field, "a mapping { granule, mappings }")
            let g = try Fields(n, lm, path: field, allowed: ["granule", "mappings"], file: file)
            if let v = g.value("granule") { p.granule = try choice(v, g.field("granule"), Arm64GranuleName.allCases) }
            if let v = g.value("mappings") {
                p.mappings = try choice(v, g.field("mappings"), Arm64MappingKind.allCases)
            }
        }
        return p
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
        return e
    }

}
