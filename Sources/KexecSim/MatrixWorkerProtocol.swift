import Foundation

/// The lines a matrix parent and a long-lived `kexec-sim worker` exchange over the worker's
/// stdin and stdout. A request is one line: the `run` arguments of one job as a JSON array of
/// strings (`MatrixWorker.arguments(for:)`). A response is one line: a JSON object with what that
/// `run` would have exited with and printed, `{"status": N, "stdout": "...", "stderr": "..."}`.
/// The worker answers each request before it reads the next; EOF on its stdin ends it.
public enum MatrixWorkerProtocol {
    public struct Response: Codable, Sendable, Equatable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// One line (no newline inside: JSON escapes it), without the terminating newline.
    public static func requestLine(_ arguments: [String]) -> String {
        guard let d = try? JSONEncoder().encode(arguments) else { return "[]" }
        return String(decoding: d, as: UTF8.self)
    }

    public static func arguments(fromRequest line: String) -> [String]? {
        try? JSONDecoder().decode([String].self, from: Data(line.utf8))
    }

    public static func responseLine(_ r: Response) -> String {
        guard let d = try? JSONEncoder().encode(r) else { return #"{"status":2,"stdout":"","stderr":""}"# }
        return String(decoding: d, as: UTF8.self)
    }

    public static func response(fromLine line: Data) -> Response? {
        try? JSONDecoder().decode(Response.self, from: line)
    }
}
