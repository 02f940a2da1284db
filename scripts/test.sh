#!/usr/bin/env bash
# The test suite in one command: installs what is missing (Debian bookworm, as root), builds,
# and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
scripts/build.sh release

# The labeler's interoperability test runs the ATProto client libraries from npm. `npm ci` only
# when node_modules does not match package-lock.json (npm keeps its own copy of what it installed
# in node_modules/.package-lock.json: the same packages, without the root entry).
npm_dir=tests/labeler/npm
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

ctest --preset release -j "$(nproc)"
