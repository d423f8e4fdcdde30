/// Decodes YAML fixtures (see ../shared/DESIGN.md "Fixture format") into `Scenario` / `Machine`.
///
/// The YAML is composed with Yams into a `Node` tree and walked by hand, so that every error names
/// the file, the 1-based line and the dotted field (`machine.memory[2].range`).
///
/// Hostile input: files over 16 MiB are refused before reading; lines over 4096 bytes and more than
/// 10000 `[`/`{` are refused before parsing (they bound how deep the YAML can nest, and Yams composes
/// and frees the tree recursively, on a thread whose stack is sized from that bound); aliases are
/// allowed but the expanded tree may not exceed 1,000,000 nodes nor the nesting the stack was sized
/// for ("billion laughs" and deep alias chains are errors; the offending tree is deliberately leaked
/// rather than freed recursively).
import Foundation
import Yams

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

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

// MARK: - Composing safely

extension FixtureDecoder {
    /// How the text bounds the YAML tree's nesting (without aliases).
    struct TextShape {
        var longestLine = 0
        var longestLineNumber = 1
        var flowOpeners = 0
        var mayHaveAliases = false

        init(_ text: String) {
            var line = 1
            var length = 0
            for c in text.utf8 {
                switch c {
                case 0x0A, 0x0D:
                    if c == 0x0A { line += 1 }
                    length = 0
                    continue
                case UInt8(ascii: "["), UInt8(ascii: "{"): flowOpeners += 1
                case UInt8(ascii: "*"): mayHaveAliases = true
                default: break
                }
                length += 1
                if length > longestLine {
                    longestLine = length
                    longestLineNumber = line
                }
            }
        }

        /// Upper bound on the composed tree's depth without aliases: libyaml's block indentation stack
        /// grows only at strictly increasing columns (one block collection per column, plus an
        /// indentless sequence per mapping), and each flow level adds at most a collection and an
        /// implicit single-pair mapping.
        var depthBound: Int { 2 * (longestLine + 1) + 2 * flowOpeners + 4 }
    }

    /// Stack bytes budgeted per unit of `depthBound` (measured: at most ~2.4 KB per unit in debug and
    /// release builds of Yams' recursive compose).
    static let stackPerLevel = 8 << 10

    /// Composes `text` on a thread with a stack sized for it, checks the expanded tree, and runs `body`
    /// on the root there (the tree is freed on that thread too).
    static func withDocument<T>(
        _ text: String, file: String, _ body: @escaping (Node) throws(InputError) -> T
    ) throws(InputError) -> T {
        func fail(_ line: Int?, _ m: String) -> InputError {
            InputError(file: file, line: line, field: "file", message: m)
        }
        let bytes = text.utf8.count
        guard bytes <= maxFileSize else { throw fail(nil, tooBig(UInt64(bytes))) }
        let shape = TextShape(text)
        guard shape.longestLine <= maxLineBytes else {
            throw fail(shape.longestLineNumber, "line is longer than \(maxLineBytes) bytes")
        }
        guard shape.flowOpeners <= maxFlowOpeners else {
            throw fail(nil, "more than \(maxFlowOpeners) '[' or '{' characters")
        }
        let stackSize = max(16 << 20, shape.depthBound * stackPerLevel)
        let maxDepth = stackSize / stackPerLevel

        let box = ResultBox<T>()
        let started = runOnLargeStack(bytes: stackSize) {
            box.result = Result { () throws(InputError) -> T in
                try composeAndWalk(text, file: file, shape: shape, maxDepth: maxDepth, body)
            }
        }
        guard started else { throw fail(nil, "cannot start a thread to parse the file") }
        guard let result = box.result else { throw fail(nil, "the parser thread returned nothing") }
        switch result {
        case .success(let v): return v
        case .failure(var e):
            // libyaml marks an empty document at the end of a file without a final line break (`---`
            // as the last line) on the line after it: errors about this file stay inside it.
            if e.file == file, let l = e.line { e.line = min(l, lastLine(of: text)) }
            throw e
        }
    }

