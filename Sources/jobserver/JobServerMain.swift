import JobServer

/// The `jobserver` binary: a thin entry point over the `JobServer` library.
@main
enum JobServerMain {
    static func main() async {
        await JobServerCommand.main()
    }
}
