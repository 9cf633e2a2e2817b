import Foundation
import Testing
import Queue

/// Job ids sort by creation time and carry 80 random bits: every random position takes every
/// character of the alphabet, and ids made in the same millisecond do not collide.
struct IdentifierTests {
    @Test func idsAreWellFormedUniqueAndTimeOrdered() throws {
        let date = Date(timeIntervalSince1970: 1_790_000_000.123)
        let ids = (0..<20_000).map { _ in JobID.generate(at: date).rawValue }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(100) {
            #expect(id.hasPrefix("job_") && id.utf8.count == 30)
            #expect(JobID(rawValue: id) != nil)
        }
        // Each of the 16 random positions takes all 32 characters over 20,000 ids.
        let random = ids.map { Array($0.utf8.suffix(16)) }
        for position in 0..<16 {
            #expect(Set(random.map { $0[position] }).count == 32, "position \(position)")
        }
        // Later milliseconds sort after earlier ones.
        let later = JobID.generate(at: date.addingTimeInterval(0.001)).rawValue
        #expect(ids.allSatisfy { $0 < later })
    }
}
