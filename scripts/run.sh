#!/usr/bin/env bash
# The main job in one command: installs what is missing (Debian bookworm, as root), builds, and
# runs every service of plyr-core on its embedded default (SQLite and the ./data folder).
# Extra arguments go to `plyr-core serve` (e.g. `scripts/run.sh streamer --threads 2`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh run
scripts/build.sh release
exec build/release/plyr-core serve "$@"