    private static func composeAndWalk<T>(
        _ text: String, file: String, shape: TextShape, maxDepth: Int, _ body: (Node) throws(InputError) -> T
    ) throws(InputError) -> T {
        let parser: Parser
        do {
            parser = try Parser(yaml: text)
        } catch {
            throw yamlError(error, text: text, file: file)
        }
        let root: Node?
        do {
            root = try parser.singleRoot()
        } catch {
            // The parser's anchors may hold a tree that is deep through aliases: never free it.
            if shape.mayHaveAliases { keepForever(parser) }
            throw yamlError(error, text: text, file: file)
        }
        guard let root else {
            throw InputError(file: file, line: 1, field: "document", message: "file is empty (expected a mapping)")
        }
        if let problem = expansionProblem(root, file: file, maxDepth: maxDepth) {
            keepForever(parser)
            keepForever(root)
            throw problem
        }
        return try body(root)
    }

    /// Walks the tree (as aliases expand it) without recursion; reports too many nodes or too deep a tree.
    static func expansionProblem(_ root: Node, file: String, maxDepth: Int) -> InputError? {
        // Blame the top-level key whose value pushes the count or the depth over.
        var parts: [(key: Node?, value: Node)] = []
        if case .mapping(let m) = root {
            parts = m.map { (key: $0.key, value: $0.value) }
        } else {
            parts = [(nil, root)]
        }
        var count = 1
        for part in parts {
            var stack: [(Node, Int)] = [(part.value, 2)]
            if let k = part.key { stack.append((k, 2)) }
            while let (node, depth) = stack.popLast() {
                count += 1
                let field = part.key?.scalar?.string ?? "document"
                let line = part.key?.mark?.line ?? root.mark?.line
                if count > maxNodes {
                    return InputError(
                        file: file, line: line, field: field,
                        message: "document expands to more than \(maxNodes) nodes (through YAML aliases?)")
                }
                if depth > maxDepth {
                    return InputError(
                        file: file, line: line, field: field,
                        message: "document nests deeper than \(maxDepth) levels (through YAML aliases?)")
                }
                switch node {
                case .scalar: break
                case .sequence(let s): for n in s { stack.append((n, depth + 1)) }
                case .mapping(let m):
                    for (k, v) in m {
                        stack.append((k, depth + 1))
                        stack.append((v, depth + 1))
                    }
                }
            }
        }
        return nil
    }

    /// The number of the last line of `text` as libyaml counts lines: its line breaks are LF, CR,
    /// CRLF, NEL, LS and PS, as Character.isNewline (minus VT and FF, which its reader refuses), and a
    /// final line break starts no other line.
    static func lastLine(of text: String) -> Int {
        let breaks = text.reduce(0) { $1.isNewline ? $0 + 1 : $0 }
        return max(1, breaks + (text.last?.isNewline == true ? 0 : 1))
    }

    static func yamlError(_ error: any Error, text: String, file: String) -> InputError {
        func make(_ mark: Mark?, _ problem: String, _ context: YamlError.Context?) -> InputError {
            // libyaml puts the end of a file without a final line break on a line past it: clamp.
            let lastLine = lastLine(of: text)
            var m = problem
            if let c = context { m += " (\(c.text) at line \(min(c.mark.line, lastLine)))" }
            return InputError(
                file: file, line: mark.map { min($0.line, lastLine) }, field: "yaml", message: "YAML syntax: " + m)
        }
        guard let e = error as? YamlError else { return make(nil, "\(error)", nil) }
        switch e {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return make(mark, problem, context)
        case .reader(let problem, let offset, _, _):
            var line: Int?
            if let offset, offset >= 0 {
                line = 1 + text.prefix(offset).reduce(0) { $1.isNewline ? $0 + 1 : $0 }
            }
            return InputError(file: file, line: line, field: "yaml", message: "YAML syntax: " + problem)
        default:
            return make(nil, "\(e)", nil)
        }
    }

    /// Keeps a value alive for the rest of the process: freeing it would recurse as deep as it nests.
    private static func keepForever<V>(_ v: V) {
        _ = Unmanaged.passRetained(Keeper(v))
    }
}

private final class Keeper<V> {
    let value: V
    init(_ value: V) { self.value = value }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, InputError>?
}

private final class ThreadJob: @unchecked Sendable {
    let work: () -> Void
    init(_ work: @escaping () -> Void) { self.work = work }
}

