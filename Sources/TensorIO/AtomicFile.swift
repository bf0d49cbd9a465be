import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe file writes: readers see either the old file or the complete new one, never a partial file.
///
/// The data goes to a hidden temporary file in the target's directory (`.<name>.tmp-<pid>-<random>`), is flushed
/// to disk with `fsync`, and is then renamed over the target (or hard-linked into place when `overwrite` is false,
/// so a file created concurrently is never replaced). The temporary file is removed on every path, success or
/// failure.
public enum AtomicFile {
    /// Writes `data` to `url` atomically.
    ///
    /// - Parameters:
    ///   - data: The complete file contents.
    ///   - url: A file URL; its directory must exist.
    ///   - overwrite: When false and `url` exists, throws `"<path> exists; not overwritten (overwriting was not allowed)"` without
    ///     touching the existing file.
    /// - Throws: ``TensorIOError`` naming the path and the failing system call.
    public static func write(data: Data, to url: URL, overwrite: Bool) throws {
        let path = url.path
        if !overwrite && FileManager.default.fileExists(atPath: path) { throw TensorIOError.exists(path) }
        let directory = url.deletingLastPathComponent().path
        let tempPath = (directory as NSString).appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 36))")
        let fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw TensorIOError(file: path, reason: "cannot create temporary file \(tempPath): \(errnoText())")
        }
        var closed = false
        var keepTemp = false
        defer {
            if !closed { _ = close(fd) }
            if !keepTemp { _ = unlink(tempPath) }
        }
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < raw.count {
                guard let base = raw.baseAddress else { break }
                let n = systemWrite(fd, base + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw TensorIOError(file: path, reason: "write to temporary file failed: \(errnoText())")
                }
                offset += n
            }
        }
        guard fsync(fd) == 0 else { throw TensorIOError(file: path, reason: "fsync failed: \(errnoText())") }
        closed = true
        guard close(fd) == 0 else { throw TensorIOError(file: path, reason: "close failed: \(errnoText())") }
        if overwrite {
            guard rename(tempPath, path) == 0 else {
                throw TensorIOError(file: path, reason: "rename from temporary file failed: \(errnoText())")
            }
            keepTemp = true  // renamed away; nothing left to remove
        } else if link(tempPath, path) != 0 {
            let code = errno
            if code == EEXIST { throw TensorIOError.exists(path) }
            // File systems without hard links: fall back to check-then-rename.
            if FileManager.default.fileExists(atPath: path) { throw TensorIOError.exists(path) }
            guard rename(tempPath, path) == 0 else {
                throw TensorIOError(file: path, reason: "rename from temporary file failed: \(errnoText())")
            }
            keepTemp = true
        }
        syncDirectory(directory)
    }

    /// Flushes the directory entry so the rename survives a crash (best effort).
    private static func syncDirectory(_ directory: String) {
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY)
        if dfd >= 0 {
            _ = fsync(dfd)
            _ = close(dfd)
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    @inline(__always)
    private static func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Darwin)
        return Darwin.write(fd, buffer, count)
        #elseif canImport(Musl)
        return Musl.write(fd, buffer, count)
        #else
        return Glibc.write(fd, buffer, count)
        #endif
    }
}
