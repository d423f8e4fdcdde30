/// One version-dependent rule as a plan applied it: its name, the variant, and where the variant
/// was read (file and kernel version).
public struct AppliedRule: Sendable, Equatable {
    /// snake_case, e.g. `placement_walk`.
    public var name: String
    /// e.g. "forward: first System RAM range that fits, top-down inside it".
    public var choice: String
    /// e.g. "kernel/kexec_file.c kexec_walk_resources, read in 6.1.192".
    public var source: String

    public init(_ name: String, _ choice: String, source: String) {
        self.name = name
        self.choice = choice
        self.source = source
    }
}
