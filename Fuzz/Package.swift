// swift-tools-version:6.0
// libFuzzer targets for kexec-sim's input side. A package of its own so the root Package.swift stays
// free of fuzzing flags; it depends on the root package by path (its manifest finds Unicorn in
// ../.unicorn by itself). Build and run with ../scripts/fuzz TARGET SECONDS (see that script for the
// exact recipe, which needs -Xswiftc -sanitize=fuzzer,address; each target exports LLVMFuzzerTestOneInput
// through @_cdecl and is compiled with -parse-as-library so that libFuzzer's main() is the entry).
import PackageDescription

let fuzzTargets = [
    "fuzz-fixture", "fuzz-parse", "fuzz-crashkernel", "fuzz-importers", "fuzz-plan", "fuzz-images",
]

let package = Package(
    name: "kexec-sim-fuzz",
    platforms: [.macOS(.v13)],
    products: fuzzTargets.map { .executable(name: $0, targets: [$0]) },
    dependencies: [.package(name: "kexec-sim", path: "..")],
    targets: fuzzTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: [.product(name: "KexecSim", package: "kexec-sim")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    },
    swiftLanguageModes: [.v6]
)