/// Runs `work` on a new thread with a stack of `bytes` and waits for it; false if no thread could start.
private func runOnLargeStack(bytes: Int, _ work: @escaping () -> Void) -> Bool {
    var attr = pthread_attr_t()
    guard pthread_attr_init(&attr) == 0 else { return false }
    defer { pthread_attr_destroy(&attr) }
    let page = 1 << 20
    let size = (bytes + page - 1) / page * page
    guard pthread_attr_setstacksize(&attr, size) == 0 else { return false }
    let job = Unmanaged.passRetained(ThreadJob(work))
    #if canImport(Darwin)
        var thread: pthread_t?
        let rc = pthread_create(
            &thread, &attr,
            { raw in
                Unmanaged<ThreadJob>.fromOpaque(raw).takeRetainedValue().work()
                return nil
            }, job.toOpaque())
        guard rc == 0, let thread else {
            job.release()
            return false
        }
    #else
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, &attr,
            { raw in
                if let raw { Unmanaged<ThreadJob>.fromOpaque(raw).takeRetainedValue().work() }
                return nil
            }, job.toOpaque())
        guard rc == 0 else {
            job.release()
            return false
        }
    #endif
    return pthread_join(thread, nil) == 0
}

// MARK: - Walking the tree

private let scenarioKeys = [
    "name", "machine", "kexec", "policy", "next_kernel_touches", "expect", "expect_by_policy", "budget",
]
private let machineKeys = [
    "name", "arch", "platform", "paging", "memory", "hazards", "hotpluggable", "crashkernel", "crashkernel_ranges",
    "efi_system_table", "mem_limit", "crashkernel_protection",
]
private let regionKeys = ["range", "start", "size", "type"]
private let kexecKeys = ["syscall", "type", "kernel", "initrd", "cmdline", "placement", "segments", "entry", "inject"]
private let payloadKeys = ["size", "file"]
private let segmentKeys = ["name", "mem", "memsz", "bufsz"]
private let policyKeys = ["identity_map", "map_segments", "linear_map", "relocation"]
private let expectKeys = ["verdict", "address", "errno"]
private let errnoNames = ["EINVAL", "EADDRNOTAVAIL", "ENOMEM", "EBUSY"]

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

struct Walker {
    let file: String
    let base: String

    // MARK: Documents

    func document(_ root: Node) throws(InputError) -> Scenario {
        guard case .mapping(let m) = root else {
            throw fail(root, "document", "expected a mapping at the top level, found \(Self.describe(root))")
        }
        let keys = Set(m.compactMap { $0.key.scalar?.string })
        if keys.contains("arch") || (keys.contains("memory") && !keys.contains("machine")) {
            let machine = try machine(root, path: "")
            return Scenario(
                name: machine.name ?? FixtureDecoder.stem(of: file), machine: machine, kexec: nil, file: file)
        }
        return try scenario(root, m)
    }

    func scenario(_ root: Node, _ m: Node.Mapping) throws(InputError) -> Scenario {
        let f = try Fields(root, m, path: "", allowed: scenarioKeys, file: file)
        let name = try text(required(f, "name"), f.field("name"), allowEmpty: false)
        let machineNode = try required(f, "machine")
        let machine: Machine
        if case .scalar = machineNode {
            machine = try machineFile(machineNode, field: f.field("machine"))
        } else {
            machine = try self.machine(machineNode, path: f.field("machine"))
        }
        var scenario = Scenario(name: name, machine: machine, kexec: nil, file: file)
        if let n = f.value("kexec") { scenario.kexec = try kexec(n, path: f.field("kexec")) }
        if let n = f.value("policy") { scenario.policy = try policy(n, path: f.field("policy")) }
        if let n = f.value("next_kernel_touches") {
            let field = f.field("next_kernel_touches")
            scenario.nextKernelTouches = []
            for (i, e) in try list(n, field, "a list of addresses").enumerated() {
                scenario.nextKernelTouches.append(try address(e, "\(field)[\(i)]"))
            }
        }
        if let n = f.value("expect") { scenario.expect = try expectation(n, path: f.field("expect")) }
        if let n = f.value("expect_by_policy") {
            let field = f.field("expect_by_policy")
            let m = try mapping(n, field, "a mapping from policy name to expectation")
            for (k, v) in m {
                let p: IdentityMapPolicy = try choice(k, field, IdentityMapPolicy.allCases)
                scenario.expectByPolicy[p] = try expectation(v, path: Walker.join(field, p.rawValue))
            }
        }
        if let n = f.value("budget") {
            let b = try number(n, f.field("budget"))
            guard b > 0 else { throw fail(n, f.field("budget"), "the instruction budget must be more than 0") }
            scenario.budget = b
        }
        return scenario
    }

