import KexecModel
import KexecSim
import Kimage
import Testing

@Suite struct EndToEndTests {
    @Test func smallKexecLands() throws {
        let r = try Runner.run(TestMachines.basic(kernel: .mib(8), initrd: .kib(64)))
        print(r.verdict.summary, r.verdict.evidence, r.stats)
        #expect(r.verdict.kind == .landed)
    }
}
