/// The `kexec:` section: the syscall, the image type, kernel and initrd payloads, the command line,
/// placement, kexec_load segments, the entry and injections.
///
/// Contract: kexec_file_load needs a kernel and takes no segments; kexec_load needs at least one
/// segment, unless kexec-tools places them (`loader: kexec-tools`: a kernel, no segments, no
/// entry); payload files must exist (resolved against the fixture's directory).
import Foundation
import Yams

private let kexecKeys = [
    "syscall", "type", "kernel", "initrd", "cmdline", "placement", "segments", "entry", "inject", "loader", "rng_seed",
]
private let payloadKeys = ["size", "file", "init_size", "setup_size", "builtin"]
private let segmentKeys = ["name", "mem", "memsz", "bufsz"]

extension Walker {

    func kexec(_ node: Node, path: String) throws(InputError) -> KexecRequest {
        let m = try mapping(node, path, "a mapping")
        let f = try Fields(node, m, path: path, allowed: kexecKeys, file: file)
        var k = KexecRequest()
        if let n = f.value("syscall") {
            k.syscall = try choice(n, f.field("syscall"), [KexecSyscall.kexecFileLoad, .kexecLoad])
        }
        if let n = f.value("type") { k.type = try choice(n, f.field("type"), [ImageType.normal, .crash]) }
        if let n = f.value("loader") {
            k.loader = try choice(n, f.field("loader"), KexecLoader.allCases)
            guard k.syscall == .kexecLoad || k.loader == .user else {
                throw fail(
                    n, f.field("loader"),
                    "kexec-tools places segments for kexec_load only (kexec_file_load: the kernel places them)")
            }
        }
        let byTool = k.loader == .kexecTools
        if let n = f.value("rng_seed") {
            guard byTool else {
                throw fail(f.key("rng_seed"), f.field("rng_seed"), "rng_seed is for loader: kexec-tools")
            }
            k.rngSeed = try bool(n, f.field("rng_seed"))
        }
        if let n = f.value("kernel") {
            k.kernel = try payload(n, path: f.field("kernel"))
        } else if k.syscall == .kexecFileLoad || byTool {
            let who = byTool ? "kexec-tools loads a kernel" : "kexec_file_load loads a kernel"
            throw fail(node, f.field("kernel"), "missing required field \"kernel\" (\(who))")
        }
        if let n = f.value("initrd") { k.initrd = try payload(n, path: f.field("initrd")) }
        if let n = f.value("cmdline") { k.cmdline = try text(n, f.field("cmdline"), allowEmpty: true) }
        if let n = f.value("placement") {
            k.placement = try choice(n, f.field("placement"), [PlacementOrder.topDown, .bottomUp])
        }
        if byTool, f.has("segments") || f.has("entry") {
            let key = f.has("segments") ? "segments" : "entry"
            throw fail(
                f.key(key), f.field(key), "\(key) are chosen by kexec-tools (loader: kexec-tools); leave them out")
        }
        if let n = f.value("segments") {
            guard k.syscall == .kexecLoad else {
                throw fail(
                    f.key("segments"), f.field("segments"),
                    "segments are only for kexec_load (kexec_file_load places the segments itself)")
            }
            let field = f.field("segments")
            let list = try self.list(n, field, "a list of segments")
            guard !list.isEmpty else { throw fail(n, field, "kexec_load needs at least one segment") }
            for (i, e) in list.enumerated() { k.segments.append(try segment(e, path: "\(field)[\(i)]", index: i)) }
        } else if k.syscall == .kexecLoad && !byTool {
            throw fail(
                node, f.field("segments"),
                "missing required field \"segments\" (kexec_load needs them, or loader: kexec-tools)")
        }
        if let n = f.value("entry") { k.entry = try address(n, f.field("entry")) }
        if let n = f.value("inject") {
            let field = f.field("inject")
            for (i, e) in try list(n, field, "a list of injections").enumerated() {
                k.inject.append(try injection(e, path: "\(field)[\(i)]"))
            }
        }
        return k
    }

