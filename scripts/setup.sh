#!/usr/bin/env bash
# Installs everything the build, the service and the tests need. Idempotent: safe to run again.
#   - Debian packages (build headers, git for diffs, bubblewrap for the sandbox baseline)
#   - the Claude Code CLI from PyPI (claude-agent-sdk carries it), into .tools/
#   - with SETUP_BENCH=1: wrk (the HTTP load generator) and huey, the benchmark baseline, into .tools/python
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_SDK_VERSION=0.2.187
TOOLS="$PWD/.tools"
APT_PACKAGES=(libsqlite3-dev libseccomp-dev libcap-dev zlib1g-dev git python3 python3-pip util-linux procps bubblewrap)
[ "${SETUP_BENCH:-0}" = "1" ] && APT_PACKAGES+=(wrk)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PIP="python3 -m pip"
sdk_dir="$TOOLS/claude-agent-sdk"
if [ "$(cat "$sdk_dir/.version" 2>/dev/null)" != "$CLAUDE_SDK_VERSION" ]; then
    echo "setup: installing the Claude Code CLI (claude-agent-sdk==$CLAUDE_SDK_VERSION)"
    rm -rf "$sdk_dir"
    $PIP install -q --disable-pip-version-check --no-deps --target "$sdk_dir" "claude-agent-sdk==$CLAUDE_SDK_VERSION"
    echo "$CLAUDE_SDK_VERSION" > "$sdk_dir/.version"
fi
chmod a+rx "$sdk_dir/claude_agent_sdk/_bundled/claude"

if [ "${SETUP_BENCH:-0}" = "1" ] && [ ! -d "$TOOLS/python/huey" ]; then
    echo "setup: installing huey (benchmark baseline)"
    $PIP install -q --disable-pip-version-check --target "$TOOLS/python" huey
fi

echo "setup: ok ($("$sdk_dir/claude_agent_sdk/_bundled/claude" --version))"
