#!/usr/bin/env bash
# S3 streaming benchmark: audio streamed from an S3-compatible store (s3rver) THROUGH plyr-core's
# streamer (which proxies ranges from the store) against the same objects streamed STRAIGHT from
# s3rver, both driven by wrk in the same run.
#
#   bench/s3/run.sh                       e.g. DURATION=2 ROUNDS=1 NFILES=4 bench/s3/run.sh
#
# Knobs (environment):
#   PLYR_CORE_BIN   server binary                          (default: $REPO/build/release/plyr-core)
#   DURATION        seconds per wrk run                    (default 5)
#   ROUNDS          interleaved rounds (direct, via, direct, via, ...); the table shows medians (default 3)
#   CONNECTIONS     wrk -c                                 (default 16)
#   NFILES          random files uploaded                  (default 8)
#   FILE_MB         size of each file in MiB               (default 4)
#   WORKLOADS       subset of: range64k (random 64 KiB ranges) range1m (random 1 MiB ranges)
#                                                          (default "range64k range1m")
#   SEED            wrk Lua random seed; both targets get the same request sequence (default 42)
#   WRK_TIMEOUT     wrk --timeout                          (default 5s)
#   PLYR_EXTRA_ARGS extra arguments for `plyr-core serve streamer` (word-split), e.g. "--threads 1"
#   KEEP_DATA=1     keep the files and the s3rver objects in the work dir (deleted by default)
#
# What it does:
#   1. work dir bench/out/s3-<UTC timestamp>/; starts s3rver (node, tests/s3/node_modules; `npm ci`
#      there if missing) with bucket plyr-bench, and plyr-core's streamer on it (prefix bench/,
#      proxy mode: no public redirect), both on free loopback ports.
#   2. uploads NFILES random files through the streamer (they land in the bucket as
#      bench/streamer/<file_id>), registers them as public tracks, writes two wrk paths files:
#      via  = /audio/<id>, direct = /plyr-bench/bench/streamer/<id> (anonymous path-style GET).
#   3. checks a few random ranges: streamer bytes == s3rver bytes == local file; aborts if not.
#   4. per workload, ROUNDS x (wrk -t1 -cCONNECTIONS -dDURATIONs --latency on direct, then on via),
#      same SEED; utime+stime of the node and plyr-core processes (/proc/PID/stat) before and after.
#   5. prints a markdown table of medians (also WORKDIR/table.md; raw rows WORKDIR/results.tsv).
#   6. stops both servers (SIGTERM, wait) and deletes the data unless KEEP_DATA=1. Exits non-zero
#      if a run saw errors (socket errors or status >= 400), a server died, or a check failed.
# Nothing is pinned: s3rver, plyr-core and wrk share the machine's cores as the scheduler likes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PLYR_CORE_BIN=${PLYR_CORE_BIN:-$REPO/build/release/plyr-core}
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
NFILES=${NFILES:-8}
FILE_MB=${FILE_MB:-4}
WORKLOADS=${WORKLOADS:-range64k range1m}
SEED=${SEED:-42}
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
PLYR_EXTRA_ARGS=${PLYR_EXTRA_ARGS:-}
KEEP_DATA=${KEEP_DATA:-0}
WRK=${WRK:-wrk}
BUCKET=plyr-bench
PREFIX=bench/
S3DIR=$REPO/tests/s3
CMDLINE="DURATION=$DURATION ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS NFILES=$NFILES FILE_MB=$FILE_MB WORKLOADS=\"$WORKLOADS\" SEED=$SEED${PLYR_EXTRA_ARGS:+ PLYR_EXTRA_ARGS=\"$PLYR_EXTRA_ARGS\"} bench/s3/run.sh"

