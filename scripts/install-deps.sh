#!/usr/bin/env bash
# Installs every Debian bookworm package plyr-core needs to build, test and benchmark.
# Idempotent: packages already present are skipped, so a second run costs one dpkg query.
# Must run as root (it calls apt-get); both README commands call it.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git curl
  libboost1.81-all-dev libboost-json1.81-dev
  liburing-dev libssl-dev libsodium-dev libsqlite3-dev libcbor-dev libsecp256k1-dev
  libfmt-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
  libavformat-dev libavcodec-dev libavfilter-dev libswresample-dev libavutil-dev ffmpeg
  libchromaprint-dev libchromaprint-tools
  libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev ca-certificates
  nginx-light wrk chromium
)

# Node.js and npm run the labeler's interoperability test (tests/labeler/npm), whose pinned
# packages were checked on Node.js 20, which our machines ship. Debian's nodejs (18 on bookworm)
# is only for a machine without node.
if ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs npm)
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

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The nginx package starts a system-wide server on :80; the benchmark runs its own instance.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
pkill -x nginx >/dev/null 2>&1 || true
