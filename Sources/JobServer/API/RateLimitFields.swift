import Foundation
import HTTPTypes
import Queue

/// The IETF rate-limit header fields (draft-ietf-httpapi-ratelimit-headers-09/-10), rendered
/// from the store's GCRA state.
///
/// - `RateLimit-Policy: "submit";q=10;w=10`: the bucket holds `q` submissions (cost units)
///   and refills completely in `w` seconds, i.e. the sustained rate is q/w and the burst q.
/// - `RateLimit: "submit";r=7;t=3`: `r` units may be spent now; in `t` seconds the bucket is
///   full again.
///
/// Both are structured-field lists with one item named after the policy. They are sent on
/// every answer of `POST /v1/jobs` (accepted or refused) and of `GET /v1/me` while the
/// caller's rate is limited, so clients can pace themselves; a refusal adds `Retry-After`.
enum RateLimitFields {
    static let policyName = "submit"
    static let policy = HTTPField.Name("RateLimit-Policy")!
    static let current = HTTPField.Name("RateLimit")!

    /// Adds both fields for `status` (nothing when the rate is unlimited).
    static func add(_ status: RateLimitStatus?, to headers: inout HTTPFields) {
        guard let status else { return }
        headers[policy] = "\"\(policyName)\";q=\(status.quota);w=\(max(1, status.windowSeconds))"
        headers[current] = "\"\(policyName)\";r=\(status.remaining);t=\(status.resetSeconds)"
    }
}

extension APIError {
    /// A refused submission: `429 E002` or `503 E015`, with `Retry-After` and the rate fields.
    init(_ refusal: LimitRefusal, now: Date = Date()) {
        var headers: HTTPFields = [.retryAfter: String(refusal.retryAfterSeconds(now: now))]
        RateLimitFields.add(refusal.status, to: &headers)
        self.init(refusal.code, refusal.message, details: refusal.details(now: now), headers: headers)
    }
}
