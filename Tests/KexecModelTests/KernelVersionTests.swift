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
}
