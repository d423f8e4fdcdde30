import Yams

/// A mapping whose keys were checked: all plain, none repeated, all known.
struct Fields {
    let node: Node
    let path: String
    private var entries: [String: (key: Node, value: Node)] = [:]

    init(_ node: Node, _ mapping: Node.Mapping, path: String, allowed: [String], file: String) throws(InputError) {
        self.node = node
        self.path = path
        for (k, v) in mapping {
            guard case .scalar(let s) = k else {
                throw InputError(
                    file: file, line: k.mark?.line, field: path.isEmpty ? "document" : path,
                    message: "keys must be plain names, found \(Walker.describe(k))")
            }
            let name = s.string
            let field = name.isEmpty ? (path.isEmpty ? "document" : path) : Walker.join(path, name)
            if let first = entries[name] {
                let at = first.key.mark.map { " (first given at line \($0.line))" } ?? ""
                throw InputError(
                    file: file, line: k.mark?.line, field: field, message: "duplicate key \"\(name)\"\(at)")
            }
            guard allowed.contains(name) else {
                throw InputError(
                    file: file, line: k.mark?.line, field: field,
                    message: "unknown key \"\(name)\" (expected one of: \(allowed.joined(separator: ", ")))")
            }
            // libyaml marks an empty value at the next token (often the next line): use the key's line.
            if case .scalar(let vs) = v, Walker.isNull(vs), vs.string.isEmpty {
                entries[name] = (k, .scalar(Node.Scalar(vs.string, vs.tag, vs.style, k.mark)))
            } else {
                entries[name] = (k, v)
            }
        }
    }

    func has(_ key: String) -> Bool { entries[key] != nil }
    func value(_ key: String) -> Node? { entries[key]?.value }
    func key(_ key: String) -> Node? { entries[key]?.key }
    func field(_ key: String) -> String { Walker.join(path, key) }
}
