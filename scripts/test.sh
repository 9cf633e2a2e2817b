#!/usr/bin/env bash
# Builds and runs every test: the store conformance suite, the HTTP API, the sandbox's escape
# battery, and end-to-end jobs through separate worker processes and the real Claude Code CLI
# against a scripted model. When run as root, the sandbox tests run a second time as an
# unprivileged user (created here), the way a worker without root runs the sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"

if [ "$(id -u)" -eq 0 ] && [ $# -eq 0 ]; then
    user=jobserver-test
    id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    # The checkout may sit where that user cannot reach (/root): run copies of the binaries.
    bin_dir="$(swift build --show-bin-path)"
    copy="$(mktemp -d /tmp/jobserver-unprivileged-XXXXXX)"
    trap 'rm -rf "$copy"' EXIT
    cp "$bin_dir/jobserverPackageTests.xctest" "$bin_dir/jobserver-launch" "$bin_dir/sandbox-probe" "$copy/"
    chmod -R a+rX "$copy"
    echo "test: sandbox tests as the unprivileged user $user"
    (cd "$copy" && runuser -u "$user" -- ./jobserverPackageTests.xctest --testing-library swift-testing --filter SandboxTests)
fi
