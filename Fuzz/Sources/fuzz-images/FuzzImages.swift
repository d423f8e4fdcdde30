// libFuzzer target: the kernel image and device-tree readers on arbitrary bytes — BzImage.parse (with
// and without 5-level paging), Arm64Image.parse, Fdt.decode — each on the whole input.
//
// Checked beyond "does not crash": a parsed bzImage's kernel segment holds its protected-mode part and
// its setup header slice lies inside the file; a parsed Image's segment holds the file; a decoded device
// tree encodes to a blob that decodes to the same tree.
import KexecModel
import Kimage

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImages(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    for five in [false, true] {
        do throws(BzImageError) {
            let image = try BzImage.parse(bytes, fiveLevelPaging: five)
            precondition(UInt64(image.protectedModeLength) <= image.kernelMemsz, "payload past memsz")
            let header = image.setupHeaderBytes(of: bytes)
            precondition(header.startIndex >= 0 && header.endIndex <= bytes.count, "setup header outside the file")
            for (cmdline, ram) in [(0, UInt64(1) << 30), (Int(image.cmdlineSize), 1 << 20), (4096, .max)] {
                do throws(BzImageError) { try image.checkLoad(cmdlineLength: cmdline, totalRAM: ram) } catch {
                    precondition(!error.description.isEmpty, "empty bzImage load error")
                }
            }
        } catch {
            precondition(!error.description.isEmpty, "empty bzImage error")
        }
    }

    do throws(Arm64ImageError) {
        let image = try Arm64Image.parse(bytes)
        precondition(UInt64(bytes.count) <= image.segmentMemsz, "file larger than the segment")
        precondition(!image.evidence.isEmpty, "no evidence")
        do throws(Arm64ImageError) { try image.checkLoad() } catch {
            precondition(!error.description.isEmpty, "empty Image load error")
        }
    } catch {
        precondition(!error.description.isEmpty, "empty Image error")
    }

    do throws(DtbError) {
        let fdt = try Fdt.decode(bytes)
        let again: Fdt
        do throws(DtbError) {
            again = try Fdt.decode(fdt.encode())
        } catch {
            preconditionFailure("an encoded device tree does not decode: \(error)")
        }
        precondition(again == fdt, "the device tree changed through encode and decode")
    } catch {
        precondition(!error.description.isEmpty, "empty DTB error")
    }
    return 0
}
