/// Composing a fixture's YAML safely: hostile input is bounded before and after Yams composes it.
///
/// Files over 16 MiB are refused before reading; lines over 4096 bytes and more than 10000 `[`/`{`
/// are refused before parsing (they bound how deep the YAML can nest, and Yams composes and frees the
/// tree recursively, on a thread whose stack is sized from that bound); aliases are allowed but the
/// expanded tree may not exceed 1,000,000 nodes nor the nesting the stack was sized for ("billion
/// laughs" and deep alias chains are errors; the offending tree is deliberately leaked rather than
/// freed recursively). YAML syntax errors become InputErrors with the line clamped into the file.
import Foundation
import Yams

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

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
