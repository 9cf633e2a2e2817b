import CompressNIO
import NIOCore
import Queue

/// gzip compression of archives, and bounded streaming decompression of uploads.
enum Gzip {
    /// gzip-compresses `bytes`.
    static func compress(_ bytes: [UInt8]) throws(JobError) -> ByteBuffer {
        var input = ByteBuffer(bytes: bytes)
        do {
            return try input.compress(with: .gzip())
        } catch {
            throw JobError(.internal, "gzip compression failed: \(error)")
        }
    }

    /// Decompresses a whole gzip buffer, refusing output above `limit` bytes (test and
    /// small-payload helper; archive extraction streams through `GunzipSource`).
    static func decompress(_ buffer: ByteBuffer, limit: Int) throws(JobError) -> [UInt8] {
        var source = try GunzipSource(buffer, limit: limit)
        var out: [UInt8] = []
        while true {
            let chunk = try source.read(maxCount: 1 << 16)
            if chunk.isEmpty { return out }
            out.append(contentsOf: chunk)
        }
    }
}

/// A source of bytes read in order; an empty result means end of data.
protocol ByteSource {
    mutating func read(maxCount: Int) throws(JobError) -> [UInt8]
}

/// Bytes already in memory (an uncompressed tar).
struct MemoryByteSource: ByteSource {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read(maxCount: Int) throws(JobError) -> [UInt8] {
        let end = min(bytes.count, offset + maxCount)
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}

/// Streams the decompressed bytes of a gzip buffer through a 64 KiB window, so an archive is
/// validated as it inflates and never held decompressed in full.
///
/// Bounded: once more than `limit` bytes have come out it throws `E004 "archive too large"`
/// (archive bombs). Strict: input that is not gzip, corrupt, truncated (no end of stream) or
/// followed by anything but further gzip members is `E004`.
struct GunzipSource: ByteSource {
    private var input: ByteBuffer
    private var window: ByteBuffer
    private let decompressor: ZlibDecompressor
    private let limit: Int
    private(set) var produced = 0
    private var finished = false

    init(_ input: ByteBuffer, limit: Int) throws(JobError) {
        guard input.readableBytes >= 2, input.getInteger(at: input.readerIndex, as: UInt16.self) == 0x1F8B else {
            throw JobError(.fileAccess, "archive is not gzip-compressed (expected a .tar.gz body)")
        }
        self.input = input
        self.limit = limit
        self.window = ByteBufferAllocator().buffer(capacity: 1 << 16)
        do {
            self.decompressor = try ZlibDecompressor(algorithm: .gzip)
        } catch {
            throw JobError(.internal, "cannot start gzip decompression: \(error)")
        }
    }

    mutating func read(maxCount: Int) throws(JobError) -> [UInt8] {
        if window.readableBytes == 0 { try refill() }
        let count = min(maxCount, window.readableBytes)
        return window.readBytes(length: count) ?? []
    }

    private mutating func refill() throws(JobError) {
        window.clear()
        var stalls = 0
        while window.readableBytes == 0 && !finished {
            let inputWasEmpty = input.readableBytes == 0
            let before = input.readableBytes
            do {
                try decompressor.inflate(from: &input, to: &window)
                // No error: the member ended (Z_STREAM_END) or all input was consumed.
                if input.readableBytes > 0 || inputWasEmpty {
                    try endOfMember()
                }
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // The window is full; hand it out.
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                if input.readableBytes == 0 {
                    throw JobError(.fileAccess, "archive is truncated: the gzip stream ends before its end marker")
                }
                stalls += before == input.readableBytes ? 1 : 0
                if stalls > 2 { throw JobError(.fileAccess, "archive is not valid gzip data") }
            } catch let error as CompressNIOError where error == .corruptData {
                throw JobError(.fileAccess, "archive is not valid gzip data (corrupt deflate stream or bad CRC)")
            } catch let error as JobError {
                throw error
            } catch {
                throw JobError(.fileAccess, "archive could not be decompressed: \(error)")
            }
            produced += window.readableBytes
            if produced > limit {
                throw JobError(.fileAccess, "archive too large: it decompresses to more than \(limit) bytes",
                               details: .object(["limit": .number(Double(limit))]))
            }
        }
    }

    /// After one gzip member: accept end of input or a following member; refuse other trailing bytes.
    private mutating func endOfMember() throws(JobError) {
        if input.readableBytes == 0 {
            finished = true
            return
        }
        if input.readableBytes >= 2, input.getInteger(at: input.readerIndex, as: UInt16.self) == 0x1F8B {
            do { try decompressor.reset() } catch { throw JobError(.internal, "cannot reset gzip decompression") }
            return
        }
        throw JobError(.fileAccess, "archive has \(input.readableBytes) bytes of trailing data after the gzip stream")
    }
}
