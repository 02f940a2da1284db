#!/usr/bin/env bash
# Labeler benchmark: one command, one run, every figure next to the anchor measured in that run.
# See bench/RESULTS.md ("Labeler") for results and their reading.
#
#   bench/labeler/run.sh
#
# Builds nothing: it expects a built tree (BUILD, default $REPO/build/release) holding plyr-core,
# bench/labeler_hot_paths_bench and bench/labeler_load.
#
# Knobs (environment):
#   BUILD              build tree                                      (default: $REPO/build/release)
#   PLYR_CORE_BIN, HOT_BENCH, LOAD_BIN   override single binaries      (default: under BUILD)
#   THREADS            plyr-core --threads (0: one per core, the server's default)         (default 0)
#   EMIT_LABELS        labels per emit run                                                 (default 100000)
#   EMIT_RUNS          emit settings, "BATCHxCONNECTIONS" words                            (default "1x64 100x8")
#   REPLAY_LABELS      labels stored before the replay                                     (default 100000)
#   FANOUT_SUBSCRIBERS live subscribers of the fan-out run                                 (default 1000)
#   FANOUT_LABELS      labels of the fan-out burst                                         (default 10000)
#   FANOUT_RUNS        how the burst is emitted, "BATCHxCONNECTIONS" words: one fan-out run each
#                      (default "100x1 100x4"; the emitter's labels in flight set the latency, see
#                      bench/RESULTS.md)
#   FANOUT_BURSTS      bursts per fan-out run, a second apart over the same subscribers, each
#                      reported on its own: the first after the server's start, then warm ones  (default 2)
#   PHASES             subset of: anchor emit replay fanout                                (default all four)
#   ANCHOR_MIN_TIME    --benchmark_min_time of the hot-path benchmark                      (default 0.5)
#   KEEP_DATA=1        keep the label databases (deleted by default)
#   PLYR_EXTRA_ARGS    extra arguments for `plyr-core serve labeler` (word-split)
#   LOAD_EXTRA_ARGS    extra arguments for every labeler_load run (word-split), e.g. "--ws beast"
#
# What it does (raw output under bench/out/labeler-<UTC timestamp>/):
#   anchor  labeler_hot_paths_bench: BM_SignLabel = DAG-CBOR + SHA-256 + ECDSA k256 + DAG-CBOR
#           with sig, one core; the other hot paths ride along.
#   emit    per EMIT_RUNS setting, a fresh data folder and server: labeler_load emit sends
#           EMIT_LABELS labels over C keep-alive connections, B per request, while one live
#           subscriber checks that every acknowledged seq reaches the stream. Figures: labels/s
#           from the first send to the last durable answer, and until the subscriber had them all.
#   replay  fresh folder: REPLAY_LABELS labels are stored (batches of 1000), the server is
#           restarted (so every frame comes from the log, none from the in-memory feed), then one
#           subscriber with cursor=0 counts frames until it has them all; run twice in a row.
#   fanout  fresh folder: FANOUT_SUBSCRIBERS subscribers without cursor, then FANOUT_BURSTS bursts
#           of FANOUT_LABELS labels each through the emit API: per burst, delivery latency (receive
#           - emit send) p50/p99/max, time until the last subscriber had the last label, server
#           VmRSS per subscriber. Burst 1 is the first after the server's start; its first
#           requests also pay for kernel memory touched for the first time (bench/RESULTS.md).
#   Then the table (also WORKDIR/results.md). Exits non-zero if a phase failed (a missing label,
#   an error answer, a dead server).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
"$REPO/scripts/install-deps.sh" test  # what the benchmark runs against (nginx, wrk, ffmpeg, fpcalc)

BUILD=${BUILD:-$REPO/build/release}
PLYR_CORE_BIN=${PLYR_CORE_BIN:-$BUILD/plyr-core}
HOT_BENCH=${HOT_BENCH:-$BUILD/bench/labeler_hot_paths_bench}
LOAD_BIN=${LOAD_BIN:-$BUILD/bench/labeler_load}
THREADS=${THREADS:-0}
EMIT_LABELS=${EMIT_LABELS:-100000}
EMIT_RUNS=${EMIT_RUNS:-1x64 100x8}
REPLAY_LABELS=${REPLAY_LABELS:-100000}
FANOUT_SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-1000}
FANOUT_LABELS=${FANOUT_LABELS:-10000}
FANOUT_RUNS=${FANOUT_RUNS:-100x1 100x4}
FANOUT_BURSTS=${FANOUT_BURSTS:-2}
PHASES=${PHASES:-anchor emit replay fanout}
ANCHOR_MIN_TIME=${ANCHOR_MIN_TIME:-0.5}
KEEP_DATA=${KEEP_DATA:-0}
PLYR_EXTRA_ARGS=${PLYR_EXTRA_ARGS:-}
LOAD_EXTRA_ARGS=${LOAD_EXTRA_ARGS:-}
# The labels' src: the same did:plc as BM_SignLabel's label, so both sign the same byte counts.
LABELER_DID=did:plc:ar7c4by46qjdydhdevvrndac
TOKEN=bench-admin-$$-$RANDOM$RANDOM

