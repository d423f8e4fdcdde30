import Foundation
import KexecModel
import Testing

@Suite struct KernelVersionTests {
    @Test func parsesTheForms() {
        #expect(KernelVersion("6.1") == KernelVersion(6, 1))
        #expect(KernelVersion("6.1.79")?.patch == 79)
        #expect(KernelVersion("v6.9-rc1")?.rc == 1)
        #expect(KernelVersion("6.9-rc1")?.description == "6.9-rc1")
        #expect(KernelVersion("6.1.192")?.description == "6.1.192")
        for bad in [
            "", "6", "6.", "6.1.", "6..1", "6.1.2.3", "6.1-rc", "6.1.2-rc1", "x.y", "6.1a", "1.0", "6.1.-1", "6.100",
        ] {
            #expect(KernelVersion(bad) == nil, "\(bad)")
        }
    }

    @Test func ordersReleaseCandidatesBeforeTheRelease() {
        let order = ["5.10", "5.14", "6.1", "6.1.79", "6.1.192", "6.8", "6.9-rc1", "6.9-rc2", "6.9", "6.9.1", "6.12"]
            .map { KernelVersion($0)! }
        #expect(order == order.sorted())
        #expect(KernelVersion("6.1")! == KernelVersion("6.1.0")!)
        #expect(KernelVersion("6.9-rc1")!.atLeast(6, 9) == false)
        #expect(KernelVersion("6.9")!.atLeast(6, 9))
    }

    @Test func readsBanners() {
        let debian =
            "[    0.000000] Linux version 6.1.0-40-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) "
            + "12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2025-06-24)"
        #expect(KernelVersion(banner: debian) == KernelVersion(6, 1, 192))
        #expect(KernelVersion(banner: "Linux version 7.1.0-arch1-1 (linux@archlinux) #1 SMP") == KernelVersion(7, 1, 0))
        #expect(KernelVersion(banner: "Linux version 6.9.0-rc1+ (me@box) #3") == KernelVersion("6.9-rc1"))
        #expect(KernelVersion(banner: "Linux version 5.14.0-427.el9.x86_64 (mockbuild@…)") == KernelVersion(5, 14, 0))
        #expect(KernelVersion(banner: "no banner here") == nil)
    }

    func decode(_ kernelLine: String) -> Result<Scenario, InputError> {
        let yaml = """
            name: v
            machine:
              arch: x86_64
            \(kernelLine)
              memory:
                - { range: 0x0-0x7fffffff, type: usable }
            """
        return Result { () throws(InputError) in
            try FixtureDecoder.decode(yaml: yaml, file: "v.yaml", baseDirectory: "/")
        }
    }

    @Test func fixturesNameTheRunningKernel() throws {
        #expect(try decode("  kernel: \"6.1.79\"").get().machine.kernelVersion == KernelVersion(6, 1, 79))
        #expect(try decode("").get().machine.kernel == nil)
        #expect(try decode("").get().machine.kernelVersion == KernelVersion.newestModelled)
        guard case .failure(let e) = decode("  kernel: \"6\"") else {
            Issue.record("kernel: \"6\" should not decode")
            return
        }
        #expect(e.line == 4 && e.field == "machine.kernel")
        #expect(
            e.message == "\"6\" is not a kernel version (expected X.Y, X.Y.Z or X.Y-rcN, e.g. \"6.1\" or \"6.1.79\")")
        guard case .failure(let old) = decode("  kernel: \"4.19\"") else {
            Issue.record("kernel: 4.19 should not decode")
            return
        }
        #expect(old.message == "kernel 4.19 is older than any version kexec-sim models (5.10 and newer)")
    }

    @Test func importReadsTheBanner() throws {
        let log = """
            [    0.000000] Linux version 6.1.0-40-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2025-06-24)
            [    0.000000] BIOS-provided physical RAM map:
            [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
            [    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable
            """
        let m = try Result { () throws(ImportError) in try BootLog.parse(log, file: "d.txt") }.get()
        #expect(m.kernel == KernelVersion(6, 1, 192))
        #expect(m.kernelLine?.number == 1)
        let yaml = MachineFixtureWriter.yaml(m, name: "d", arch: .x86_64, logFile: "d.txt")
        #expect(yaml.contains("\nkernel: \"6.1.192\"\n"))
        let old = try Result { () throws(ImportError) in
            try BootLog.parse(
                log.replacingOccurrences(of: "6.1.0-40-amd64", with: "4.19.19").replacingOccurrences(
                    of: "Debian 6.1.192-3", with: "x"), file: "d.txt")
        }.get()
        #expect(old.kernel == KernelVersion(4, 19, 19))
        let oldYaml = MachineFixtureWriter.yaml(old, name: "d", arch: .x86_64, logFile: "d.txt")
        #expect(
            oldYaml.contains(
                "# Linux 4.19.19 is older than any modelled version: 5.10's rules are the nearest.\nkernel: \"5.10\"\n")
        )
    }
}
