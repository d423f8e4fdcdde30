/// A cpio archive in the "newc" format, the one the kernel unpacks as an initramfs
/// (Documentation/driver-api/early-userspace/buffer-format.rst and init/initramfs.c, v6.1: magic
/// "070701", thirteen 8-digit hexadecimal fields, the name with its NUL, each header + name and
/// each body padded to 4 bytes, ended by the entry "TRAILER!!!"). Uncompressed: unpack_to_rootfs
/// takes it as is.
///
/// Deterministic: inode numbers count from 1 in entry order, uid, gid and mtime are 0.
public struct NewcArchive: Sendable, Equatable {
    /// What an entry is: a directory, a regular file with its bytes, or a character device.
    public enum Kind: Sendable, Equatable {
        case directory
        case file([UInt8])
        case characterDevice(major: UInt32, minor: UInt32)
    }

    public struct Entry: Sendable, Equatable {
        /// The path inside the archive, without a leading slash ("dev/kmsg").
        public var name: String
        /// Permission bits (0o755); the file type bits come from `kind`.
        public var permissions: UInt32
        public var kind: Kind
        public init(name: String, permissions: UInt32, kind: Kind) {
            self.name = name
            self.permissions = permissions
            self.kind = kind
        }

        /// st_mode: S_IFDIR 0o040000, S_IFREG 0o100000, S_IFCHR 0o020000 (include/uapi/linux/stat.h).
        var mode: UInt32 {
            switch kind {
            case .directory: return 0o040000 | permissions
            case .file: return 0o100000 | permissions
            case .characterDevice: return 0o020000 | permissions
            }
        }
    }

    public var entries: [Entry]
    public init(entries: [Entry]) { self.entries = entries }

    public static let magic = "070701"
    public static let trailer = "TRAILER!!!"

    /// The archive's bytes, trailer included.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for (i, e) in entries.enumerated() {
            var body: [UInt8] = []
            var rdev: (UInt32, UInt32) = (0, 0)
            var nlink: UInt32 = 1
            switch e.kind {
            case .directory: nlink = 2
            case .file(let b): body = b
            case .characterDevice(let major, let minor): rdev = (major, minor)
            }
            Self.append(
                &out, ino: UInt32(i + 1), mode: e.mode, nlink: nlink, name: e.name, body: body, rdev: rdev)
        }
        Self.append(&out, ino: 0, mode: 0, nlink: 1, name: Self.trailer, body: [], rdev: (0, 0))
        return out
    }

    private static func append(
        _ out: inout [UInt8], ino: UInt32, mode: UInt32, nlink: UInt32, name: String, body: [UInt8],
        rdev: (UInt32, UInt32)
    ) {
        let nameBytes = Array(name.utf8) + [0]
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
        // namesize, check.
        let fields: [UInt32] = [
            ino, mode, 0, 0, nlink, 0, UInt32(body.count), 0, 0, rdev.0, rdev.1, UInt32(nameBytes.count), 0,
        ]
        out += Array(magic.utf8)
        for f in fields {
            let h = String(f, radix: 16, uppercase: true)
            out += Array((String(repeating: "0", count: 8 - h.count) + h).utf8)
        }
        out += nameBytes
        pad(&out)
        out += body
        pad(&out)
    }

    private static func pad(_ out: inout [UInt8]) {
        while out.count % 4 != 0 { out.append(0) }
    }
}
