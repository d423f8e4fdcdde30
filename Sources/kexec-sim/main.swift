import ArgumentParser
import Foundation

// Parses and runs like `KexecSimCommand.main()`, except that a usage error (ArgumentParser's
// ValidationError, an unknown option or a bad value) exits with 2, the status of every other bad
// input, instead of ArgumentParser's 64.
do {
    var command = try KexecSimCommand.parseAsRoot()
    try command.run()
} catch {
    if KexecSimCommand.exitCode(for: error) == .validationFailure {
        FileHandle.standardError.write(Data((KexecSimCommand.fullMessage(for: error) + "\n").utf8))
        exit(2)
    }
    KexecSimCommand.exit(withError: error)
}
