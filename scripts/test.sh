#!/usr/bin/env bash
# Builds and runs every test: the store conformance suite, the HTTP API, and end-to-end jobs
# through separate worker processes and the real Claude Code CLI against a scripted model.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
