import NIOPosix

/// Runs blocking file-system work (project locks, tree copies, `git diff`, archives) on NIO's
/// thread pool, so it never parks one of the few cooperative threads that serve every request
/// and every running job.
enum BlockingIO {
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
