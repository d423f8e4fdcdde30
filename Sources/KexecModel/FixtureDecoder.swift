/// Decodes YAML fixtures (see ../shared/DESIGN.md "Fixture format") into `Scenario` / `Machine`.
///
/// The YAML is composed with Yams into a `Node` tree and walked by hand, so that every error names
/// the file, the 1-based line and the dotted field (`machine.memory[2].range`).
///
/// Where each part lives:
/// - this file: the entry points, reading files (at most 16 MiB) and resolving paths;
/// - FixtureComposer.swift: composing the YAML safely (bounds on hostile input, a large stack);
/// - FixtureFields.swift: a mapping's keys, checked (plain, unique, known);
/// - FixtureWalker.swift and its extensions: the walk from the tree to typed values, one file per
///   section of a fixture (machine, kexec, policy and expectation) and one for the scalar values.
import Foundation

public enum FixtureDecoder {
    /// Largest fixture file accepted.
    public static let maxFileSize = 16 << 20
    /// Largest number of YAML nodes after alias expansion.
    public static let maxNodes = 1_000_000
    /// Longest line accepted, in bytes.
    public static let maxLineBytes = 4096
    /// Most `[` and `{` characters accepted in one file.
    public static let maxFlowOpeners = 10_000

    /// Reads and decodes a scenario or a bare machine file. Paths inside are relative to the file's directory.
    public static func load(path: String) throws(InputError) -> Scenario {
        let text = try readText(path)
        return try decode(yaml: text, file: path, baseDirectory: directory(of: path))
    }

    /// Decodes a scenario (or a bare machine file, returned as a scenario without kexec).
    public static func decode(yaml: String, file: String, baseDirectory: String) throws(InputError) -> Scenario {
        try withDocument(yaml, file: file) { root throws(InputError) in
            try Walker(file: file, base: baseDirectory).document(root)
        }
    }

    /// Reads a bare machine file (the machine mapping at the top level).
    public static func loadMachine(path: String) throws(InputError) -> Machine {
        let text = try readText(path)
        return try decodeMachine(yaml: text, file: path, baseDirectory: directory(of: path))
    }

    static func decodeMachine(yaml: String, file: String, baseDirectory: String) throws(InputError) -> Machine {
        try withDocument(yaml, file: file) { root throws(InputError) in
            try Walker(file: file, base: baseDirectory).machine(root, path: "")
        }
    }
}

// MARK: - Files and paths

extension FixtureDecoder {
    static func readText(_ path: String) throws(InputError) -> String {
        let data = try readData(path)
        guard let text = String(bytes: data, encoding: .utf8) else {
            throw InputError(file: path, line: nil, field: "file", message: "is not UTF-8 text")
        }
        return text
    }

    /// The bytes of a file of at most maxFileSize bytes (fixtures, logs, device tree blobs).
    static func readData(_ path: String) throws(InputError) -> [UInt8] {
        func fail(_ m: String) -> InputError { InputError(file: path, line: nil, field: "file", message: m) }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw fail("no such file") }
        guard !isDir.boolValue else { throw fail("is a directory, not a fixture file") }
        if let attrs = try? FileManager.default.attributesOfItem(atPath: path) {
            let size = (attrs[.size] as? NSNumber)?.uint64Value ?? 0
            if size > UInt64(maxFileSize) { throw fail(tooBig(size)) }
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw fail("cannot be opened for reading") }
        defer { try? handle.close() }
        // Read at most one byte past the limit: the size above can lie (devices, pipes, growing files).
        var data = Data()
        while data.count <= maxFileSize {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: maxFileSize + 1 - data.count)
            } catch {
                throw fail("cannot be read: \(error.localizedDescription)")
            }
            guard let chunk, !chunk.isEmpty else { break }
            data.append(chunk)
        }
        guard data.count <= maxFileSize else { throw fail(tooBig(nil)) }
        return [UInt8](data)
    }

    static func tooBig(_ size: UInt64?) -> String {
        "file is larger than 16 MiB" + (size.map { " (\($0) bytes)" } ?? "")
    }

    /// The directory part of a path ("" for a bare file name).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `path` relative to `base` unless it is absolute.
    static func resolve(_ path: String, against base: String) -> String {
        if path.hasPrefix("/") || base.isEmpty { return path }
        return base.hasSuffix("/") ? base + path : base + "/" + path
    }

    /// The file name without directory and without a .yaml / .yml extension.
    static func stem(of path: String) -> String {
        var name = path.split(separator: "/").last.map(String.init) ?? path
        for ext in [".yaml", ".yml"] where name.hasSuffix(ext) && name.count > ext.count {
            name = String(name.dropLast(ext.count))
        }
        return name
    }
}