    func machineFile(_ node: Node, field: String) throws(InputError) -> Machine {
        let given = try text(node, field, allowEmpty: false)
        let path = FixtureDecoder.resolve(given, against: base)
        let contents: String
        do throws(InputError) {
            contents = try FixtureDecoder.readText(path)
        } catch {
            throw fail(node, field, "cannot read machine file \"\(path)\": \(error.message)")
        }
        return try FixtureDecoder.decodeMachine(
            yaml: contents, file: path, baseDirectory: FixtureDecoder.directory(of: path))
    }

    // MARK: Machine

    func machine(_ node: Node, path: String) throws(InputError) -> Machine {
        let m = try mapping(node, path.isEmpty ? "document" : path, "a machine mapping")
        let f = try Fields(node, m, path: path, allowed: machineKeys, file: file)
        let arch = try choice(required(f, "arch"), f.field("arch"), Arch.allCases)
        let (memory, imported) = try memoryMap(required(f, "memory"), path: f.field("memory"))
        var machine = Machine(arch: arch, memory: memory, source: file)
        if let n = f.value("name") { machine.name = try text(n, f.field("name"), allowEmpty: false) }
        if let n = f.value("platform") { machine.platform = try choice(n, f.field("platform"), Platform.allCases) }
        if let n = f.value("paging") { machine.paging = try choice(n, f.field("paging"), PagingLevels.allCases) }
        if let n = f.value("hazards") { machine.hazards = try ranges(n, f.field("hazards")) }
        if let n = f.value("hotpluggable") { machine.hotpluggable = try ranges(n, f.field("hotpluggable")) }
        if let n = f.value("crashkernel") {
            machine.crashkernel = try text(n, f.field("crashkernel"), allowEmpty: false)
        }
        // Crashkernel ranges: given ones win; else computed from crashkernel=; else what an imported log
        // says the kernel reserved.
        if let n = f.value("crashkernel_ranges") {
            machine.crashkernelRanges = try ranges(n, f.field("crashkernel_ranges"))
        } else if let n = f.value("crashkernel"), let value = machine.crashkernel {
            machine.crashkernelRanges = try reserveCrashkernel(
                value, node: n, field: f.field("crashkernel"), machine: machine, dmaLimit: imported?.dmaZoneLimit)
        } else if let imported {
            machine.crashkernelRanges = imported.crashkernelRanges
        }
        if let n = f.value("efi_system_table") { machine.efiSystemTable = try address(n, f.field("efi_system_table")) }
        if let n = f.value("mem_limit") { machine.memLimit = ByteCount(try size(n, f.field("mem_limit"))) }
        if let n = f.value("crashkernel_protection") {
            machine.crashkernelProtection = try choice(
                n, f.field("crashkernel_protection"), CrashkernelProtection.allCases)
        }
        return machine
    }

    /// crashkernel= parsed against the machine's usable RAM and reserved as the machine's kernel would.
    func reserveCrashkernel(
        _ value: String, node: Node, field: String, machine: Machine, dmaLimit: PhysAddr?
    ) throws(InputError) -> [AddressRange] {
        do throws(CrashkernelError) {
            guard let spec = try Crashkernel.parse(value, systemRAM: machine.memory.totalRAM) else { return [] }
            return try Crashkernel.reserve(
                spec, in: machine.memory, arch: CrashkernelArch.of(machine.arch, dmaLimit: dmaLimit))
        } catch {
            throw fail(node, field, error.description)
        }
    }

    /// Reads `memory:` (a list of regions, or an import of a boot log).
    func memoryMap(_ node: Node, path: String) throws(InputError) -> (MemoryMap, ImportedMachine?) {
        if case .mapping(let m) = node {
            let f = try Fields(node, m, path: path, allowed: ["import"], file: file)
            guard let imp = f.value("import") else { throw fail(node, path, "missing required field \"import\"") }
            let im = try mapping(imp, f.field("import"), "a mapping { format, file }")
            let g = try Fields(imp, im, path: f.field("import"), allowed: ["format", "file"], file: file)
            let format = try choice(required(g, "format"), g.field("format"), ImportFormat.allCases)
            let fileNode = try required(g, "file")
            let given = try text(fileNode, g.field("file"), allowEmpty: false)
            let logPath = FixtureDecoder.resolve(given, against: base)
            let logBytes: [UInt8]
            do throws(InputError) {
                logBytes = try FixtureDecoder.readData(logPath)
            } catch {
                throw fail(fileNode, g.field("file"), "cannot read boot log \"\(logPath)\": \(error.message)")
            }
            do throws(ImportError) {
                let imported = try BootLog.parse(bytes: logBytes, format: format, file: logPath)
                return (imported.memory, imported)
            } catch {
                var e = BootLog.inputError(error, file: logPath, format: format)
                e.message += " (imported by \(file)" + (fileNode.mark.map { " line \($0.line)" } ?? "") + ")"
                throw e
            }
        }
        return (try regionList(node, path: path), nil)
    }