die() { echo "run.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

for v in DURATION ROUNDS CONNECTIONS NFILES FILE_MB SEED; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
((DURATION <= 120 && ROUNDS <= 9 && CONNECTIONS <= 1024)) || die "DURATION <= 120, ROUNDS <= 9, CONNECTIONS <= 1024"
((NFILES * FILE_MB <= 1024)) || die "NFILES*FILE_MB is capped at 1024 MiB"
for w in $WORKLOADS; do [[ $w == range64k || $w == range1m ]] || die "unknown workload '$w'"; done
[[ -x $PLYR_CORE_BIN ]] || die "PLYR_CORE_BIN=$PLYR_CORE_BIN is not an executable"
for c in "$WRK" node curl python3 sha256sum; do command -v "$c" >/dev/null || die "$c is required"; done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$REPO/bench/out/s3-$STAMP
[[ -e $WORK ]] && WORK=$WORK-$$
DATA=$WORK/plyr-data
mkdir -p "$WORK/src" "$WORK/s3" "$WORK/wrk" "$DATA"
CLK_TCK=$(getconf CLK_TCK)
S3_PID="" PLYR_PID=""

stop_pid() { # pid name
  local pid=$1 name=$2 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "run.sh: $name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  set +e
  stop_pid "$PLYR_PID" plyr-core
  stop_pid "$S3_PID" s3rver
  [[ $KEEP_DATA == 1 ]] || rm -rf "$WORK/src" "$WORK/s3" "$DATA/streamer/blobs" "$WORK/check"
  [[ $rc -eq 0 ]] || echo "run.sh: FAILED (exit $rc); logs in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

alive() { kill -0 "$1" 2>/dev/null; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { # pid -> utime+stime in clock ticks
  local rest f
  rest=$(<"/proc/$1/stat") || return 1
  rest=${rest##*) }                 # drop "pid (comm) "; fields now start at 3 (state)
  read -r -a f <<<"$rest"
  echo $((f[11] + f[12]))           # fields 14 (utime) and 15 (stime)
}

log "work dir: $WORK"

# --- 1. s3rver + plyr-core ---------------------------------------------------------------------
if [[ ! -f $S3DIR/node_modules/s3rver/bin/s3rver.js ]]; then
  log "installing s3rver (npm ci in tests/s3)"
  (cd "$S3DIR" && npm ci --no-audit --no-fund) >"$WORK/npm.log" 2>&1 || { tail -20 "$WORK/npm.log" >&2; die "npm ci failed"; }
fi
S3_PORT=$(free_port)
S3=http://127.0.0.1:$S3_PORT
node --openssl-legacy-provider "$S3DIR/node_modules/s3rver/bin/s3rver.js" --directory "$WORK/s3" \
  --address 127.0.0.1 --port "$S3_PORT" --silent --configure-bucket "$BUCKET" >"$WORK/s3rver.log" 2>&1 &
S3_PID=$!
for ((i = 0; i < 100; i++)); do
  curl -sf -o /dev/null --max-time 1 "$S3/$BUCKET/" && break
  alive "$S3_PID" || break
  sleep 0.1
done
curl -sf -o /dev/null --max-time 1 "$S3/$BUCKET/" || { cat "$WORK/s3rver.log" >&2; die "s3rver did not start"; }

(umask 077 && printf S3RVER >"$WORK/s3-secret")
PLYR_PORT=$(free_port)
PLYR=http://127.0.0.1:$PLYR_PORT
PLYR_ARGS=(serve streamer --data "$DATA" --streamer-listen "127.0.0.1:$PLYR_PORT" --ready-file "$DATA/ready.json"
  --access-log false --storage-s3-endpoint "$S3" --storage-s3-bucket "$BUCKET" --storage-s3-region us-east-1
  --storage-s3-access-key-id S3RVER --storage-s3-secret-access-key-file "$WORK/s3-secret" --storage-s3-prefix "$PREFIX")
# shellcheck disable=SC2206  # word splitting wanted
PLYR_ARGS+=($PLYR_EXTRA_ARGS)
echo "$PLYR_CORE_BIN ${PLYR_ARGS[*]}" >"$WORK/plyr-core.cmdline"
# Settings the flags do not name (a PLYR_CONFIG file, PLYR_* variables such as a public redirect) stay out.
UNSET=()
for v in $(compgen -e | grep '^PLYR_' || true); do UNSET+=(-u "$v"); done
env "${UNSET[@]}" "$PLYR_CORE_BIN" "${PLYR_ARGS[@]}" >"$WORK/plyr-core.log" 2>&1 &
PLYR_PID=$!
for ((i = 0; i < 200; i++)); do [[ -s $DATA/ready.json ]] && break; alive "$PLYR_PID" || break; sleep 0.05; done
[[ -s $DATA/ready.json ]] || { tail -20 "$WORK/plyr-core.log" >&2; die "plyr-core did not become ready"; }
TOKEN=$(<"$DATA/admin-token")
log "s3rver pid $S3_PID on $S3, plyr-core pid $PLYR_PID on $PLYR"

# --- 2. files ----------------------------------------------------------------------------------
FILE_BYTES=$((FILE_MB * 1048576))
log "uploading $NFILES files of $FILE_MB MiB through the streamer"
: >"$WORK/paths-via.txt"
: >"$WORK/paths-direct.txt"
: >"$WORK/ids.tsv"
for ((i = 0; i < NFILES; i++)); do
  src=$WORK/src/$i.bin
  head -c "$FILE_BYTES" /dev/urandom >"$src"
  out=$(curl -sS -f --max-time 60 -X PUT --data-binary "@$src" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: audio/mpeg' "$PLYR/v1/files") || die "upload of $src failed"
  read -r id size < <(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["file_id"], d["size"])' "$out")
  [[ $size == "$FILE_BYTES" ]] || die "upload of $src reported size $size, expected $FILE_BYTES"
  curl -sS -f --max-time 10 -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"owner_did":"did:plc:artist"}' "$PLYR/v1/tracks/$id" || die "PUT /v1/tracks/$id failed"
  echo "/audio/$id $FILE_BYTES" >>"$WORK/paths-via.txt"
  echo "/$BUCKET/${PREFIX}streamer/$id $FILE_BYTES" >>"$WORK/paths-direct.txt"
  printf '%s\t%s\n' "$id" "$src" >>"$WORK/ids.tsv"
done

# --- 3. correctness ----------------------------------------------------------------------------
log "checking random ranges: streamer == s3rver == local file"
mkdir -p "$WORK/check"
mapfile -t IDS < <(cut -f1 "$WORK/ids.tsv")
for ((c = 0; c < 6; c++)); do
  k=$((RANDOM % NFILES)) id=${IDS[k]} src=$WORK/src/$k.bin
  case $c in 0) len=65536 ;; 1) len=$FILE_BYTES ;; *) len=$((c % 2 ? 1048576 : 65536)) ;; esac
  ((len <= FILE_BYTES)) || len=$FILE_BYTES
  off=$(((RANDOM * 32768 + RANDOM) % (FILE_BYTES - len + 1)))
  ((c == 2)) && off=$((FILE_BYTES - len))   # one range that ends at the last byte
  range="bytes=$off-$((off + len - 1))"
  dd if="$src" of="$WORK/check/local" iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none
  for t in via direct; do
    if [[ $t == via ]]; then url=$PLYR/audio/$id; else url=$S3/$BUCKET/${PREFIX}streamer/$id; fi
    code=$(curl -sS --max-time 30 -o "$WORK/check/$t" -w '%{http_code}' -H "Range: $range" "$url") || die "check $t $range: curl failed"
    [[ $code == 206 ]] || die "check $t $url $range: status $code, expected 206"
    cmp -s "$WORK/check/$t" "$WORK/check/local" || die "check $t $url $range: bytes differ from the local file"
  done
done
rm -rf "$WORK/check"

# --- 4. load -----------------------------------------------------------------------------------
printf 'workload\ttarget\tround\trequests\tduration_us\trps\tbytes_per_s\tp50_us\tp99_us\terrors\terror_detail\tplyr_ticks\ts3rver_ticks\tplyr_cpu_us_per_req\ts3rver_cpu_us_per_req\twrk_cpu_pct\n' \
  >"$WORK/results.tsv"
FAILURES=()
run_one() { # workload target round
  local w=$1 t=$2 round=$3 url len out p0 s0 p1 s1 wrk_cpu line rc=0
  if [[ $w == range64k ]]; then len=65536; else len=1048576; fi
  if [[ $t == via ]]; then url=$PLYR; else url=$S3; fi
  out=$WORK/wrk/$w-$t-$round.txt
  p0=$(cpu_ticks "$PLYR_PID") s0=$(cpu_ticks "$S3_PID")
  # wrk runs under a small python parent that reports wrk's own CPU seconds (RUSAGE_CHILDREN).
  wrk_cpu=$(python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    rc = subprocess.call(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f" % (ru.ru_utime + ru.ru_stime))
sys.exit(rc)' "$out" "$WRK" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
    -s "$REPO/bench/streaming/stream.lua" "$url" -- range "$WORK/paths-$t.txt" "$len" "$SEED") || rc=$?
  alive "$PLYR_PID" || { tail -20 "$WORK/plyr-core.log" >&2; die "plyr-core died during $w $t"; }
  alive "$S3_PID" || { tail -20 "$WORK/s3rver.log" >&2; die "s3rver died during $w $t"; }
  p1=$(cpu_ticks "$PLYR_PID") s1=$(cpu_ticks "$S3_PID")
  ((rc == 0)) || { cat "$out" >&2; die "wrk failed (exit $rc) for $w $t"; }
  line=$(grep '^RESULT ' "$out") || { cat "$out" >&2; die "no RESULT line from wrk for $w $t"; }
  # RESULT requests=.. duration_us=.. bytes=.. rps=.. bytes_per_s=.. p50_us=.. p99_us=.. max_us=.. err_*=..
  echo "$line" | awk -v w="$w" -v t="$t" -v r="$round" -v pt=$((p1 - p0)) -v st=$((s1 - s0)) -v clk="$CLK_TCK" \
    -v wc="$wrk_cpu" 'BEGIN { OFS = "\t" } {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); d[kv[1]] = kv[2] }
      errs = 0; det = ""
      for (k in d) if (k ~ /^err_/ && d[k] > 0) { errs += d[k]; det = det (det == "" ? "" : ",") substr(k, 5) "=" d[k] }
      n = d["requests"]
      print w, t, r, n, d["duration_us"], d["rps"], d["bytes_per_s"], d["p50_us"], d["p99_us"], errs, (det == "" ? "-" : det),
            pt, st, (n ? sprintf("%.1f", pt * 1e6 / clk / n) : "nan"), (n ? sprintf("%.1f", st * 1e6 / clk / n) : "nan"),
            sprintf("%.1f", 100 * wc / (d["duration_us"] / 1e6))
    }' >>"$WORK/results.tsv"
  local row
  row=$(tail -1 "$WORK/results.tsv")
  log "  $w $t round $round: $(awk -F'\t' '{printf "%.0f req/s, p99 %.1f ms, errors %s, CPU µs/req plyr-core %s s3rver %s, wrk CPU %s %%", $6, $9/1000, $10, $14, $15, $16}' <<<"$row")"
  [[ $(cut -f10 <<<"$row") == 0 ]] || FAILURES+=("$w $t round $round: $(cut -f11 <<<"$row")")
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, seed $SEED, $ROUNDS round(s); load average $LOAD_BEFORE"
for w in $WORKLOADS; do
  for ((round = 1; round <= ROUNDS; round++)); do
    run_one "$w" direct "$round"
    run_one "$w" via "$round"
  done
done

# --- 5. table ----------------------------------------------------------------------------------
HEAD_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null) ]] || HEAD_REV+=" (worktree modified)"
{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), HEAD $HEAD_REV, load average $LOAD_BEFORE before / $(cut -d' ' -f1-3 /proc/loadavg) after, command: \`$CMDLINE\`"
  echo "$(nproc) vCPU, nothing pinned (s3rver, plyr-core and wrk share the cores); s3rver $(node -p 'require(process.argv[1]).version' "$S3DIR/node_modules/s3rver/package.json") on node $(node --version); wrk -t1 -c$CONNECTIONS -d${DURATION}s, $ROUNDS interleaved round(s), $NFILES files x $FILE_MB MiB."
} >"$WORK/header.txt"
echo
python3 "$HERE/report.py" "$WORK/results.tsv" "$WORK/header.txt" | tee "$WORK/table.md"
echo
echo "results: $WORK/table.md (raw: results.tsv, wrk/*.txt, plyr-core.log, s3rver.log)"

warns=$(grep -cE ' (warn|error|critical) ' "$WORK/plyr-core.log" || true)
((warns == 0)) || { echo "plyr-core logged $warns warn/error lines; first ones:" >&2; grep -E ' (warn|error|critical) ' "$WORK/plyr-core.log" | head -5 >&2; }
if ((${#FAILURES[@]})); then
  printf 'run.sh: ERRORS during load:\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
