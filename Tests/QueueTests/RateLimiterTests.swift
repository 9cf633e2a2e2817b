import Queue
import Testing

/// The GCRA state machine on its own: times are plain microseconds, no clock, no store.
@Suite struct RateLimiterTests {
    static let second: Int64 = 1_000_000

    @Test func aFullBucketAllowsTheBurstThenTheSustainedRate() {
        let gcra = GCRA(policy: .perMinute(60), burst: 10)
        var tat: Int64?
        let start: Int64 = 1_000 * Self.second
        for n in 1...10 {
            let decision = gcra.decide(tat: tat, now: start)
            #expect(decision.allowed, "request \(n) of the burst")
            #expect(decision.status.remaining == 10 - n)
            #expect(decision.status.resetSeconds == n)
            tat = decision.tat
        }
        let refused = gcra.decide(tat: tat, now: start)
        #expect(!refused.allowed)
        #expect(refused.tat == tat, "a refusal leaves the state alone")
        #expect(refused.retryAfterMicros == Self.second)
        #expect(refused.status == RateLimitStatus(quota: 10, windowSeconds: 10, remaining: 0, resetSeconds: 10))
        // One unit comes back per emission interval, not earlier.
        #expect(!gcra.decide(tat: tat, now: start + Self.second - 1).allowed)
        let next = gcra.decide(tat: tat, now: start + Self.second)
        #expect(next.allowed)
        #expect(next.status.remaining == 0)
        // An idle client gets its whole burst back, never more.
        let rested = gcra.status(tat: next.tat, now: start + 3600 * Self.second)
        #expect(rested == RateLimitStatus(quota: 10, windowSeconds: 10, remaining: 10, resetSeconds: 0))
    }

    @Test func costsSpendSeveralUnitsAndAreCappedAtTheBurst() {
        let gcra = GCRA(policy: .perSecond(2), burst: 4)
        let now: Int64 = 5 * Self.second
        let heavy = gcra.decide(tat: nil, now: now, cost: 3)
        #expect(heavy.allowed && heavy.status.remaining == 1)
        let second = gcra.decide(tat: heavy.tat, now: now, cost: 3)
        #expect(!second.allowed)
        #expect(second.retryAfterMicros == Self.second, "two more units take one second at 2/s")
        // A cost above the burst is charged as the burst: possible from a full bucket only.
        let huge = gcra.decide(tat: nil, now: now, cost: 50)
        #expect(huge.allowed && huge.status.remaining == 0)
        #expect(!gcra.decide(tat: heavy.tat, now: now, cost: 50).allowed)
    }

    @Test func statusPeeksWithoutSpending() {
        let gcra = GCRA(policy: .perMinute(1), burst: 2)
        let first = gcra.decide(tat: nil, now: 0)
        #expect(gcra.status(tat: first.tat, now: 0) == first.status)
        #expect(first.status == RateLimitStatus(quota: 2, windowSeconds: 120, remaining: 1, resetSeconds: 60))
        #expect(gcra.decide(tat: first.tat, now: 0).allowed)
    }

    @Test(arguments: [
        ("60/min", 60, Int64(60_000)), ("5/s", 5, 1000), ("10/sec", 10, 1000), ("100/h", 100, 3_600_000),
        ("1000/day", 1000, 86_400_000), ("3/5min", 3, 300_000), (" 7 / m ", 7, 60_000),
    ])
    func ratesParse(_ text: String, _ count: Int, _ millis: Int64) {
        #expect(RatePolicy(parsing: text) == RatePolicy(count: count, periodMillis: millis))
    }

    @Test(arguments: ["", "60", "0/min", "-1/s", "x/min", "5/fortnight", "5/0s", "2000000000/s"])
    func badRatesDoNotParse(_ text: String) {
        #expect(RatePolicy(parsing: text) == nil)
    }

    @Test func ratesPrintAsTheyParse() {
        for text in ["60/min", "5/s", "100/hour", "1000/day", "3/5min"] {
            let policy = RatePolicy(parsing: text)
            #expect(policy.map { RatePolicy(parsing: $0.description) } == policy, "\(text)")
        }
        #expect(RatePolicy.perMinute(60).description == "60/min")
    }
}
