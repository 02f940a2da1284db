#!/usr/bin/env bash
# Installs the Debian bookworm packages plyr-core needs, and nothing else on the host changes.
#
#   scripts/install-deps.sh run    # to build and run plyr-core (scripts/run.sh)
#   scripts/install-deps.sh test   # also to test and benchmark it (scripts/test.sh, bench/): test
#                                  # frameworks, clang (libFuzzer), the ffmpeg and fpcalc CLIs,
#                                  # nginx, wrk, Chromium and Node.js
#
# Idempotent: packages already present are skipped, so a run with nothing missing costs one dpkg
# query and needs no root. Installing needs root (apt-get).
#
# What it never does: stop, disable, restart or reconfigure a service. A package whose
# maintainer script would start a system service (nginx-light starts nginx on :80) is installed
# with service starts refused for the length of the apt-get run, through Debian's policy-rc.d
# (a temporary /usr/sbin/policy-rc.d answering 101, "action forbidden"; only when the host has
# none of its own, and removed on exit). The benchmarks start their own nginx on a loopback port.
set -euo pipefail

mode=${1:-run}
case $mode in
  run | test) ;;
  *) echo "usage: $0 [run|test]" >&2; exit 2 ;;
esac

run_packages=(
  build-essential cmake ninja-build ccache pkg-config git curl ca-certificates
  libboost1.81-all-dev libboost-json1.81-dev
  liburing-dev libssl-dev libsodium-dev libsqlite3-dev libpq-dev libcbor-dev libsecp256k1-dev
  libfmt-dev libspdlog-dev libcli11-dev libtomlplusplus-dev prometheus-cpp-dev
  libavformat-dev libavcodec-dev libavfilter-dev libswresample-dev libavutil-dev
  libchromaprint-dev
)
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev
  ffmpeg libchromaprint-tools clang
  nginx-light wrk chromium
  postgresql
)

packages=("${run_packages[@]}")
if [ "$mode" = test ]; then
  packages+=("${test_packages[@]}")
  # Node.js and npm run the labeler's interoperability test (tests/labeler/npm), whose pinned
  # packages were checked on Node.js 20, which our machines ship. Debian's nodejs (18 on
  # bookworm) is only for a machine without node.
  if ! command -v node >/dev/null 2>&1; then
    packages+=(nodejs npm)
  fi
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them yourself) and try again" >&2
  exit 1
fi

policy=${PLYR_POLICY_RC_D:-/usr/sbin/policy-rc.d}  # overridable for the script's own test
if [ ! -e "$policy" ]; then
  trap 'rm -f "$policy"' EXIT
  printf '#!/bin/sh\n# Written by plyr-core install-deps.sh for one apt-get run.\nexit 101\n' >"$policy"
  chmod 755 "$policy"
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
