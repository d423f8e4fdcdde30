import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes report files so that a reader (or an interrupted run) sees the old file or the new one,
/// never half of one: the bytes go to a temporary name in the same directory, are flushed, and the
/// temporary file is renamed over the target.
public enum AtomicWrite {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var message: String
        public var description: String { "cannot write \(path): \(message)" }
    }

    public static func write(_ text: String, to path: String) throws(Failure) {
        try write(Data(text.utf8), to: path)
    }

    public static func write(_ data: Data, to path: String) throws(Failure) {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(path: path, message: String(cString: strerror(errno))) }
        var ok = true
        var message = ""
        data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            var off = 0
            while off < buf.count {
                let n = sysWrite(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    ok = false
                    message = String(cString: strerror(errno))
                    return
                }
                off += n
            }
        }
        if ok && fsync(fd) != 0 {
            ok = false
            message = String(cString: strerror(errno))
        }
        close(fd)
        if ok && rename(tmp, path) != 0 {
            ok = false
            message = String(cString: strerror(errno))
        }
        if !ok {
            unlink(tmp)
            throw Failure(path: path, message: message)
        }
    }
}

/// write(2) under a name that does not collide with AtomicWrite.write.
private func sysWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Darwin)
        return Darwin.write(fd, p, n)
    #elseif canImport(Musl)
        return Musl.write(fd, p, n)
    #else
        return Glibc.write(fd, p, n)
    #endif
}