    func payload(_ node: Node, path: String) throws(InputError) -> PayloadSpec {
        let m = try mapping(node, path, "a mapping { size } or { file }")
        let f = try Fields(node, m, path: path, allowed: payloadKeys, file: file)
        if let b = f.value("builtin") {
            guard path.hasSuffix("initrd") else {
                throw fail(f.key("builtin"), f.field("builtin"), "builtin is for the initrd only")
            }
            guard f.value("size") == nil, f.value("file") == nil else {
                throw fail(node, path, "give one of size, file or builtin")
            }
            return PayloadSpec(builtin: try choice(b, f.field("builtin"), BuiltinInitrd.allCases))
        }
        switch (f.value("size"), f.value("file")) {
        case (let s?, nil):
            let v = try size(s, f.field("size"))
            guard v > 0 else { throw fail(s, f.field("size"), "size must not be 0") }
            var spec = PayloadSpec(size: ByteCount(v))
            if let n = f.value("init_size") {
                // A synthetic bzImage's init_size: the kernel segment's memsz (x86_64 kexec_file_load).
                guard path.hasSuffix("kernel") else {
                    throw fail(f.key("init_size"), f.field("init_size"), "init_size is for the kernel only")
                }
                let i = try size(n, f.field("init_size"))
                guard i >= v else {
                    throw fail(n, f.field("init_size"), "init_size must be at least the kernel's size (\(v) bytes)")
                }
                spec.initSize = ByteCount(i)
            }
            if let n = f.value("setup_size") {
                // A synthetic bzImage's setup sectors: (setup_sects + 1) × 512, setup_sects 1 to 255.
                guard path.hasSuffix("kernel") else {
                    throw fail(f.key("setup_size"), f.field("setup_size"), "setup_size is for the kernel only")
                }
                let v = try size(n, f.field("setup_size"))
                guard v % 512 == 0, v >= 1024, v <= 256 * 512 else {
                    throw fail(
                        n, f.field("setup_size"),
                        "setup_size must be (setup_sects + 1) × 512 bytes with setup_sects 1 to 255, found \(v)")
                }
                spec.setupSize = ByteCount(v)
            }
            return spec
        case (nil, let p?):
            if f.has("init_size") || f.has("setup_size") {
                let key = f.has("init_size") ? "init_size" : "setup_size"
                throw fail(
                    f.key(key), f.field(key),
                    "\(key) is for a synthetic kernel ({ size }); a file's own header gives it")
            }
            let given = try text(p, f.field("file"), allowEmpty: false)
            let resolved = FixtureDecoder.resolve(given, against: base)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDir), !isDir.boolValue else {
                let what = isDir.boolValue ? "is a directory, not a file:" : "no such file"
                throw fail(p, f.field("file"), "\(what) \"\(resolved)\"")
            }
            return PayloadSpec(file: resolved)
        case (.some, .some):
            throw fail(node, path, "give either size or file, not both")
        case (nil, nil):
            throw fail(node, path, "missing required field \"size\" (or \"file\", or for an initrd \"builtin\")")
        }
    }

    func segment(_ node: Node, path: String, index: Int) throws(InputError) -> SegmentSpec {
        let m = try mapping(node, path, "a segment { name, mem, memsz, bufsz }")
        let f = try Fields(node, m, path: path, allowed: segmentKeys, file: file)
        let mem = try address(required(f, "mem"), f.field("mem"))
        let memsz = try size(required(f, "memsz"), f.field("memsz"))
        var bufsz = memsz
        if let n = f.value("bufsz") { bufsz = try size(n, f.field("bufsz")) }
        var name = "segment\(index)"
        if let n = f.value("name") { name = try text(n, f.field("name"), allowEmpty: false) }
        return SegmentSpec(
            name: name, mem: mem, memsz: ByteCount(memsz), bufsz: ByteCount(bufsz),
            source: SourceLocation(file: file, line: node.mark?.line ?? 0, field: path))
    }

    func injection(_ node: Node, path: String) throws(InputError) -> Injection {
        let known =
            "wrong-digest, list-cycle, overwrite-control-page, scribble, invalid-opcode, nx-start, flip-source-byte, "
            + "start-address, first-kernel-write, kho-before-scratch-check, handoff-pointer"
        switch node {
        case .scalar(let s):
            switch s.string {
            case "wrong-digest": return .wrongDigest
            case "list-cycle": return .listCycle
            case "overwrite-control-page": return .overwriteControlPage
            case "scribble": return .scribble
            case "invalid-opcode": return .invalidOpcode
            case "nx-start": return .nxStart
            case "kho-before-scratch-check": return .khoBeforeScratchCheck
            default:
                throw fail(node, path, "unknown injection \"\(s.string)\" (expected one of: \(known))")
            }
        case .mapping(let m):
            let f = try Fields(
                node, m, path: path,
                allowed: ["flip-source-byte", "start-address", "first-kernel-write", "handoff-pointer"],
                file: file)
            if let a = f.value("start-address") {
                return .startAddress(PhysAddr(try number(a, f.field("start-address"), what: "an address")))
            }
            if let a = f.value("first-kernel-write") {
                return .firstKernelWrite(PhysAddr(try number(a, f.field("first-kernel-write"), what: "an address")))
            }
            if let h = f.value("handoff-pointer") {
                return .handoffPointer(try handoffPointer(h, f.field("handoff-pointer")))
            }
            let inner = try required(f, "flip-source-byte")
            let field = f.field("flip-source-byte")
            let im = try mapping(inner, field, "a mapping { segment, offset }")
            let g = try Fields(inner, im, path: field, allowed: ["segment", "offset"], file: file)
            let segment = try text(required(g, "segment"), g.field("segment"), allowEmpty: false)
            let offset = try size(required(g, "offset"), g.field("offset"))
            return .flipSourceByte(segment: segment, offset: ByteCount(offset))
        case .sequence:
            throw fail(node, path, "expected an injection (one of: \(known)), found \(Self.describe(node))")
        }
    }

    /// `handoff-pointer: A` (an address) or `handoff-pointer: { offset: N }` (the real boot_params
    /// / DTB address plus N bytes).
    func handoffPointer(_ node: Node, _ path: String) throws(InputError) -> HandoffPointer {
        if case .mapping(let m) = node {
            let f = try Fields(node, m, path: path, allowed: ["offset"], file: file)
            return .offset(ByteCount(try size(required(f, "offset"), f.field("offset"))))
        }
        return .address(PhysAddr(try number(node, path, what: "an address or { offset: N }")))
    }

}
