import Foundation
import HTTPTypes
import Hummingbird
import Queue

/// `GET /v1/me`: who the caller is, the limits in force for them and how much of each they
/// use right now, so a client can see why it is throttled and when that ends.
struct MeController {
    let store: any JobStore
    let workspaces: WorkspaceStore

    func addRoutes(to group: RouterGroup<JobServerRequestContext>) {
        group.get("me", use: me)
    }

    @Sendable func me(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        async let limits = store.limits(of: user.id)
        async let usage = store.usage(of: user.id)
        let workspaces = self.workspaces
        let diskBytes = try await BlockingIO.run { try workspaces.userBytes(user: user.id) }
        let body = try await Self.render(user: user, limits: limits, usage: usage, diskBytes: diskBytes)
        var headers: HTTPFields = [:]
        RateLimitFields.add(try await usage.rate, to: &headers)
        return JSONBody.response(body, headers: headers)
    }

    static func render(user: User, limits: UserLimits, usage: UserUsage, diskBytes: Int64) -> JSONValue {
        func number<T: BinaryInteger>(_ value: T?) -> JSONValue { value.map { .number(Double($0)) } ?? .null }
        func dollars(_ micros: Int64?) -> JSONValue { micros.map { .number(Double($0) / 1_000_000) } ?? .null }
        let rate: JSONValue = limits.rate.map {
            .object(["limit": .number(Double($0.count)), "period_s": .number(Double($0.periodMillis) / 1000)])
        } ?? .null
        var costs: [String: JSONValue] = [:]
        for kind in JobKind.allCases { costs[kind.rawValue] = .number(Double(limits.cost(of: kind.rawValue))) }
        return .object([
            "user": .object(["id": .string(user.id.rawValue), "name": .string(user.name),
                             "created_at": JobView.timestamp(user.createdAt)]),
            "limits": .object([
                "rate": rate, "burst": .number(Double(limits.burst)),
                "max_running": number(limits.maxRunning), "max_queued": number(limits.maxQueued),
                "daily_tokens": number(limits.dailyTokens), "daily_cost_usd": dollars(limits.dailyCostMicroUSD),
                "disk_quota_bytes": number(limits.diskQuotaBytes), "kind_costs": .object(costs),
            ]),
            "usage": .object([
                "queued_jobs": number(usage.queuedJobs), "queued_cost": number(usage.queuedCost),
                "running_jobs": number(usage.runningJobs), "running_cost": number(usage.runningCost),
                "rate_remaining": number(usage.rate?.remaining), "rate_reset_s": number(usage.rate?.resetSeconds),
                "day": .string(usage.day.formatted(.iso8601.year().month().day())),
                "tokens_today": number(usage.today.tokens), "cost_usd_today": dollars(usage.today.costMicroUSD),
                "budget_resets_at": JobView.timestamp(UsageDay.nextReset(after: usage.day)),
                "disk_bytes": number(diskBytes),
            ]),
        ])
    }
}
