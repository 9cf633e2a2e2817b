import Logging
import Queue

/// Where a running job's model usage is reported as it happens: the CLI's stream-json as the
/// worker reads it, and the job's model gateway as it forwards replies.
protocol ModelUsageSink: Sendable {
    /// Usage of one model response so far. Reporting the same `response` again replaces its
    /// earlier figures, so a response may be reported at its start and again when complete.
    func record(response: String, model: String?, tokens: ModelTokens) async
    /// Everything the job's model gateway has counted so far (replaces the previous report).
    func observe(gateway usage: GatewayUsage) async
}

/// Counts one run's model usage and charges it to its user's daily budgets as it grows
/// (`LimitStore.chargeUsage`); when a charge finds a budget crossed, `onExceeded` is called
/// once (the runner stops the agent and fails the job `E008` with `details.budget`).
///
/// Running figures come from model responses (`record`): the CLI's `assistant` lines carry
/// `message.usage` (exact input and cache tokens; output only as far as the response has been
/// streamed), spend is estimated from list prices. `settle` replaces them with the CLI's final
/// `result` — exact tokens and `total_cost_usd` — so the day's totals are exact for every run
/// that ends with a result, and as exact as the last report for one that does not (killed).
///
/// The gateway's count (`observe(gateway:)`) is a floor under all of it. The CLI's figures are
/// the agent's own account, printed from inside the sandbox, and they lag the reply (output as
/// far as it has been printed) or never come (an agent stopped mid-reply); the gateway runs in
/// the worker and counts what the upstream reported as it streams. What is charged is, field by
/// field, the larger of the two.
/// An actor, so charges reach the store in order and a later total never loses to an earlier.
actor JobUsageCounter: ModelUsageSink {
    private let store: any LimitStore
    private let jobID: JobID
    private let owner: String
    private let logger: Logger
    private let onExceeded: @Sendable (BudgetExhaustion) -> Void
    private var responses: [String: (model: String?, tokens: ModelTokens)] = [:]
    /// What the CLI's own output reports, and what the gateway counted.
    private var reported = MeteredUsage()
    private var gatewayFloor = MeteredUsage()
    private var charged = MeteredUsage()
    private var settled = false
    /// The budget this run crossed, once it did.
    private(set) var exceeded: BudgetExhaustion?

    init(store: any LimitStore, jobID: JobID, owner: String, logger: Logger,
         onExceeded: @escaping @Sendable (BudgetExhaustion) -> Void) {
        self.store = store
        self.jobID = jobID
        self.owner = owner
        self.logger = logger
        self.onExceeded = onExceeded
    }

    func record(response: String, model: String?, tokens: ModelTokens) async {
        guard !settled, responses[response]?.tokens != tokens else { return }
        responses[response] = (model, tokens)
        reported = Self.metered(responses.values.map { ($0.model, $0.tokens) })
        await charge(Self.larger(reported, gatewayFloor))
    }

    func observe(gateway usage: GatewayUsage) async {
        guard !settled else { return }
        gatewayFloor = Self.metered(usage.tokensByModel.map { ($0.key.isEmpty ? nil : $0.key, $0.value) })
        await charge(Self.larger(reported, gatewayFloor))
    }

    /// Counts an `assistant` line of the CLI's stream-json (other events are ignored).
    func observe(_ event: NewEvent) async {
        guard event.type == "assistant", let line = JSONValue.parse(event.data),
              let message = line["message"], let id = message["id"]?.stringValue,
              let tokens = ModelTokens(usage: message["usage"]) else { return }
        await record(response: id, model: message["model"]?.stringValue, tokens: tokens)
    }

    /// Charges the run's final figures from the CLI's `result` line (its `usage` and
    /// `total_cost_usd`), never below the gateway's count; without a result the running
    /// figures stand. Call it after the gateway's last report: later reports are ignored.
    func settle(result: JSONValue?) async {
        guard !settled else { return }
        settled = true
        guard let result, let tokens = ModelTokens(usage: result["usage"]) else { return }
        let cost = result["total_cost_usd"]?.doubleValue.map(MeteredUsage.micros(usd:)) ?? reported.costMicroUSD
        await charge(Self.larger(MeteredUsage(tokens: tokens.budgeted, costMicroUSD: cost), gatewayFloor))
    }

    /// Budgeted tokens and list-price spend of per-model token counts.
    private static func metered(_ usage: [(model: String?, tokens: ModelTokens)]) -> MeteredUsage {
        var total = MeteredUsage()
        for (model, tokens) in usage {
            total.tokens += tokens.budgeted
            total.costMicroUSD += MeteredUsage.micros(usd: ModelPrices.estimate(tokens, model: model))
        }
        return total
    }

    private static func larger(_ a: MeteredUsage, _ b: MeteredUsage) -> MeteredUsage {
        MeteredUsage(tokens: max(a.tokens, b.tokens), costMicroUSD: max(a.costMicroUSD, b.costMicroUSD))
    }

    private func charge(_ total: MeteredUsage) async {
        guard total != charged else { return }
        do {
            let check = try await store.chargeUsage(jobID, owner: owner, attemptTotal: total)
            charged = total
            if case .exceeded(let spent) = check, exceeded == nil, !settled {
                exceeded = spent
                logger.notice("daily budget crossed: stopping the job",
                              metadata: ["budget": "\(spent.budget.rawValue)", "used": "\(spent.used)", "limit": "\(spent.limit)"])
                onExceeded(spent)
            }
        } catch {
            // A lost lease ends the run anyway; anything else is retried with the next report.
            logger.warning("could not charge model usage", metadata: ["error": "\(error)"])
        }
    }
}
