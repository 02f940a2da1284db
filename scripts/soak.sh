#!/usr/bin/env bash
# The soak of tests/soak/soak_test.cpp for longer than the suite's minute, on the optimised build:
# every service in its own process under load while processes are killed, disks fill and
# connections are cut, then the invariants (docs/reliability.md).
#   scripts/soak.sh [SECONDS]    (default 600)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
scripts/install-deps.sh test
scripts/build.sh release
PLYR_CORE_BIN="$PWD/build/release/plyr-core" PLYR_SOAK_SECONDS="$seconds" \
  build/release/tests/soak_tests --gtest_filter='Soak.*'
