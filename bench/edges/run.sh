#!/usr/bin/env bash
# Load edges: 10 000 idle connections held on the streamer and 10 000 idle subscribeLabels
# subscribers (memory per connection), and a flood of bad stream tickets (server CPU per request
# against a public range request, measured in the same run). See bench/RESULTS.md ("Load edges").
#
#   bench/edges/run.sh
#
# Expects a built tree (BUILD, default $REPO/build/release). Knobs: IDLE (10000), FLOOD (20000),
# CONNECTIONS (4), SUBSCRIBERS (10000), PHASES ("streamer labeler").
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-$REPO/build/release}"
BIN="${PLYR_CORE_BIN:-$BUILD/plyr-core}"
IDLE="${IDLE:-10000}"
FLOOD="${FLOOD:-20000}"
CONNECTIONS="${CONNECTIONS:-4}"
SUBSCRIBERS="${SUBSCRIBERS:-10000}"
PHASES="${PHASES:-streamer labeler}"
ulimit -n "$(ulimit -Hn)"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [[ " $PHASES " == *" streamer "* ]]; then
  "$BIN" serve streamer --data "$work/data" --ready-file "$work/ready" --streamer-listen 127.0.0.1:0 \
    --http-max-connections $((IDLE + 1000)) --access-log false --log-level warn >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do [[ -s "$work/ready" ]] && break; sleep 0.1; done
  port="$(sed -E 's/.*"streamer": *([0-9]+).*/\1/' "$work/ready")"
  token="$(cat "$work/data/admin-token")"
  put() {  # bytes-file -> file_id
    curl -sf -X PUT --data-binary @"$1" -H "Authorization: Bearer $token" -H 'Content-Type: audio/mpeg' \
      "http://127.0.0.1:$port/v1/files" | sed -E 's/.*"file_id":"([0-9a-f]+)".*/\1/'
  }
  head -c 65536 /dev/urandom >"$work/public.bin"
  head -c 65536 /dev/urandom >"$work/gated.bin"
  public="$(put "$work/public.bin")"
  gated="$(put "$work/gated.bin")"
  curl -sf -X PUT -H "Authorization: Bearer $token" -d '{"owner_did":"did:plc:artist","gate":"none"}' \
    "http://127.0.0.1:$port/v1/tracks/$public" >/dev/null
  curl -sf -X PUT -H "Authorization: Bearer $token" -d '{"owner_did":"did:plc:artist","gate":"any"}' \
    "http://127.0.0.1:$port/v1/tracks/$gated" >/dev/null
  echo "== streamer ($(nproc) cores; server and client share them)"
  "$BUILD/bench/streamer_edges" --port "$port" --pid "$server_pid" --public "$public" --gated "$gated" \
    --idle "$IDLE" --flood "$FLOOD" --connections "$CONNECTIONS"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
fi

if [[ " $PHASES " == *" labeler "* ]]; then
  echo
  echo "== labeler: $SUBSCRIBERS idle subscribers, then one burst"
  PHASES=fanout FANOUT_SUBSCRIBERS="$SUBSCRIBERS" FANOUT_RUNS="100x4" FANOUT_BURSTS=1 FANOUT_LABELS=1000 \
    PLYR_EXTRA_ARGS="--http-max-connections $((SUBSCRIBERS + 1000))" BUILD="$BUILD" "$REPO/bench/labeler/run.sh"
fi