    func regionList(_ node: Node, path: String) throws(InputError) -> MemoryMap {
        let entries = try list(node, path, "a list of regions or { import: { format, file } }")
        guard !entries.isEmpty else { throw fail(node, path, "the memory map has no regions") }
        var regions: [Region] = []
        for (i, e) in entries.enumerated() {
            regions.append(try region(e, path: "\(path)[\(i)]"))
        }
        do throws(MemoryMapError) {
            return try MemoryMap(regions)
        } catch {
            switch error {
            case .empty:
                throw fail(node, path, "the memory map has no regions")
            case .overlap(let a, let b):
                // Blame the one given later in the file.
                let (later, earlier) = (a.source?.line ?? 0) > (b.source?.line ?? 0) ? (a, b) : (b, a)
                let at = earlier.source.map { " given at line \($0.line)" } ?? ""
                throw InputError(
                    file: file, line: later.source?.line, field: later.source?.field ?? path,
                    message: "region \(later.range) (\(later.type.rawValue)) overlaps region \(earlier.range) "
                        + "(\(earlier.type.rawValue))\(at)")
            }
        }
    }

    func region(_ node: Node, path: String) throws(InputError) -> Region {
        let m = try mapping(node, path, "a region { range, type } or { start, size, type }")
        let f = try Fields(node, m, path: path, allowed: regionKeys, file: file)
        let type = try choice(required(f, "type"), f.field("type"), RegionType.allCases)
        let range: AddressRange
        let field: String
        let line: Int?
        if let r = f.value("range") {
            guard !f.has("start") && !f.has("size") else {
                throw fail(node, path, "give either range or start and size, not both")
            }
            range = try self.range(r, f.field("range"))
            field = f.field("range")
            line = r.mark?.line
        } else {
            guard f.has("start") || f.has("size") else {
                throw fail(node, path, "missing required field \"range\" (or \"start\" and \"size\")")
            }
            let startNode = try required(f, "start")
            let sizeNode = try required(f, "size")
            let start = try number(startNode, f.field("start"), what: "an address")
            let size = try size(sizeNode, f.field("size"))
            switch Parse.startSize(start, size) {
            case .success(let r): range = r
            case .failure(.zeroSize): throw fail(sizeNode, f.field("size"), "size must not be 0")
            case .failure: throw fail(sizeNode, f.field("size"), "range wraps past 0xffffffffffffffff")
            }
            field = f.field("start")
            line = startNode.mark?.line
        }
        let source = SourceLocation(file: file, line: line ?? node.mark?.line ?? 0, field: field)
        return Region(range: range, type: type, source: source)
    }

    // MARK: Kexec

    func kexec(_ node: Node, path: String) throws(InputError) -> KexecRequest {
        let m = try mapping(node, path, "a mapping")
        let f = try Fields(node, m, path: path, allowed: kexecKeys, file: file)
        var k = KexecRequest()
        if let n = f.value("syscall") {
            k.syscall = try choice(n, f.field("syscall"), [KexecSyscall.kexecFileLoad, .kexecLoad])
        }
        if let n = f.value("type") { k.type = try choice(n, f.field("type"), [ImageType.normal, .crash]) }
        if let n = f.value("kernel") {
            k.kernel = try payload(n, path: f.field("kernel"))
        } else if k.syscall == .kexecFileLoad {
            throw fail(node, f.field("kernel"), "missing required field \"kernel\" (kexec_file_load loads a kernel)")
        }
        if let n = f.value("initrd") { k.initrd = try payload(n, path: f.field("initrd")) }
        if let n = f.value("cmdline") { k.cmdline = try text(n, f.field("cmdline"), allowEmpty: true) }
        if let n = f.value("placement") {
            k.placement = try choice(n, f.field("placement"), [PlacementOrder.topDown, .bottomUp])
        }
        if let n = f.value("segments") {
            guard k.syscall == .kexecLoad else {
                throw fail(
                    f.key("segments"), f.field("segments"),
                    "segments are only for kexec_load (kexec_file_load places the segments itself)")
            }
            let field = f.field("segments")
            let list = try self.list(n, field, "a list of segments")
            guard !list.isEmpty else { throw fail(n, field, "kexec_load needs at least one segment") }
            for (i, e) in list.enumerated() { k.segments.append(try segment(e, path: "\(field)[\(i)]", index: i)) }
        } else if k.syscall == .kexecLoad {
            throw fail(node, f.field("segments"), "missing required field \"segments\" (kexec_load needs them)")
        }
        if let n = f.value("entry") { k.entry = try address(n, f.field("entry")) }
        if let n = f.value("inject") {
            let field = f.field("inject")
            for (i, e) in try list(n, field, "a list of injections").enumerated() {
                k.inject.append(try injection(e, path: "\(field)[\(i)]"))
            }
        }
        return k
    }

