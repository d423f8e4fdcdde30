/// The `policy:` section of a fixture, one shape per architecture: x86_64's identity map
/// (init_pgtable) and arm64's relocation mode and linear map. A scenario carries the case of its
/// `machine.arch`; the decoder rejects the other architecture's keys.

/// Table policy names as fixtures and `--policy` spell them. `kernel` (the default) is what the
/// running kernel's version does (X86IdentityMapRule: full or exact gbpages, with or without the
/// EFI config table); every other name overrides the leaf rule for an experiment, whatever the
/// version: `ram-2m` (no gbpages), `ram-1g` (full gbpages), `kdump-only` (crash kernel ranges and
/// the first MiB, the 2017 proposal), `gbpages-exact` (d794734c9bbf / cc31744a2945's leaves) and
/// `gbpages-except-uv` (exact gbpages on UV only: the March 2024 proposal of "x86/mm/ident_map: Use
/// full gbpages in identity maps except on UV platform", never merged).
public enum IdentityMapPolicy: String, Sendable, CaseIterable {
    case kernel
    case ram2m = "ram-2m"
    case ram1g = "ram-1g"
    case kdumpOnly = "kdump-only"
    case gbpagesExact = "gbpages-exact"
    case gbpagesExceptUV = "gbpages-except-uv"
}

/// arm64 mapping kind of the linear map (`linear_map.mappings`).
/// How the linear map's leaves are made.
public enum Arm64Mappings: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    /// Blocks wherever VA, PA and the range allow (the kernel without rodata=full / debug_pagealloc
    /// / kfence and without deferred crashkernel reservation).
    case blocks
    /// Base pages only (NO_BLOCK_MAPPINGS: rodata=full, or ZONE_DMA + crashkernel= before 2023).
    case basePages = "base-pages"
    public var description: String { rawValue }
}
/// arm64 relocation: with the MMU off (before v5.15) or on through a copy of the linear map.
public enum RelocationMode: String, Sendable, CaseIterable { case mmuOff = "mmu-off", mmuOn = "mmu-on" }

/// x86_64: what init_pgtable maps and with which leaves (`identity_map`, `map_segments`).
public struct X86Policy: Sendable, Equatable {
    public var identityMap: IdentityMapPolicy
    /// Whether init_pgtable also maps each segment (true since 2016; older kernels did not).
    public var mapSegments: Bool
    public init(identityMap: IdentityMapPolicy = .kernel, mapSegments: Bool = true) {
        self.identityMap = identityMap
        self.mapSegments = mapSegments
    }
}

/// arm64: how relocate_kernel runs (`relocation`) and the first kernel's linear map
/// (`linear_map: { granule, mappings }`). `relocation` and `mappings` are overrides: nil means
/// what the running kernel's version and config give (`Arm64Rules`).
public struct Arm64Policy: Sendable, Equatable {
    public var relocation: RelocationMode?
    public var granule: Granule
    public var mappings: Arm64Mappings?
    public init(relocation: RelocationMode? = nil, granule: Granule = .g4k, mappings: Arm64Mappings? = nil) {
        self.relocation = relocation
        self.granule = granule
        self.mappings = mappings
    }
}

/// A scenario's policy: one case per architecture.
public enum Policy: Sendable, Equatable {
    case x86_64(X86Policy)
    case arm64(Arm64Policy)

    /// What a fixture without `policy:` gets: ram-2m with segments mapped; on arm64 a 4k granule,
    /// relocation and linear-map mappings by the running kernel's version and config.
    public static func `default`(for arch: Arch) -> Policy {
        switch arch {
        case .x86_64: return .x86_64(X86Policy())
        case .arm64: return .arm64(Arm64Policy())
        }
    }

    /// The architecture this policy is for.
    public var arch: Arch {
        switch self {
        case .x86_64: return .x86_64
        case .arm64: return .arm64
        }
    }
    /// The x86_64 policy; nil for arm64.
    public var x86: X86Policy? {
        if case .x86_64(let p) = self { return p }
        return nil
    }
    /// The arm64 policy; nil for x86_64.
    public var arm64: Arm64Policy? {
        if case .arm64(let p) = self { return p }
        return nil
    }
}

extension Scenario {
    /// The x86_64 policy (`scenario.x86Policy?.identityMap`); nil on an arm64 scenario.
    public var x86Policy: X86Policy? { policy.x86 }
    /// The arm64 policy (`scenario.arm64Policy?.relocation`); nil on an x86_64 scenario.
    public var arm64Policy: Arm64Policy? { policy.arm64 }

    /// This scenario run under identity-map policy `p` instead of its own (`--policy`). Only an
    /// x86_64 scenario changes, and only when `p` differs from its own: then `expect` becomes
    /// `expectByPolicy[p]` (nil when the fixture says nothing about `p`), since under another
    /// policy only `expect_by_policy` says what should happen. An arm64 scenario is returned as is.
    public func overridingIdentityMap(_ p: IdentityMapPolicy) -> Scenario {
        guard var x86 = x86Policy, p != x86.identityMap else { return self }
        var sc = self
        sc.expect = expectByPolicy[p]
        x86.identityMap = p
        sc.policy = .x86_64(x86)
        return sc
    }
}
