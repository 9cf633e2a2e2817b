import Foundation
import Queue
#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client for tests (RFC 6455 over a plain blocking socket).
///
/// Why not hummingbird-websocket's `WebSocketClient`: when a server answers the upgrade and
/// closes at once (a refused token, a stream that ends immediately), the close frame and the
/// TCP FIN can arrive while the NIO client is still installing its WebSocket handlers, and the
/// connection then never reports its end — the tests of exactly those cases hung now and then.
/// This client reads the bytes itself, so nothing is lost, and it also exposes the handshake's
/// answer headers and a small receive buffer (to play a client that stops reading).
///
/// Reading is pull-only: nothing is read from the socket until `receive()` asks. Every socket
/// call runs on the connection's own dispatch queue, never on the cooperative pool, with a
/// 60-second timeout so a broken test fails instead of hanging.
public final class WebSocketTestClient: @unchecked Sendable {
    /// How the server closed the connection.
    public struct Close: Sendable, Hashable, CustomStringConvertible {
        public var code: Int
        public var reason: String?
        /// The reason parsed as JSON (the server's error envelope), if it is JSON.
        public var envelope: JSONValue? { reason.flatMap { JSONValue.parse($0) } }
        public var description: String { "\(code) \(reason ?? "")" }
    }

    /// The upgrade answer's header lines (`name: value`), lower-cased names.
    public private(set) var handshakeHeaders: [(String, String)] = []
    /// How the server closed, once it has.
    public private(set) var close: Close?

    private let fd: Int32
    private let queue = DispatchQueue(label: "ws-test-client")
    private var buffer: [UInt8] = []
    private var closedByServer = false

