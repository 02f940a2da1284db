#!/usr/bin/env bash
# The test suite in one command: installs what is missing (Debian bookworm, as root), builds, and
# runs the tests with ctest.
#   scripts/test.sh           what CI runs: the whole suite under AddressSanitizer and
#                             UndefinedBehaviorSanitizer (CMake preset asan, build/asan), then the
#                             tests labelled `concurrency` under ThreadSanitizer (preset tsan,
#                             build/tsan: only their binaries are built)
#   scripts/test.sh release   the whole suite on the optimised build (preset release): quicker,
#                             without sanitizers
# Exit status: 0 when every test passed.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-sanitizers}
case $mode in
  sanitizers | release) ;;
  *) echo "usage: scripts/test.sh [release]" >&2; exit 2 ;;
esac
scripts/install-deps.sh test

# Two tests use packages from npm: the labeler's interoperability test (the ATProto client
# libraries, tests/labeler/npm) and the S3 tests (s3rver, an S3-compatible server, tests/s3).
# `npm ci` only when node_modules does not match package-lock.json (npm keeps its own copy of
# what it installed in node_modules/.package-lock.json: the same packages, without the root entry).
for npm_dir in tests/labeler/npm tests/s3; do
  if ! node -e '
    const fs = require("fs");
    const packages = (file) => JSON.parse(fs.readFileSync(file, "utf8")).packages;
    const wanted = packages(process.argv[1]);
    delete wanted[""];
    process.exit(JSON.stringify(wanted) === JSON.stringify(packages(process.argv[2])) ? 0 : 1);
  ' "$npm_dir/package-lock.json" "$npm_dir/node_modules/.package-lock.json" 2>/dev/null; then
    echo "test: installing the npm packages in $npm_dir"
    (cd "$npm_dir" && npm ci --no-audit --no-fund)
  fi
done

if [ "$mode" = release ]; then
  scripts/build.sh release
  exec ctest --preset release -j "$(nproc)"
fi

started=$SECONDS
failed=()
scripts/build.sh asan
echo "test: asan build: $((SECONDS - started)) s"
step=$SECONDS
ctest --preset asan -j "$(nproc)" || failed+=("asan")
echo "test: asan suite: $((SECONDS - step)) s"

# ThreadSanitizer needs every object built with it; only the binaries of the `concurrency` tests
# are built (their ctest files list the others as not built, which the label filter leaves out).
step=$SECONDS
cmake --preset tsan >/dev/null
cmake --build --preset tsan --target common_tests labeler_tests transcoder_tests pg_tests
ctest --preset tsan -j "$(nproc)" || failed+=("tsan")
echo "test: tsan build and tests: $((SECONDS - step)) s; all: $((SECONDS - started)) s"

if [ ${#failed[@]} -gt 0 ]; then
  echo "test: FAILED under ${failed[*]}" >&2
  exit 1
fi
echo "test: every test passed under asan and tsan"
