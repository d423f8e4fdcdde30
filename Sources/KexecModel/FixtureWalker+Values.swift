/// Node kinds and scalar values for the fixture walk: mappings, lists, text, numbers, addresses,
/// sizes, ranges, choices and booleans, with the error each gives on a wrong value.
///
/// Contract: numbers are checked (more than 64 bits is an error, never a wrap); every error names
/// the fixture file, the node's line and the field.
import Foundation
import Yams

extension Walker {

    func fail(_ node: Node?, _ field: String, _ message: String) -> InputError {
        InputError(file: file, line: node?.mark?.line, field: field, message: message)
    }

    func required(_ f: Fields, _ key: String) throws(InputError) -> Node {
        guard let v = f.value(key) else { throw fail(f.node, f.field(key), "missing required field \"\(key)\"") }
        return v
    }

    func mapping(_ node: Node, _ field: String, _ expected: String) throws(InputError) -> Node.Mapping {
        guard case .mapping(let m) = node else {
            throw fail(node, field, "expected \(expected), found \(Self.describe(node))")
        }
        return m
    }

    func list(_ node: Node, _ field: String, _ expected: String) throws(InputError) -> [Node] {
        guard case .sequence(let s) = node else {
            throw fail(node, field, "expected \(expected), found \(Self.describe(node))")
        }
        return Array(s)
    }

    /// The scalar's text as written (quotes removed); `what` names the expected value in errors.
    func scalar(_ node: Node, _ field: String, _ what: String) throws(InputError) -> String {
        guard case .scalar(let s) = node, !Self.isNull(s) else {
            throw fail(node, field, "expected \(what), found \(Self.describe(node))")
        }
        return s.string
    }

    func text(_ node: Node, _ field: String, allowEmpty: Bool) throws(InputError) -> String {
        let s = try scalar(node, field, "text")
        guard allowEmpty || !s.isEmpty else { throw fail(node, field, "must not be empty") }
        return s
    }

    func number(_ node: Node, _ field: String, what: String = "a number") throws(InputError) -> UInt64 {
        let s = try scalar(node, field, what)
        switch Parse.checkedNumber(Substring(s)) {
        case .success(let v): return v
        case .failure(.overflow):
            throw fail(node, field, "\"\(s)\" does not fit in 64 bits (at most 0xffffffffffffffff)")
        case .failure(.malformed):
            let example = what == "a number" ? "4096, 0x1000" : "0x7fe00000"
            throw fail(node, field, "\"\(s)\" is not \(what) (e.g. \(example))")
        }
    }

    func address(_ node: Node, _ field: String) throws(InputError) -> PhysAddr {
        PhysAddr(try number(node, field, what: "an address"))
    }

    func size(_ node: Node, _ field: String) throws(InputError) -> UInt64 {
        let s = try scalar(node, field, "a size")
        switch Parse.checkedSize(Substring(s)) {
        case .success(let v): return v
        case .failure(.overflow): throw fail(node, field, "\"\(s)\" is more than 0xffffffffffffffff bytes")
        case .failure(.malformed): throw fail(node, field, "\"\(s)\" is not a size (e.g. 12MiB, 256M, 0x1000)")
        }
    }

    func range(_ node: Node, _ field: String) throws(InputError) -> AddressRange {
        let s = try scalar(node, field, "a range")
        switch Parse.checkedRange(Substring(s)) {
        case .success(let r): return r
        case .failure(.malformed):
            throw fail(node, field, "\"\(s)\" is not a range (e.g. 0x100000-0x7fffffff or 0x100000+2GiB)")
        case .failure(.overflow): throw fail(node, field, "\"\(s)\" has a number that does not fit in 64 bits")
        case .failure(.inverted(let first, let last)):
            throw fail(node, field, "inverted range: last \(hex(last)) is below first \(hex(first))")
        case .failure(.wraps): throw fail(node, field, "range wraps past 0xffffffffffffffff")
        case .failure(.zeroSize): throw fail(node, field, "range has size 0")
        }
    }

    func ranges(_ node: Node, _ field: String) throws(InputError) -> [AddressRange] {
        var out: [AddressRange] = []
        for (i, e) in try list(node, field, "a list of ranges").enumerated() {
            out.append(try range(e, "\(field)[\(i)]"))
        }
        return out
    }

    func choice<T: RawRepresentable>(_ node: Node, _ field: String, _ options: [T]) throws(InputError) -> T
    where T.RawValue == String {
        let names = options.map(\.rawValue).joined(separator: ", ")
        let s = try scalar(node, field, "one of: \(names)")
        guard let v = options.first(where: { $0.rawValue == s }) else {
            throw fail(node, field, "unknown value \"\(s)\" (expected one of: \(names))")
        }
        return v
    }

    func bool(_ node: Node, _ field: String) throws(InputError) -> Bool {
        let s = try scalar(node, field, "true or false")
        switch s {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: throw fail(node, field, "expected true or false, found \"\(s)\"")
        }
    }

    // MARK: Helpers

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

    static func isNull(_ s: Node.Scalar) -> Bool {
        s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string)
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s):
            if isNull(s) { return "no value" }
            let t = s.string
            return "\"" + (t.count > 40 ? String(t.prefix(40)) + "…" : t) + "\""
        }
    }
}