    private init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        Glibc.close(fd)
    }

    /// The `ws://` URL of `path` on an `http://` base URL.
    public static func url(_ baseURL: String, _ path: String) -> String {
        baseURL.replacingOccurrences(of: "http://", with: "ws://") + path
    }

    /// Connects, runs `body`, closes (normal closure unless the server closed first), and
    /// returns what `body` returned and how the server closed the connection.
    /// - Parameters:
    ///   - protocols: offered in `Sec-WebSocket-Protocol`.
    ///   - headers: extra handshake headers (`Authorization`, …).
    ///   - receiveBufferBytes: a small `SO_RCVBUF`, for a client that stops reading.
    public static func connect<T: Sendable>(
        _ url: String, protocols: [String] = [], headers: [String: String] = [:], receiveBufferBytes: Int? = nil,
        _ body: @Sendable (WebSocketTestClient) async throws -> T
    ) async throws -> (value: T, close: Close?) {
        let client = try await open(url, protocols: protocols, headers: headers, receiveBufferBytes: receiveBufferBytes)
        do {
            let value = try await body(client)
            let close = try await client.finish()
            return (value, close)
        } catch {
            _ = try? await client.finish()
            throw error
        }
    }

    /// Opens a connection; the caller must `finish()` it.
    public static func open(
        _ url: String, protocols: [String] = [], headers: [String: String] = [:], receiveBufferBytes: Int? = nil
    ) async throws -> WebSocketTestClient {
        guard let components = URLComponents(string: url), let port = components.port else { throw HarnessError("bad URL \(url)") }
        var path = components.percentEncodedPath
        if let query = components.percentEncodedQuery { path += "?" + query }
        var request = "GET \(path) HTTP/1.1\r\nHost: localhost:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: \(Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString())\r\n"
        request += "Sec-WebSocket-Version: 13\r\n"
        if !protocols.isEmpty { request += "Sec-WebSocket-Protocol: \(protocols.joined(separator: ", "))\r\n" }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let handshake = request
        let fd = try Socket.connect(port: UInt16(port), receiveBufferBytes: receiveBufferBytes)
        let client = WebSocketTestClient(fd: fd)
        try await client.run { try client.handshake(handshake) }
        return client
    }

    /// The next message, or `nil` once the server has closed the connection.
    public func receive() async throws -> JSONValue? {
        try await run { try self.readMessage() }
    }

    /// Sends a JSON text message.
    public func send(_ message: JSONValue) async throws {
        try await send(text: message.jsonText())
    }

    /// Sends a raw text message (for protocol-error tests).
    public func send(text: String) async throws {
        try await run { try self.writeFrame(opcode: 0x1, payload: Array(text.utf8)) }
    }

    /// Every message until the server closes the connection.
    public func receiveAll() async throws -> [JSONValue] {
        var messages: [JSONValue] = []
        while let message = try await receive() { messages.append(message) }
        return messages
    }

    /// Messages until one satisfies `stop` (included), or the connection closes.
    public func receive(until stop: (JSONValue) -> Bool) async throws -> [JSONValue] {
        var messages: [JSONValue] = []
        while let message = try await receive() {
            messages.append(message)
            if stop(message) { break }
        }
        return messages
    }

    /// Closes from this side (1000) unless the server already closed, waits for the server's
    /// close, and returns the server's close frame.
    public func finish() async throws -> Close? {
        try await run {
            if !self.closedByServer {
                try? self.writeFrame(opcode: 0x8, payload: [0x03, 0xE8])
                // Drain until the server's close (or the end of the connection).
                while (try? self.readMessage()) != nil {}
            }
            shutdown(self.fd, Int32(SHUT_RDWR))
            return self.close
        }
    }

    public func header(_ name: String) -> String? {
        handshakeHeaders.first { $0.0 == name.lowercased() }?.1
    }

    // MARK: - Blocking work on the connection's queue

    private func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    private func handshake(_ request: String) throws {
        try Socket.write(fd, Array(request.utf8))
        while true {
            if let end = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                buffer.removeSubrange(..<end.upperBound)
                let lines = head.components(separatedBy: "\r\n")
                guard lines.first?.contains(" 101 ") == true else { throw HarnessError("upgrade refused: \(head)") }
                handshakeHeaders = lines.dropFirst().compactMap { line in
                    guard let colon = line.firstIndex(of: ":") else { return nil }
                    return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
                }
                return
            }
            guard try fill() else { throw HarnessError("connection closed during the handshake") }
        }
    }

    /// Reads frames until a whole text message (returned as JSON) or the server's close (nil).
    private func readMessage() throws -> JSONValue? {
        guard !closedByServer else { return nil }
        var message: [UInt8] = []
        while true {
            guard let (fin, opcode, payload) = try readFrame() else {
                closedByServer = true
                return nil
            }
            switch opcode {
            case 0x8:
                closedByServer = true
                if payload.count >= 2 {
                    let code = Int(payload[0]) << 8 | Int(payload[1])
                    close = Close(code: code, reason: payload.count > 2 ? String(decoding: payload[2...], as: UTF8.self) : nil)
                } else {
                    close = Close(code: 1005, reason: nil)
                }
                try? writeFrame(opcode: 0x8, payload: Array(payload.prefix(2)))
                return nil
            case 0x9:
                try writeFrame(opcode: 0xA, payload: payload)
            case 0xA:
                break
            case 0x1, 0x0:
                message += payload
                if fin {
                    let text = String(decoding: message, as: UTF8.self)
                    guard let json = JSONValue.parse(text) else { throw HarnessError("not a JSON message: \(text.prefix(200))") }
                    return json
                }
            default:
                throw HarnessError("unexpected opcode \(opcode)")
            }
        }
    }

    private func readFrame() throws -> (fin: Bool, opcode: UInt8, payload: [UInt8])? {
        guard try need(2) else { return nil }
        let fin = buffer[0] & 0x80 != 0
        let opcode = buffer[0] & 0x0F
        var length = Int(buffer[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard try need(4) else { return nil }
            length = Int(buffer[2]) << 8 | Int(buffer[3])
            offset = 4
        } else if length == 127 {
            guard try need(10) else { return nil }
            length = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        guard try need(offset + length) else { return nil }
        let payload = Array(buffer[offset..<(offset + length)])
        buffer.removeSubrange(..<(offset + length))
        return (fin, opcode, payload)
    }

    /// Makes sure `count` bytes are buffered; `false` at the end of the connection.
    private func need(_ count: Int) throws -> Bool {
        while buffer.count < count {
            guard try fill() else { return false }
        }
        return true
    }

    private func fill() throws -> Bool {
        let chunk = try Socket.read(fd)
        buffer += chunk
        return !chunk.isEmpty
    }

    /// A masked client frame.
    private func writeFrame(opcode: UInt8, payload: [UInt8]) throws {
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65536 {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(0x80 | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try Socket.write(fd, frame)
    }
}

/// Blocking loopback socket calls for `WebSocketTestClient`.
enum Socket {
    static func connect(port: UInt16, receiveBufferBytes: Int?) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(errno)") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if var size = receiveBufferBytes.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            Glibc.close(fd)
            throw HarnessError("connect to port \(port): \(errno)")
        }
        return fd
    }

    static func write(_ fd: Int32, _ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw HarnessError("send: \(errno)") }
            written += count
        }
    }

    /// Up to 64 KiB; empty at the end of the connection (or a reset).
    static func read(_ fd: Int32) throws -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.recv(fd, &chunk, chunk.count, 0)
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == ECONNRESET { return [] }
            guard count >= 0 else { throw HarnessError("recv: \(errno) (timed out or failed)") }
            return Array(chunk[0..<count])
        }
    }
}

extension JSONValue {
    /// A stream message's `seq` (event messages only).
    public var streamSeq: Int? { self["seq"]?.intValue }
    /// A control message's `type` when it has no `seq` (`end`, `submitted`, `error`, …).
    public var controlType: String? { self["seq"] == nil ? self["type"]?.stringValue : nil }
}
