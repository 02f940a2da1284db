#!/usr/bin/env bash
# The test suite in one command: installs what is missing (Debian bookworm, as root), builds,
# and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
ctest --preset release -j "$(nproc)"
