/// Polls `condition` every 10 ms until it holds or `limit` has passed; returns whether it held.
/// For states another process or task reaches on its own time (a request dropped, a stream ended);
/// the limit is generous because a loaded 2-core CI machine can take seconds to get there.
public func eventually(within limit: Duration = .seconds(30), _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: .milliseconds(10))
    }
    return true
}
