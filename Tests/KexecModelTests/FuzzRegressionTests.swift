import Foundation
import Testing

@testable import KexecModel

/// Inputs the libFuzzer targets in Fuzz/ found (scripts/fuzz), each with the behaviour it now has.
/// Inputs are inline, as the fuzzer wrote them (bytes that are not UTF-8 shown as U+FFFD, the way the
/// fuzz targets decode them).
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    private func decodeError(_ yaml: String) -> InputError? {
        do throws(InputError) {
            _ = try FixtureDecoder.decode(yaml: yaml, file: "fuzz.yaml", baseDirectory: "")
            return nil
        } catch {
            return error
        }
    }

    /// fuzz-fixture: libyaml marks the end of a file that lacks a final line break one line past the
    /// end; a YAML error there named line 2 of a one-line file (and "at line 2" in the message).
    @Test func syntaxErrorAtTheEndOfAFileWithoutFinalLineBreak() {
        #expect(
            decodeError("[")
                == InputError(
                    file: "fuzz.yaml", line: 1, field: "yaml",
                    message: "YAML syntax: did not find expected node content (while parsing a flow node at line 1)"))
        #expect(
            decodeError("[0")
                == InputError(
                    file: "fuzz.yaml", line: 1, field: "yaml",
                    message: "YAML syntax: did not find expected ',' or ']' (while parsing a flow sequence at line 1)"))
        // With the final line break the end is on the last line already.
        #expect(decodeError("x: [\n")?.line == 1)
    }

    /// fuzz-fixture (second session): a comment, then `---` as the last line without a line break:
    /// the second document is empty and libyaml marks it on line 3 of a two-line file.
    @Test func emptyLastDocumentWithoutFinalLineBreak() {
        let e = decodeError("# a comment ]]]] expect: landed }\n---")
        #expect(e?.line == 2)
        #expect(e?.field == "document")
        #expect(e?.message == "expected a mapping at the top level, found no value")
    }

    /// fuzz-fixture: the same, five lines in (was: line 6).
    @Test func unclosedFlowMappingAtTheEnd() {
        let input =
            "# kexec_load with two segments whose destinations overlap: sanity_chachines/x86_64-4gib-box.yaml\n"
            + "kexec:\n  syscall: kexec_load\n  segments:\n"
            + "    - { name: kernel, mem: 0x1000000, mem# RAM above 4 GiB issz"
        #expect(
            decodeError(input)
                == InputError(
                    file: "fuzz.yaml", line: 5, field: "yaml",
                    message:
                        "YAML syntax: did not find expected ',' or '}' (while parsing a flow mapping at line 5)"))
    }

    /// fuzz-fixture: YAML (and so every line the decoder reports) takes a lone CR as a line break. The
    /// limit used to clamp the end-of-file line counted LF only, and clamped such files' lines wrongly.
    @Test func loneCarriageReturnsAreLineBreaks() {
        let input =
            "# TheMiB, the initrd above 16 MiB \u{2014} where the first kernel's pa\n"
            + "#eg allocator also hands out pages, so some source pages are thpolicy: destinatded }ned hole "
            + "a\u{fffd}ove 1 MiB, the initrd above 16 MiB \u{2014} where the first kernel's page\n"
            + "# allocator also " + String(repeating: "\r", count: 69) + "s go low,hk te ernel at the first\n"
            + "#" + String(repeating: "\u{fffd}", count: 14) + " 4 MiB-a\u{2014} where the first kernel's page\n"
            + "# allocator also s gexpect_by_policy: at the first\n"
            + "#rce pages are thpolicy: destinatded }ned hole a\u{fffd}ove 1 MiB, the initrd above 16 MiB "
            + "\u{2014} where the first kernel's page\n"
            + "# allocator also s go low, the kernel at the first\n"
            + "#" + String(repeating: "\u{fffd}", count: 14) + " 4 MiB-a\u{2014} where the first kernel's page\n"
            + "# allocator also s go low, the kernel at the first\n"
            + "#" + String(repeating: "\u{fffd}", count: 14) + " 2 MiB-a destinatded }\n"
        #expect(
            decodeError(input)
                == InputError(
                    file: "fuzz.yaml", line: 72, field: "document",
                    message: "expected a mapping at the top level, found \"s go low,hk te ernel at the first\""))
        // A syntax error after lone CRs keeps its line.
        #expect(decodeError("name: t\r\r\rmachine: [\r")?.line == 4)
    }

    /// Found while fixing the above: a reader error (a control character) counted LF and CRLF only
    /// when it turned the offset into a line, and put a control character after a lone CR a line early.
    @Test func readerErrorLineCountsLoneCarriageReturns() {
        let input = "a: " + String(repeating: "é", count: 40) + "\rb: \u{0}\nc: d\n"
        #expect(
            decodeError(input)
                == InputError(
                    file: "fuzz.yaml", line: 2, field: "yaml",
                    message: "YAML syntax: control characters are not allowed"))
    }

    /// fuzz-fixture: an empty key (`&alicy: { … }` is an anchored empty scalar as key) gave an error
    /// with an empty field; it now names the mapping holding it.
    @Test func emptyKeyNamesItsMapping() {
        let keys =
            "name, machine, kexec, policy, next_kernel_touches, expect, expect_by_policy, budget, follow, purgatory, follow_timeout"
        #expect(
            decodeError("name: t\n&alicy: { identity_map: ram-3m }\n")
                == InputError(
                    file: "fuzz.yaml", line: 2, field: "document",
                    message: "unknown key \"\" (expected one of: \(keys))"))
        #expect(decodeError("name: t\nmachine:\n  \"\": x86_64\n")?.field == "machine")
    }
}
