// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "jobserver",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "jobserver", targets: ["jobserver"]),
        .library(name: "JobServer", targets: ["JobServer"]),
        .library(name: "Queue", targets: ["Queue"]),
        .library(name: "Sandbox", targets: ["Sandbox"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
    ],
    targets: [
        .target(
            name: "Queue",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "jobserver-launch",
            path: "Sources/Sandbox/Launcher",
            // A C program, linked statically and without the Swift runtime SwiftPM adds by
            // default (see the end of main.c): it starts on every job, so its start-up counts.
            // libseccomp builds the filter, libcap drops capabilities (DESIGN §6).
            linkerSettings: [
                .linkedLibrary("seccomp"), .linkedLibrary("cap"),
                .unsafeFlags(["-static-executable"]),
            ]
        ),
        .target(
            name: "Sandbox",
            dependencies: [
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Launcher"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "JobServer",
            dependencies: [
                "Queue",
                "Sandbox",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "jobserver",
            dependencies: ["JobServer"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "noop-agent",
            linkerSettings: [.unsafeFlags(["-static-executable", "-Xlinker", "-e", "-Xlinker", "noop_entry"])]
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "Queue",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "jobserver-bench",
            dependencies: [
                "Queue", "TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/JobServerBench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sandbox-probe",
            path: "Tests/SandboxProbe",
            linkerSettings: [.unsafeFlags(["-static-executable"])]
        ),
        .executableTarget(
            name: "store-probe",
            dependencies: ["Queue"],
            path: "Tests/StoreProbe",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SandboxTests",
            dependencies: ["Sandbox", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "QueueTests",
            dependencies: ["Queue", "Sandbox", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "JobServerTests",
            dependencies: [
                "JobServer", "Queue", "Sandbox", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
