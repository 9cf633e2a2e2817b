import Foundation

/// A job's public identifier: `job_` followed by 26 lowercase base32 characters.
///
/// The first ten characters encode the creation time in milliseconds, so identifiers sort by
/// creation time; the rest is random, so they cannot be guessed from one another.
public struct JobID: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init?(rawValue: String) {
        guard rawValue.hasPrefix("job_"), rawValue.utf8.count == 30,
              rawValue.utf8.dropFirst(4).allSatisfy(SortableID.isAlphabetByte) else { return nil }
        self.rawValue = rawValue
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = JobID(rawValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a job id"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public static func generate(at date: Date = Date()) -> JobID {
        JobID(unchecked: "job_" + SortableID.make(at: date))
    }

    private init(unchecked: String) { self.rawValue = unchecked }

    public static func < (lhs: JobID, rhs: JobID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { rawValue }
}

/// A user's identifier (`usr_…`), never shown to other users.
public struct UserID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static func generate() -> UserID { UserID(rawValue: "usr_" + SortableID.make(at: Date())) }
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// Time-sortable random identifiers (the ULID layout in a lowercase alphabet).
enum SortableID {
    static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    static func isAlphabetByte(_ byte: UInt8) -> Bool { alphabet.contains(byte) }

    static func make(at date: Date) -> String {
        var millis = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        var time = [UInt8](repeating: 0, count: 10)
        for index in stride(from: 9, through: 0, by: -1) {
            time[index] = alphabet[Int(millis & 31)]
            millis >>= 5
        }
        // 80 random bits from two draws (each draw is a getrandom(2) call), 5 bits per character.
        var generator = SystemRandomNumberGenerator()
        let words: (UInt64, UInt64) = (generator.next(), generator.next())
        var bytes = time
        bytes.reserveCapacity(26)
        for index in 0..<16 {
            let word = index < 12 ? words.0 >> (5 * UInt64(index)) : words.1 >> (5 * UInt64(index - 12))
            bytes.append(alphabet[Int(word & 31)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
