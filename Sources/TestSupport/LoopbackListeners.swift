import Foundation

/// Sockets a test opens on the host's loopback, on one port: TCP on 127.0.0.1 and ::1, UDP on
/// 127.0.0.1. A probe in the sandbox aims at that port; `received()` counts what arrived
/// (connections accepted plus datagrams), which must stay zero.
public final class LoopbackListeners: Sendable {
    public let port: Int
    private let descriptors: [Int32]

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public init() throws {
        for _ in 0..<20 {
            let tcp4 = try Self.socket(AF_INET, Int32(SOCK_STREAM.rawValue))
            guard let port = Self.bind(tcp4, family: AF_INET, port: 0) else { Glibc.close(tcp4); continue }
            let tcp6 = try Self.socket(AF_INET6, Int32(SOCK_STREAM.rawValue))
            let udp = try Self.socket(AF_INET, Int32(SOCK_DGRAM.rawValue))
            if Self.bind(tcp6, family: AF_INET6, port: port) != nil, Self.bind(udp, family: AF_INET, port: port) != nil,
               listen(tcp4, 16) == 0, listen(tcp6, 16) == 0 {
                self.port = port
                self.descriptors = [tcp4, tcp6, udp]
                return
            }
            for fd in [tcp4, tcp6, udp] { Glibc.close(fd) }
        }
        throw Failure(description: "no loopback port free for TCP, TCP6 and UDP at once")
    }

    public func received() -> Int {
        var count = 0
        for fd in descriptors.prefix(2) {
            while case let client = accept(fd, nil, nil), client >= 0 {
                count += 1
                Glibc.close(client)
            }
        }
        var buffer = [UInt8](repeating: 0, count: 64)
        while recv(descriptors[2], &buffer, buffer.count, 0) >= 0 { count += 1 }
        return count
    }

    public func close() { for fd in descriptors { Glibc.close(fd) } }

    private static func socket(_ family: Int32, _ type: Int32) throws -> Int32 {
        let fd = Glibc.socket(family, type | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        return fd
    }

    /// Binds to the loopback address of `family`; the port bound, or nil.
    private static func bind(_ fd: Int32, family: Int32, port: Int) -> Int? {
        if family == AF_INET {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = in_addr_t(UInt32(0x7f00_0001).bigEndian)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { return nil }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            return Int(UInt16(bigEndian: address.sin_port))
        }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = in_port_t(UInt16(port).bigEndian)
        address.sin6_addr = in6addr_loopback
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        return bound == 0 ? port : nil
    }
}
