import ArgumentParser
import Foundation
import Queue

/// `jobserver user limits NAME|--default [--rate 60/min] [--burst 10] [--max-running 2]
/// [--max-queued 50] [--daily-tokens N] [--daily-cost-usd X] [--disk-quota 1G] [--kind-cost KIND=N]`
///
/// Changes the limits stored for one user, or (`--default`) the store-wide defaults every user
/// inherits, then prints the limits in force. Each value may also be `none` (no limit) or
/// `default` (inherit again). The store holds them, so every server and worker sharing it
/// applies the change at once, without a restart.
struct LimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits",
        abstract: "Show or change a user's limits (or, with --default, everyone's defaults).",
        discussion: "Values: a number (or rate N/s, N/min, N/h, N/day; size with K, M, G), 'none' for no limit, 'default' to inherit.")

    @OptionGroup var store: StoreOptions

    @Argument(help: "The user's name (omit with --default).")
    var name: String?

    @Flag(name: .customLong("default"), help: "Change the store-wide defaults instead of one user's limits.")
    var defaults = false

    @Option(help: "Submissions per period, e.g. 60/min.") var rate: String?
    @Option(help: "Submissions allowed at once before the rate applies.") var burst: String?
    @Option(help: "Cost units of the user's jobs running at once.") var maxRunning: String?
    @Option(help: "Cost units of the user's jobs waiting in the queue.") var maxQueued: String?
    @Option(help: "Model tokens (input + output + cache creation) per UTC day.") var dailyTokens: String?
    @Option(help: "Model spend in US dollars per UTC day.") var dailyCostUsd: String?
    @Option(help: "Bytes of all the user's workspaces, e.g. 2G.") var diskQuota: String?
    @Option(help: "Cost units of a job kind, e.g. generate=3 (repeatable; KIND=default removes it).")
    var kindCost: [String] = []

    func validate() throws {
        guard defaults != (name != nil) else { throw ValidationError("name a user or pass --default, not both") }
        _ = try changes()
    }

    func run() async throws {
        let jobStore = try store.openStore()
        let scope: LimitScope
        var title = "defaults for every user"
        if let name {
            guard let user = try await jobStore.user(named: name) else { throw ValidationError("no user named '\(name)'") }
            scope = .user(user.id)
            title = "user \(user.name) (\(user.id))"
        } else {
            scope = .defaults
        }
        let change = try changes()
        let overrides = try await jobStore.updateLimits(for: scope) { change(&$0) }
        let limits: UserLimits
        switch scope {
        case .user(let id): limits = try await jobStore.limits(of: id)
        case .defaults: limits = overrides.applied(to: UserLimits.standard)
        }
        print("limits of \(title):")
        for (key, value) in LimitText.lines(limits) { print("\(key)\t\(value)") }
    }

    /// The requested changes as one function over the stored overrides.
    func changes() throws -> @Sendable (inout LimitOverrides) -> Void {
        let rate = try self.rate.map { try LimitText.setting($0, name: "--rate", allowNone: true) { RatePolicy(parsing: $0) } }
        let burst = try self.burst.map { try LimitText.setting($0, name: "--burst", allowNone: false) { LimitText.count($0) } }
        let running = try maxRunning.map { try LimitText.setting($0, name: "--max-running", allowNone: true) { LimitText.count($0) } }
        let queued = try maxQueued.map { try LimitText.setting($0, name: "--max-queued", allowNone: true) { LimitText.count($0) } }
        let tokens = try dailyTokens.map { try LimitText.setting($0, name: "--daily-tokens", allowNone: true) { LimitText.count($0).map(Int64.init) } }
        let cost = try dailyCostUsd.map { try LimitText.setting($0, name: "--daily-cost-usd", allowNone: true) { LimitText.dollars($0) } }
        let disk = try diskQuota.map { try LimitText.setting($0, name: "--disk-quota", allowNone: true) { LimitText.bytes($0) } }
        var kinds: [String: Int?] = [:]
        for entry in kindCost {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, JobKind(rawValue: parts[0]) != nil else {
                throw ValidationError("--kind-cost takes KIND=N with KIND one of \(JobKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if parts[1] == "default" {
                kinds[parts[0]] = .some(nil)
            } else if let cost = Int(parts[1]), (1...1000).contains(cost) {
                kinds[parts[0]] = cost
            } else {
                throw ValidationError("--kind-cost \(parts[0]) must be 1…1000 or 'default'")
            }
        }
        let kindChanges = kinds
        return { overrides in
            if let rate { overrides.rate = rate }
            if let burst { overrides.burst = burst }
            if let running { overrides.maxRunning = running }
            if let queued { overrides.maxQueued = queued }
            if let tokens { overrides.dailyTokens = tokens }
            if let cost { overrides.dailyCostMicroUSD = cost }
            if let disk { overrides.diskQuotaBytes = disk }
            for (kind, cost) in kindChanges { overrides.kindCosts[kind] = cost }
        }
    }
}

/// Reading and printing limit values for the admin command line.
enum LimitText {
    static func setting<T>(_ text: String, name: String, allowNone: Bool, parse: (String) -> T?) throws -> LimitSetting<T> {
        switch text.lowercased() {
        case "default": return .inherit
        case "none" where allowNone: return .unlimited
        default:
            guard let value = parse(text) else { throw ValidationError("\(name): cannot read '\(text)'") }
            return .value(value)
        }
    }

    /// A whole number of at least 1.
    static func count(_ text: String) -> Int? {
        Int(text.replacingOccurrences(of: "_", with: "")).flatMap { $0 >= 1 ? $0 : nil }
    }

    /// Dollars (`12.50`) as millionths; at least one millionth.
    static func dollars(_ text: String) -> Int64? {
        guard let value = Double(text.trimmingCharacters(in: CharacterSet(charactersIn: "$"))), value > 0, value < 1e9 else { return nil }
        return max(1, MeteredUsage.micros(usd: value))
    }

    /// Bytes, with an optional binary suffix `K`, `M`, `G`, `T` (`KiB` etc. too).
    static func bytes(_ text: String) -> Int64? {
        var number = text.uppercased().replacingOccurrences(of: "IB", with: "").replacingOccurrences(of: "B", with: "")
        var shift: Int64 = 0
        if let unit = number.last, let power = ["K": 10, "M": 20, "G": 30, "T": 40][String(unit)] {
            shift = Int64(power)
            number.removeLast()
        }
        guard let value = Int64(number), value >= 1, value < (Int64(1) << (62 - shift)) else { return nil }
        return value << shift
    }

    /// `key`, value lines of the limits in force (`none` where unlimited).
    static func lines(_ limits: UserLimits) -> [(String, String)] {
        func show<T>(_ value: T?) -> String { value.map { "\($0)" } ?? "none" }
        return [
            ("rate", show(limits.rate)), ("burst", "\(limits.burst)"),
            ("max_running", show(limits.maxRunning)), ("max_queued", show(limits.maxQueued)),
            ("daily_tokens", show(limits.dailyTokens)),
            ("daily_cost_usd", show(limits.dailyCostMicroUSD.map { String(format: "%.6f", Double($0) / 1_000_000) })),
            ("disk_quota_bytes", show(limits.diskQuotaBytes)),
            ("kind_costs", JobKind.allCases.map { "\($0.rawValue)=\(limits.cost(of: $0.rawValue))" }.joined(separator: ",")),
        ]
    }
}
