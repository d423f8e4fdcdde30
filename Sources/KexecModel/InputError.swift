/// A bad input: names the file, the line and the field, and says what is wrong.
public struct InputError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var field: String
    public var message: String
    public init(file: String, line: Int?, field: String, message: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }
    public var description: String {
        let l = line.map { ":\($0)" } ?? ""
        return "\(file)\(l): \(field): \(message)"
    }
}
