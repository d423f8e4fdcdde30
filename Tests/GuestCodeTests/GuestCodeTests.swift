import Foundation
import Testing

@testable import GuestCode

private let repoRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Test func scriptReproducesCommittedBytes() throws {
    let script = repoRoot.appendingPathComponent("scripts/build-guest-code")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["bash", script.path, "--check"]
    process.currentDirectoryURL = repoRoot
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    #expect(
        process.terminationStatus == 0,
        "scripts/build-guest-code --check failed (status \(process.terminationStatus)); it needs the Swift toolchain's clang, ld.lld, llvm-objcopy, llvm-nm, llvm-objdump next to `swift`:\n\(text)"
    )
}

@Test func relocateKernelLayout() {
    let blob = X86_64GuestCode.relocateKernel
    #expect(blob.bytes.count <= 2048)
    #expect(UInt64(blob.bytes.count) <= X86_64GuestCode.pageListOffset)
    #expect(blob.bssSize == 0)
    #expect(X86_64GuestCode.RelocateKernel.relocateKernel == 0)
    for name in ["identity_mapped", "swap_pages", "relocate_kernel_end"] {
        #expect(blob.symbols[name] != nil, "missing \(name)")
    }
    #expect(X86_64GuestCode.RelocateKernel.relocateKernelEnd == UInt64(blob.bytes.count))
    #expect(X86_64GuestCode.RelocateKernel.identityMapped < X86_64GuestCode.RelocateKernel.swapPages)
    // Two entries: relocate_kernel (v6.14+) takes preserve_context as the swap flag (mov %rcx, %r12;
    // jmp), relocate_kernel_swap (before v6.14) always swaps (mov $1, %r12d); both go on to cli; cld.
    #expect(Array(blob.bytes.prefix(3)) == [0x49, 0x89, 0xcc])
    let swapEntry = Int(X86_64GuestCode.RelocateKernel.relocateKernelSwap)
    #expect(swapEntry == 5)
    #expect(Array(blob.bytes[swapEntry..<swapEntry + 8]) == [0x41, 0xbc, 0x01, 0x00, 0x00, 0x00, 0xfa, 0xfc])
}

@Test func purgatoryLayout() {
    let blob = X86_64GuestCode.purgatory
    let size = UInt64(blob.bytes.count)
    for name in ["purgatory_start", "purgatory_main", "sha256_mismatch_spin", "purgatory_data", "purgatory_stack_top"] {
        #expect(blob.symbols[name] != nil, "missing \(name)")
    }
    let data = X86_64GuestCode.Purgatory.purgatoryData
    #expect(data % 8 == 0)
    #expect(data + X86_64GuestCode.purgatoryDataSize <= size)
    #expect(blob.bssSize >= 4096)
    let top = X86_64GuestCode.Purgatory.purgatoryStackTop
    #expect(top % 16 == 0)
    #expect(top >= size + 4096 && top <= blob.memorySize)
    let spin = Int(X86_64GuestCode.Purgatory.sha256MismatchSpin)
    #expect(Array(blob.bytes[spin..<spin + 2]) == [0xeb, 0xfe])
    // lea purgatory_stack_top(%rip), %rsp is the first instruction of the entry.
    let start = Int(X86_64GuestCode.Purgatory.purgatoryStart)
    #expect(Array(blob.bytes[start..<start + 3]) == [0x48, 0x8d, 0x25])
}

@Test func purgatoryDataStartsZeroed() {
    let blob = X86_64GuestCode.purgatory
    let data = Int(X86_64GuestCode.Purgatory.purgatoryData)
    let bytes = blob.bytes[data..<data + Int(X86_64GuestCode.purgatoryDataSize)]
    #expect(bytes.allSatisfy { $0 == 0 })
}