    func payload(_ node: Node, path: String) throws(InputError) -> PayloadSpec {
        let m = try mapping(node, path, "a mapping { size } or { file }")
        let f = try Fields(node, m, path: path, allowed: payloadKeys, file: file)
        switch (f.value("size"), f.value("file")) {
        case (let s?, nil):
            let v = try size(s, f.field("size"))
            guard v > 0 else { throw fail(s, f.field("size"), "size must not be 0") }
            return PayloadSpec(size: ByteCount(v))
        case (nil, let p?):
            let given = try text(p, f.field("file"), allowEmpty: false)
            let resolved = FixtureDecoder.resolve(given, against: base)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir), !isDir.boolValue else {
                let what = isDir.boolValue ? "is a directory, not a file:" : "no such file"
                throw fail(p, f.field("file"), "\(what) \"\(resolved)\"")
            }
            return PayloadSpec(file: resolved)
        case (.some, .some):
            throw fail(node, path, "give either size or file, not both")
        case (nil, nil):
            throw fail(node, path, "missing required field \"size\" (or \"file\")")
        }
    }

    func segment(_ node: Node, path: String, index: Int) throws(InputError) -> SegmentSpec {
        let m = try mapping(node, path, "a segment { name, mem, memsz, bufsz }")
        let f = try Fields(node, m, path: path, allowed: segmentKeys, file: file)
        let mem = try address(required(f, "mem"), f.field("mem"))
        let memsz = try size(required(f, "memsz"), f.field("memsz"))
        var bufsz = memsz
        if let n = f.value("bufsz") { bufsz = try size(n, f.field("bufsz")) }
        var name = "segment\(index)"
        if let n = f.value("name") { name = try text(n, f.field("name"), allowEmpty: false) }
        return SegmentSpec(
            name: name, mem: mem, memsz: ByteCount(memsz), bufsz: ByteCount(bufsz),
            source: SourceLocation(file: file, line: node.mark?.line ?? 0, field: path))
    }

    func injection(_ node: Node, path: String) throws(InputError) -> Injection {
        let known =
            "wrong-digest, list-cycle, overwrite-control-page, scribble, invalid-opcode, nx-start, flip-source-byte, start-address"
        switch node {
        case .scalar(let s):
            switch s.string {
            case "wrong-digest": return .wrongDigest
            case "list-cycle": return .listCycle
            case "overwrite-control-page": return .overwriteControlPage
            case "scribble": return .scribble
            case "invalid-opcode": return .invalidOpcode
            case "nx-start": return .nxStart
            default:
                throw fail(node, path, "unknown injection \"\(s.string)\" (expected one of: \(known))")
            }
        case .mapping(let m):
            let f = try Fields(node, m, path: path, allowed: ["flip-source-byte", "start-address"], file: file)
            if let a = f.value("start-address") {
                return .startAddress(PhysAddr(try number(a, f.field("start-address"), what: "an address")))
            }
            let inner = try required(f, "flip-source-byte")
            let field = f.field("flip-source-byte")
            let im = try mapping(inner, field, "a mapping { segment, offset }")
            let g = try Fields(inner, im, path: field, allowed: ["segment", "offset"], file: file)
            let segment = try text(required(g, "segment"), g.field("segment"), allowEmpty: false)
            let offset = try size(required(g, "offset"), g.field("offset"))
            return .flipSourceByte(segment: segment, offset: ByteCount(offset))
        case .sequence:
            throw fail(node, path, "expected an injection (one of: \(known)), found \(Self.describe(node))")
        }
    }

    // MARK: Policy, expectation

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

    // MARK: Node kinds

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
