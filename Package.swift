// swift-tools-version:6.0
import Foundation
import PackageDescription

// Unicorn 2.1 lives in a git-ignored prefix inside the package (scripts/setup-unicorn puts it
// there from the PyPI wheel). Its location is derived from this file, so nobody sets a variable,
// and the rpath makes the built binaries and tests find libunicorn.so.2 without LD_LIBRARY_PATH.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let unicornPrefix = packageRoot + "/.unicorn"

let unicornLink: [LinkerSetting] = [
    .unsafeFlags([
        "-L\(unicornPrefix)/lib",
        "-Xlinker", "-rpath", "-Xlinker", "\(unicornPrefix)/lib",
    ]),
    .linkedLibrary("unicorn"),
]

let package = Package(
    name: "kexec-sim",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "kexec-sim", targets: ["kexec-sim"]),
        .library(name: "KexecSim", targets: ["KexecSim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        .target(
            name: "CUnicorn",
            path: "Sources/CUnicorn",
            cSettings: [.unsafeFlags(["-I\(unicornPrefix)/include"])],
            linkerSettings: unicornLink
        ),
        .target(
            name: "KexecModel",
            dependencies: [.product(name: "Yams", package: "Yams")]
        ),
        .target(name: "Kimage", dependencies: ["KexecModel"]),
        .target(name: "PageTables", dependencies: ["KexecModel"]),
        .target(
            name: "GuestCode",
            exclude: ["asm", "c", "link"]
        ),
        .target(
            name: "Emulator",
            dependencies: ["CUnicorn", "KexecModel"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I\(unicornPrefix)/include"])],
            linkerSettings: unicornLink
        ),
        .target(
            name: "KexecSim",
            dependencies: [
                "KexecModel", "Kimage", "PageTables", "GuestCode", "Emulator",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "kexec-sim",
            dependencies: [
                "KexecSim", "KexecModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "KexecModelTests", dependencies: ["KexecModel"], exclude: ["Malformed"]),
        .testTarget(name: "KimageTests", dependencies: ["Kimage", "KexecModel"]),
        .testTarget(name: "PageTablesTests", dependencies: ["PageTables", "KexecModel"]),
        .testTarget(name: "GuestCodeTests", dependencies: ["GuestCode"]),
        .testTarget(
            name: "EmulatorTests",
            dependencies: ["Emulator", "KexecModel", "GuestCode", "PageTables"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I\(unicornPrefix)/include"])]
        ),
        .testTarget(
            name: "KexecSimTests",
            dependencies: ["KexecSim", "KexecModel", "Kimage", "PageTables", "Emulator", "GuestCode"],
            swiftSettings: [.unsafeFlags(["-Xcc", "-I\(unicornPrefix)/include"])]
        ),
    ],
    swiftLanguageModes: [.v6]
)