die() { echo "run.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

for v in EMIT_LABELS REPLAY_LABELS FANOUT_SUBSCRIBERS FANOUT_LABELS FANOUT_BURSTS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $THREADS =~ ^[0-9]+$ ]] || die "THREADS must be a non-negative integer"
for r in $EMIT_RUNS; do [[ $r =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "EMIT_RUNS entry '$r' is not BATCHxCONNECTIONS"; done
for r in $FANOUT_RUNS; do [[ $r =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "FANOUT_RUNS entry '$r' is not BATCHxCONNECTIONS"; done
for p in $PHASES; do
  case $p in anchor|emit|replay|fanout) ;; *) die "unknown phase '$p' (anchor emit replay fanout)" ;; esac
done
for b in "$PLYR_CORE_BIN" "$HOT_BENCH" "$LOAD_BIN"; do
  [[ -x $b ]] || die "$b is not an executable; build first, e.g. cmake --preset release && cmake --build --preset release (or set BUILD=<build dir>)"
done
command -v python3 >/dev/null || die "python3 is required"

# Each subscriber is a descriptor on both sides; the server raises its own limit to the hard one.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]] || ((hard > 65536)); then ulimit -n 65536; else ulimit -n "$hard"; fi
(($(ulimit -n) > FANOUT_SUBSCRIBERS + 64)) || die "ulimit -n is $(ulimit -n): too low for $FANOUT_SUBSCRIBERS subscribers"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$REPO/bench/out/labeler-$STAMP
[[ -e $WORK ]] && WORK=$WORK-$$
mkdir -p "$WORK"
RESULTS=$WORK/results.txt   # "<phase label>\t<RESULT line>" per measurement
: >"$RESULTS"
FAILURES=()
SERVER_PID="" PORT=""

stop_server() {
  local pid=$SERVER_PID i
  SERVER_PID=""
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "run.sh: plyr-core (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  stop_server
  [[ $KEEP_DATA == 1 ]] || rm -rf "$WORK"/data-*
  [[ $rc -eq 0 ]] || echo "run.sh: FAILED (exit $rc); logs in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server() { # name (data folder = WORK/data-<name>, log = WORK/plyr-core-<name>.log); keeps the data if it exists
  local name=$1 dir=$WORK/data-$1 i
  mkdir -p "$dir"
  rm -f "$dir/ready.json"
  local args=(serve labeler --data "$dir" --labeler-listen 127.0.0.1:0 --ready-file "$dir/ready.json"
    --admin-token "$TOKEN" --access-log false --threads "$THREADS" --labeler-did "$LABELER_DID")
  # shellcheck disable=SC2206  # word splitting wanted
  args+=($PLYR_EXTRA_ARGS)
  echo "$PLYR_CORE_BIN ${args[*]/$TOKEN/TOKEN}" >>"$WORK/plyr-core.cmdline"
  # PLYR_CONFIG (a TOML file) would silently change settings the flags do not name: ignore it here.
  env -u PLYR_CONFIG "$PLYR_CORE_BIN" "${args[@]}" >>"$WORK/plyr-core-$name.log" 2>&1 &
  SERVER_PID=$!
  for ((i = 0; i < 200; i++)); do
    [[ -s $dir/ready.json ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -s $dir/ready.json ]] || { tail -20 "$WORK/plyr-core-$name.log" >&2; die "plyr-core did not become ready ($name)"; }
  PORT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["labeler"])' "$dir/ready.json")
  log "plyr-core ($name) pid $SERVER_PID on 127.0.0.1:$PORT, threads=$THREADS"
}

# Runs labeler_load, keeps its output, files its RESULT line under `label`.
load() { # label args...
  local label=$1 out rc=0
  shift
  out=$WORK/load-${label//[^a-zA-Z0-9_.-]/_}.txt
  log "  $label: labeler_load $* (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086  # word splitting wanted
  "$LOAD_BIN" "$@" --port "$PORT" --server-pid "$SERVER_PID" $LOAD_EXTRA_ARGS >"$out.stdout" 2>"$out" || rc=$?
  cat "$out" >&2
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    FAILURES+=("$label: plyr-core died")
    return 1
  fi
  local line burst
  # One RESULT line per run, or per burst (fanout): "burst=N" goes into the label.
  while read -r line; do
    burst=$(sed -n 's/.* burst=\([0-9]*\).*/\1/p' <<<"$line")
    printf '%s\tload=%s\t%s\n' "$label${burst:+ burst $burst}" "$(cut -d' ' -f1 /proc/loadavg)" "$line" >>"$RESULTS"
  done < <(grep '^RESULT ' "$out.stdout" || true)
  ((rc == 0)) || { FAILURES+=("$label: labeler_load exited $rc"); return 1; }
}

has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

log "work dir: $WORK"
log "binaries: $PLYR_CORE_BIN, $HOT_BENCH, $LOAD_BIN"
read -r load1 _ </proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
  log "WARNING: load average $load1 before the run: other jobs compete for the $(nproc) cores; expect noisy numbers"
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- anchor -----------------------------------------------------------------------------------
if has_phase anchor; then
  log "anchor: labeler_hot_paths_bench --benchmark_min_time=$ANCHOR_MIN_TIME"
  "$HOT_BENCH" --benchmark_min_time="$ANCHOR_MIN_TIME" --benchmark_out="$WORK/hot_paths.json" \
    --benchmark_out_format=json >"$WORK/hot_paths.txt" 2>&1 || die "labeler_hot_paths_bench failed: $(tail -5 "$WORK/hot_paths.txt")"
  cat "$WORK/hot_paths.txt" >&2
fi

# --- emit -------------------------------------------------------------------------------------
if has_phase emit; then
  for r in $EMIT_RUNS; do
    batch=${r%x*} conns=${r#*x}
    start_server "emit-$r"
    load "emit ${batch}x${conns}" emit --token "$TOKEN" --labels "$EMIT_LABELS" --batch "$batch" --connections "$conns" || true
    stop_server
  done
fi

# --- replay -----------------------------------------------------------------------------------
if has_phase replay; then
  start_server replay
  if load "replay populate 1000x2" emit --token "$TOKEN" --labels "$REPLAY_LABELS" --batch 1000 --connections 2; then
    stop_server
    start_server replay   # a fresh process: the feed is empty, every frame comes from the log
    load "replay 1st" replay --cursor 0 --expect "$REPLAY_LABELS" || true
    load "replay 2nd" replay --cursor 0 --expect "$REPLAY_LABELS" || true
  fi
  stop_server
fi

# --- fanout -----------------------------------------------------------------------------------
if has_phase fanout; then
  for r in $FANOUT_RUNS; do
    start_server "fanout-$r"
    load "fanout $r" fanout --token "$TOKEN" --subscribers "$FANOUT_SUBSCRIBERS" --labels "$FANOUT_LABELS" \
      --batch "${r%x*}" --connections "${r#*x}" --bursts "$FANOUT_BURSTS" --timeout 300 || true
    stop_server
  done
fi

# --- table ------------------------------------------------------------------------------------
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), data on $(df -T "$WORK" | awk 'NR == 2 {print $2}')."
  echo "plyr-core \`serve labeler --threads $THREADS --access-log false${PLYR_EXTRA_ARGS:+ $PLYR_EXTRA_ARGS}\`${LOAD_EXTRA_ARGS:+, labeler_load $LOAD_EXTRA_ARGS} ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo ', with uncommitted changes')); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$WORK/header.txt"

python3 - "$WORK/hot_paths.json" "$RESULTS" "$WORK/header.txt" "$WORK/results.md" <<'PY'
import json, os, sys

hot_path, results_path, header_path, out_path = sys.argv[1:5]
anchor_ns = None
hot = []
if os.path.exists(hot_path):
    for b in json.load(open(hot_path))["benchmarks"]:
        ns = b["real_time"] * {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
        hot.append((b["name"], ns))
        if b["name"] == "BM_SignLabel":
            anchor_ns = ns
anchor_rate = 1e9 / anchor_ns if anchor_ns else None

rows = []
for line in open(results_path):
    label, load, result = line.rstrip("\n").split("\t")
    d = dict(kv.split("=", 1) for kv in result.split()[1:])
    d["load"] = load.split("=", 1)[1]
    rows.append((label, d))

def f(v, digits=0):
    return f"{float(v):,.{digits}f}".replace(",", " ")

def ratio(rate):
    return f"**{float(rate) / anchor_rate:.2f}**" if anchor_rate else "n/a"

out = [open(header_path).read().strip(), ""]
out.append("| figure | value | ratio to anchor | target | server CPU | client CPU | load avg |")
out.append("|---|---:|---:|---|---:|---:|---:|")
if anchor_ns:
    out.append(f"| **anchor** BM_SignLabel (DAG-CBOR + SHA-256 + ECDSA k256, 1 core) | {anchor_ns / 1e3:.1f} µs = {f(anchor_rate)} labels/s | 1.00 | | | | |")
verdicts = []
for label, d in rows:
    mode = d["mode"]
    if mode == "emit":
        rate = float(d["durable_labels_per_s"])
        met = rate >= 10000
        if not label.startswith("replay"):
            verdicts.append(f"durable emit ({label}) >= 10 000 labels/s: {'met' if met else 'MISSED'} ({f(rate)})")
        out.append(f"| {label}: durable, labels/s (p99 request {f(d['req_p99_ms'], 1)} ms) | {f(rate)} | {ratio(rate)} | ≥ 10 000 | {f(d['server_cpu_us_per_label'], 1)} µs/label | {f(d['client_cpu_s'], 2)} s | {d['load']} |")
        out.append(f"| {label}: visible in the stream, labels/s (missing {d['missing']}) | {f(d['visible_labels_per_s'])} | {ratio(d['visible_labels_per_s'])} | | | | |")
    elif mode == "replay":
        rate = float(d["labels_per_s"])
        verdicts.append(f"replay ({label}) >= 100 000 labels/s: {'met' if rate >= 100000 else 'MISSED'} ({f(rate)})")
        out.append(f"| {label}: cursor=0 over {f(d['labels'])} stored labels, labels/s ({f(d['mb_per_s'], 1)} MB/s) | {f(rate)} | {ratio(rate)} | ≥ 100 000 | {f(d['server_cpu_us_per_label'], 2)} µs/label | {f(d['client_cpu_s'], 2)} s | {d['load']} |")
    elif mode == "fanout":
        subs, labels = int(d["subscribers"]), int(d["labels"])
        p99 = float(d["lat_p99_ms"])
        in_flight = int(d["batch"]) * int(d["connections"])
        first = d.get("burst") == "1"
        verdicts.append(f"fan-out p99 < 100 ms with {in_flight} labels in flight ({label}{', the first after start' if first else ''}): {'met' if p99 < 100 else 'MISSED'} ({p99:.1f} ms)")
        out.append(f"| {label}: {subs} subscribers × {f(labels)}-label burst ({d['batch']} per request, {d['connections']} connections), delivery latency p50 / p99 / max | {f(d['lat_p50_ms'], 1)} / {f(p99, 1)} / {f(d['lat_max_ms'], 1)} ms | | p99 < 100 ms | {f(d['server_cpu_s'], 2)} s | {f(d['client_cpu_s'], 2)} s | {d['load']} |")
        out.append(f"| {label}: spread after the first subscriber got a label, p50 / p99 / max | {f(d['spread_p50_ms'], 1)} / {f(d['spread_p99_ms'], 1)} / {f(d['spread_max_ms'], 1)} ms | | | | | |")
        out.append(f"| {label}: burst emitted (last durable answer) / last subscriber had the last label | {f(d['emit_s'], 3)} s / {f(d['all_delivered_s'], 3)} s | | | | | |")
        out.append(f"| {label}: deliveries/s (labels × subscribers ÷ time to last delivery) | {f(int(d['deliveries']) / float(d['all_delivered_s']))} | | | | | |")
        mib = lambda b: f"{int(b) / 2**20:.1f} MiB"
        out.append(f"| {label}: server VmRSS before / {subs} idle subscribers / after the burst | {mib(d['rss_before_b'])} / {mib(d['rss_idle_b'])} / {mib(d['rss_after_b'])} | | bounded per subscriber | | | |")
        out.append(f"| {label}: memory per subscriber, idle / after the burst | {f(d['idle_b_per_sub'])} B / {f(d['after_b_per_sub'])} B | | | | | |")
        verdicts.append(f"fan-out memory ({label}): {f(d['idle_b_per_sub'])} B per idle subscriber, {f(d['after_b_per_sub'])} B per subscriber after the burst")
out.append("")
if hot:
    out.append("Hot paths (labeler_hot_paths_bench, same run):")
    out.append("")
    out.append("| benchmark | time |")
    out.append("|---|---:|")
    for name, ns in hot:
        out.append(f"| {name} | {ns / 1e3:.2f} µs |" if ns >= 1000 else f"| {name} | {ns:.0f} ns |")
    out.append("")
if verdicts:
    out.append("Targets: " + "; ".join(verdicts) + ".")
text = "\n".join(out) + "\n"
open(out_path, "w").write(text)
print(text)
PY

echo "results: $WORK/results.md (raw: results.txt, load-*.txt, hot_paths.{txt,json}, plyr-core-*.log)"
warns=$(cat "$WORK"/plyr-core-*.log 2>/dev/null | grep -cE ' (warn|error|critical) ' || true)
((warns == 0)) || { echo "plyr-core logged $warns warn/error lines; first ones:" >&2; cat "$WORK"/plyr-core-*.log | grep -E ' (warn|error|critical) ' | head -5 >&2; }
if ((${#FAILURES[@]})); then
  printf 'run.sh: FAILURES:\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
