/// List prices per million tokens, to estimate a running job's spend before the CLI reports
/// the exact figure in its `result` (which then replaces the estimate). Only the model family
/// is looked at; an unknown model is priced as the middle family, so the estimate neither
/// stops jobs far too early nor lets them run far past a dollar budget.
enum ModelPrices {
    struct Price {
        var input: Double
        var output: Double
        /// Writing to the prompt cache costs 1.25× input, reading 0.1× (Anthropic's list).
        var cacheCreation: Double { input * 1.25 }
        var cacheRead: Double { input * 0.1 }
    }

    static func price(for model: String?) -> Price {
        let name = model?.lowercased() ?? ""
        if name.contains("opus") { return Price(input: 5, output: 25) }
        if name.contains("haiku") { return Price(input: 1, output: 5) }
        return Price(input: 3, output: 15)
    }

    /// Estimated dollars for `tokens` of `model`.
    static func estimate(_ tokens: ModelTokens, model: String?) -> Double {
        let price = price(for: model)
        let millionths = Double(tokens.input) * price.input + Double(tokens.output) * price.output
            + Double(tokens.cacheCreation) * price.cacheCreation + Double(tokens.cacheRead) * price.cacheRead
        return millionths / 1_000_000
    }
}
