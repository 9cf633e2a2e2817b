import Foundation
import NIOCore
import Queue
import Testing
@testable import JobServer

/// A temporary directory removed when the test ends.
final class WorkspaceTempDirectory {
    let path: String

    init() throws {
        let base = URL(fileURLWithPath: "/tmp").appendingPathComponent("ws-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func sub(_ name: String) -> String { path + "/" + name }
}

enum WS {
    static let user = UserID(rawValue: "usr_test")

    static func project(_ name: String = "demo") throws -> ProjectName { try ProjectName(validating: name) }
    static func path(_ text: String) throws -> RelativePath { try RelativePath(validating: text) }
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func write(_ path: String, _ text: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    static func read(_ path: String) throws -> String {
        String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
    }

    /// Runs `body`, requiring it to throw a `JobError` with `code`; returns the error.
    @discardableResult
    static func expectError(_ code: ErrorCode, sourceLocation: SourceLocation = #_sourceLocation,
                            _ body: () throws -> Void) -> JobError? {
        do {
            try body()
            Issue.record("expected \(code.rawValue), but nothing was thrown", sourceLocation: sourceLocation)
            return nil
        } catch let error as JobError {
            #expect(error.code == code, "got \(error.code.rawValue): \(error.message)", sourceLocation: sourceLocation)
            return error
        } catch {
            Issue.record("expected JobError \(code.rawValue), got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// A raw tar header block, checksummed (built by hand so tests can make hostile ones).
    static func header(_ name: String, type: Character = "0", size: Int = 0, mode: Int = 0o644,
                       linkName: String = "", gnuMagic: Bool = false) -> [UInt8] {
        var header = TarHeader()
        header.set(name: Array(name.utf8))
        header.setOctal(offset: 100, length: 8, value: mode)
        header.setOctal(offset: 108, length: 8, value: 0)
        header.setOctal(offset: 116, length: 8, value: 0)
        header.setOctal(offset: 124, length: 12, value: size)
        header.setOctal(offset: 136, length: 12, value: 0)
        header.block[156] = type.asciiValue ?? 0
        let link = Array(linkName.utf8.prefix(100))
        header.block.replaceSubrange(157..<(157 + link.count), with: link)
        header.finish()
        if gnuMagic {
            header.block.replaceSubrange(257..<265, with: Array("ustar  ".utf8) + [0])
            header.block.replaceSubrange(148..<156, with: [UInt8](repeating: UInt8(ascii: " "), count: 8))
            let sum = header.block.reduce(0) { $0 + Int($1) }
            let digits = Array(String(sum, radix: 8).utf8)
            header.block.replaceSubrange(148..<156, with: [UInt8](repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits + [0, 32])
        }
        return header.block
    }

    /// Data padded to whole 512-byte blocks.
    static func padded(_ data: [UInt8]) -> [UInt8] {
        data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    static func entry(_ name: String, _ text: String, type: Character = "0") -> [UInt8] {
        header(name, type: type, size: text.utf8.count) + padded(Array(text.utf8))
    }

    static let end = [UInt8](repeating: 0, count: 1024)

    static func gzip(_ bytes: [UInt8]) throws -> ByteBuffer { try Gzip.compress(bytes) }

    /// Reads a plain tar with the strict reader.
    static func readTar(_ bytes: [UInt8], limits: WorkspaceLimits = WorkspaceLimits()) throws -> [TarEntry] {
        var reader = TarReader(MemoryByteSource(bytes), limits: limits)
        var entries: [TarEntry] = []
        while let entry = try reader.next() { entries.append(entry) }
        return entries
    }

    /// Runs a command, returning its exit status.
    @discardableResult
    static func run(_ arguments: [String], in directory: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
