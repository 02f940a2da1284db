#!/usr/bin/env bash
# Streaming load benchmark: plyr-core's streamer against nginx (sendfile on) serving the same
# files, both driven by wrk in the same run. See bench/RESULTS.md for results and reading.
#
#   bench/streaming/run.sh
#
# Knobs (environment):
#   PLYR_CORE_BIN  server binary                         (default: $REPO/build/release/plyr-core)
#   THREADS        plyr-core --threads and nginx worker_processes        (default 1)
#   THREAD_MODEL   plyr-core --thread-model per-core|shared              (default per-core)
#   SEND_MODE      plyr-core --streamer-file-send-mode read|sendfile     (default sendfile, as
#                  the server's own default)
#   DURATION       seconds per wrk run (6 workloads x 3 servers x 5 rounds x 5 s: ~9 min in all) (default 5)
#   CONNECTIONS    wrk -c                                                (default 64)
#   NFILES         files per set (there are two sets: public and gated)  (default 16)
#   FILE_MB        size of each file in MiB                              (default 4)
#   WORKLOADS      space-separated subset of: range64k range1m whole range64k-gated range1m-gated whole-gated
#   SEED           wrk Lua random seed; both servers get the same request sequence (default 42)
#   WRK_TIMEOUT    wrk --timeout                                         (default 5s)
#   NGINX_VARIANTS which nginx anchors to run: "nopush-on" (the reference config: sendfile on,
#                  tcp_nopush on) and/or "nopush-off" (same with tcp_nopush off)
#                                                      (default "nopush-on nopush-off")
#   PLYR_EXTRA_ARGS extra arguments for `plyr-core serve` (word-split), e.g. "--http-max-connections 8"
#   KEEP_DATA=1    keep the uploaded blobs in the work dir (they are deleted by default)
#   SERVER_CPUS    CPU list every server (nginx and plyr-core alike) is pinned to with taskset
#                  (default "0" on a machine with 2+ CPUs; "none" = no pinning)
#   WRK_CPUS       CPU list wrk is pinned to (default "1" on a machine with 2+ CPUs; "none")
#                  Why pin: unpinned, the scheduler now and then runs wrk and the server on the
#                  same core, and req/s moves +-30 % between identical runs; pinned, the server
#                  under test and the load generator never compete for a core.
#   ROUNDS         how many times every workload is run on every server, interleaved
#                  (nginx, nginx-nopush-off, plyr-core, nginx, ...); the table reports the median
#                  of the rounds and the range of plyr-core's per-round ratio (default 5: a single
#                  round moves by up to +-15 % on this VM; the median of 5 is the steadier figure)
#
# What it does:
#   1. work dir bench/out/streaming-<UTC timestamp>/; two sets of NFILES random files
#      ("public" and "gated"; file ids are content hashes, and a file id has one track entry,
#      so the gated workloads use their own distinct files).
#   2. starts a fake atprotofans (fake_atprotofans.py, answers {"valid": true}) and plyr-core,
#      uploads both sets, registers the public set with gate "none" and the gated set with
#      gate "any" (owner did:plc:artist), mints a ticket for did:plc:fan.
#   3. starts nginx (1.22, worker_processes = THREADS, sendfile on, access_log off, keepalive
#      100000) whose root holds /audio/<file_id> symlinks to plyr-core's own blob files: both
#      servers read the very same inodes and page-cache pages. Two instances by default:
#      "nginx" = tcp_nopush on (the reference config of the design doc) and "nginx-nopush-off".
#      Why both: with tcp_nopush on, 64 KiB responses on loopback often stall ~40 ms (probably a
#      delayed ACK; p99 = 44 ms, req/s mostly 1.6k-11k), so that nginx is a weak anchor for
#      small ranges; with tcp_nopush off it does not stall but is a bit slower on 1 MiB ranges.
#      The table gives plyr-core's ratio against both and against the better one ("best").
#   4. warms the page cache, then checks correctness (status, bytes) on every server, and that
#      the gate refuses a request without a ticket (401) and admits one with it (which also warms
#      the supporter cache; the fake server must see about one call for the whole run).
#   5. for every workload, runs `wrk -t1 -cCONNECTIONS -dDURATIONs --latency` against each nginx
#      and then plyr-core with identical settings and the same random request sequence:
#        range64k / range1m : a random 64 KiB / 1 MiB range of a random public file
#        whole              : a random whole public file, no Range header
#        *-gated            : the same on the gated set; plyr-core gets the ticket (and checks
#                             the supporter gate, cache warm); nginx serves the same bytes
#                             ungated (the same Authorization header is sent to both).
#      Server CPU (utime+stime from /proc/PID/stat) is sampled before and after each run.
#   6. prints the table (also WORKDIR/results.md, raw rows in WORKDIR/results.tsv).
#   7. exits non-zero if any run saw errors (socket errors or status >= 400), if a server died,
#      or if a check failed. A trap stops every process it started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
"$REPO/scripts/install-deps.sh" test  # what the benchmark runs against (nginx, wrk, ffmpeg, fpcalc)

PLYR_CORE_BIN=${PLYR_CORE_BIN:-$REPO/build/release/plyr-core}
THREADS=${THREADS:-1}
THREAD_MODEL=${THREAD_MODEL:-per-core}
SEND_MODE=${SEND_MODE:-sendfile}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
NFILES=${NFILES:-16}
FILE_MB=${FILE_MB:-4}
WORKLOADS=${WORKLOADS:-range64k range1m whole range64k-gated range1m-gated whole-gated}
SEED=${SEED:-42}
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
NGINX_VARIANTS=${NGINX_VARIANTS:-nopush-on nopush-off}
KEEP_DATA=${KEEP_DATA:-0}
if (($(nproc) >= 2)); then SERVER_CPUS=${SERVER_CPUS:-0} WRK_CPUS=${WRK_CPUS:-1}; fi
SERVER_CPUS=${SERVER_CPUS:-none}
WRK_CPUS=${WRK_CPUS:-none}
ROUNDS=${ROUNDS:-5}
PLYR_EXTRA_ARGS=${PLYR_EXTRA_ARGS:-}
NGINX=${NGINX:-/usr/sbin/nginx}
WRK=${WRK:-/usr/bin/wrk}
ADMIN_TOKEN=bench-admin-$$-$RANDOM$RANDOM
VIEWER=did:plc:fan
OWNER=did:plc:artist

die() { echo "run.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

for v in THREADS DURATION CONNECTIONS NFILES FILE_MB SEED ROUNDS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
[[ $THREAD_MODEL == per-core || $THREAD_MODEL == shared ]] || die "THREAD_MODEL must be per-core or shared"
[[ $SEND_MODE == read || $SEND_MODE == sendfile ]] || die "SEND_MODE must be read or sendfile"
((DURATION <= 120)) || die "DURATION is capped at 120 s per run"
((ROUNDS <= 9)) || die "ROUNDS is capped at 9"
for v in SERVER_CPUS WRK_CPUS; do
  [[ ${!v} == none || ${!v} =~ ^[0-9]+([,-][0-9]+)*$ ]] || die "$v must be a CPU list such as 0 or 0-1, or none"
done
((CONNECTIONS <= 1024)) || die "CONNECTIONS is capped at 1024"
((NFILES * FILE_MB <= 2048)) || die "NFILES*FILE_MB is capped at 2048 MiB per set"
for w in $WORKLOADS; do
  case $w in range64k|range1m|whole|range64k-gated|range1m-gated|whole-gated) ;; *) die "unknown workload '$w'" ;; esac
done
[[ -n ${NGINX_VARIANTS// /} ]] || die "NGINX_VARIANTS is empty"
for v in $NGINX_VARIANTS; do
  [[ $v == nopush-on || $v == nopush-off ]] || die "unknown NGINX_VARIANTS entry '$v' (nopush-on, nopush-off)"
done
[[ -x $PLYR_CORE_BIN ]] || die "PLYR_CORE_BIN=$PLYR_CORE_BIN is not an executable (build with: cmake --preset release && cmake --build --preset release)"
[[ -x $NGINX ]] || die "nginx not found at $NGINX (apt-get install nginx-light or nginx)"
[[ -x $WRK ]] || die "wrk not found at $WRK (apt-get install wrk)"
for c in curl python3 sha256sum; do command -v "$c" >/dev/null || die "$c is required"; done
SERVER_PIN=() WRK_PIN=()
[[ $SERVER_CPUS == none ]] || SERVER_PIN=(taskset -c "$SERVER_CPUS")
[[ $WRK_CPUS == none ]] || WRK_PIN=(taskset -c "$WRK_CPUS")
((${#SERVER_PIN[@]} + ${#WRK_PIN[@]} == 0)) || command -v taskset >/dev/null || die "taskset is required (util-linux) unless SERVER_CPUS=none WRK_CPUS=none"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$REPO/bench/out/streaming-$STAMP
[[ -e $WORK ]] && WORK=$WORK-$$
DATA=$WORK/plyr-data
NGX=$WORK/nginx
mkdir -p "$WORK/src" "$DATA" "$NGX/root/audio" "$WORK/wrk"
CLK_TCK=$(getconf CLK_TCK)

PLYR_PID="" FAKE_PID=""
declare -A URL=() NGINX_PID=()   # by server name: "nginx" (tcp_nopush on), "nginx-nopush-off", "plyr-core"
SERVERS=()                       # nginx variants first, plyr-core last

stop_pid() { # pid name
  local pid=$1 name=$2 i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
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
  local s
  for s in "${!NGINX_PID[@]}"; do stop_pid "${NGINX_PID[$s]}" "$s"; done
  stop_pid "$PLYR_PID" plyr-core
  stop_pid "$FAKE_PID" fake_atprotofans
  if [[ $KEEP_DATA != 1 ]]; then
    rm -rf "$WORK/src" "$DATA/streamer/blobs"
  fi
  [[ $rc -eq 0 ]] || echo "run.sh: FAILED (exit $rc); logs in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

alive() { kill -0 "$1" 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime+stime (clock ticks) of the given pids, summed.
cpu_ticks() {
  local total=0 pid rest
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    rest=$(<"/proc/$pid/stat")
    rest=${rest##*) }                      # drop "pid (comm) "; fields now start at 3 (state)
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))       # fields 14 (utime) and 15 (stime)
  done
  echo "$total"
}

server_pids() { # server name -> pids whose CPU counts (nginx: master and workers)
  local workers
  if [[ $1 == plyr-core ]]; then echo "$PLYR_PID"; return; fi
  workers=$(ps -o pid= --ppid "${NGINX_PID[$1]}" 2>/dev/null || true)
  # shellcheck disable=SC2086
  echo "${NGINX_PID[$1]}" $workers
}

log "work dir: $WORK"
log "plyr-core: $PLYR_CORE_BIN"
log "THREADS=$THREADS THREAD_MODEL=$THREAD_MODEL SEND_MODE=$SEND_MODE DURATION=${DURATION}s ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS NFILES=$NFILES FILE_MB=$FILE_MB SERVER_CPUS=$SERVER_CPUS WRK_CPUS=$WRK_CPUS"

# --- 1. files ---------------------------------------------------------------------------------
FILE_BYTES=$((FILE_MB * 1048576))
log "creating 2 x $NFILES files of $FILE_MB MiB"
for set in public gated; do
  for ((i = 0; i < NFILES; i++)); do
    head -c "$FILE_BYTES" /dev/urandom >"$WORK/src/$set-$i.bin"
  done
done

# --- 2. fake atprotofans + plyr-core ----------------------------------------------------------
python3 "$HERE/fake_atprotofans.py" --port-file "$WORK/fake.port" >"$WORK/fake_atprotofans.log" 2>"$WORK/fake_atprotofans.stderr" &
FAKE_PID=$!
for ((i = 0; i < 100; i++)); do [[ -s $WORK/fake.port ]] && break; alive "$FAKE_PID" || break; sleep 0.1; done
[[ -s $WORK/fake.port ]] || die "fake_atprotofans did not start (see $WORK/fake_atprotofans.stderr)"
FAKE_PORT=$(<"$WORK/fake.port")

SUPPORTER_FLAG=--supporter-url
PLYR_ARGS=(serve streamer --data "$DATA" --streamer-listen 127.0.0.1:0 --ready-file "$DATA/ready.json"
  --access-log false --threads "$THREADS" --thread-model "$THREAD_MODEL" --streamer-file-send-mode "$SEND_MODE"
  "$SUPPORTER_FLAG" "http://127.0.0.1:$FAKE_PORT" --admin-token "$ADMIN_TOKEN")
# shellcheck disable=SC2206  # word splitting wanted
PLYR_ARGS+=($PLYR_EXTRA_ARGS)
echo "$PLYR_CORE_BIN ${PLYR_ARGS[*]/$ADMIN_TOKEN/ADMIN_TOKEN}" >"$WORK/plyr-core.cmdline"
# PLYR_CONFIG (a TOML file) would silently change settings the flags do not name: ignore it here.
env -u PLYR_CONFIG "${SERVER_PIN[@]}" "$PLYR_CORE_BIN" "${PLYR_ARGS[@]}" >"$WORK/plyr-core.log" 2>&1 &
PLYR_PID=$!
for ((i = 0; i < 200; i++)); do [[ -s $DATA/ready.json ]] && break; alive "$PLYR_PID" || break; sleep 0.05; done
[[ -s $DATA/ready.json ]] || { tail -20 "$WORK/plyr-core.log" >&2; die "plyr-core did not become ready"; }
PLYR_PORT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["streamer"])' "$DATA/ready.json")
PLYR=http://127.0.0.1:$PLYR_PORT
URL[plyr-core]=$PLYR
log "plyr-core pid $PLYR_PID on $PLYR; fake atprotofans on 127.0.0.1:$FAKE_PORT"

log "uploading and cataloguing (public: gate none, gated: gate any)"
: >"$WORK/paths-public.txt"
: >"$WORK/paths-gated.txt"
: >"$WORK/ids.tsv"
for set in public gated; do
  gate=none
  [[ $set == gated ]] && gate=any
  for ((i = 0; i < NFILES; i++)); do
    src=$WORK/src/$set-$i.bin
    out=$(curl -sS -f --max-time 60 -X PUT --data-binary "@$src" -H "Authorization: Bearer $ADMIN_TOKEN" \
      -H 'Content-Type: audio/mpeg' "$PLYR/v1/files") || die "upload of $src failed"
    read -r id size < <(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["file_id"], d["size"])' "$out")
    [[ $size == "$FILE_BYTES" ]] || die "upload of $src reported size $size, expected $FILE_BYTES"
    curl -sS -f --max-time 10 -o /dev/null -X PUT -H "Authorization: Bearer $ADMIN_TOKEN" \
      -H 'Content-Type: application/json' -d "{\"owner_did\":\"$OWNER\",\"gate\":\"$gate\"}" "$PLYR/v1/tracks/$id" \
      || die "PUT /v1/tracks/$id (gate $gate) failed"
    blob=$DATA/streamer/blobs/${id:0:2}/$id
    [[ -f $blob ]] || die "expected plyr-core blob at $blob"
    ln -s "$blob" "$NGX/root/audio/$id"
    echo "/audio/$id $FILE_BYTES" >>"$WORK/paths-$set.txt"
    printf '%s\t%s\t%s\n' "$set" "$id" "$src" >>"$WORK/ids.tsv"
  done
done
TICKET=$("$PLYR_CORE_BIN" ticket mint --data "$DATA" --viewer "$VIEWER" --file '*' --ttl $((3600 + 20 * DURATION))) \
  || die "ticket mint failed"
[[ -n $TICKET ]] || die "ticket mint printed nothing"

# --- 3. nginx ---------------------------------------------------------------------------------
NGINX_USER=""
[[ $(id -u) == 0 ]] && NGINX_USER="user root;"   # workers must read the blobs; otherwise they drop to nobody
first_public=$(head -1 "$WORK/paths-public.txt" | cut -d' ' -f1)
for variant in $NGINX_VARIANTS; do
  name=nginx
  nopush=on
  if [[ $variant == nopush-off ]]; then name=nginx-nopush-off; nopush=off; fi
  dir=$NGX/$name
  mkdir -p "$dir/tmp"
  port=$(free_port)
  cat >"$dir/nginx.conf" <<EOF
# generated by bench/streaming/run.sh
$NGINX_USER
worker_processes $THREADS;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  types { audio/mpeg mp3; }
  default_type audio/mpeg;
  access_log off;
  sendfile on;
  tcp_nopush $nopush;
  keepalive_requests 100000;
  keepalive_timeout 120s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    server_name bench;
    root $NGX/root;
    location /audio/ { }
  }
}
EOF
  "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || die "nginx -t rejected $dir/nginx.conf"
  "${SERVER_PIN[@]}" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  NGINX_PID[$name]=$!
  URL[$name]=http://127.0.0.1:$port
  SERVERS+=("$name")
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null --max-time 1 -r 0-0 "${URL[$name]}$first_public" && break
    alive "${NGINX_PID[$name]}" || break
    sleep 0.1
  done
  alive "${NGINX_PID[$name]}" || { cat "$dir/error.log" >&2; die "$name did not start"; }
  log "$name (tcp_nopush $nopush) pid ${NGINX_PID[$name]} on ${URL[$name]} (worker_processes $THREADS)"
done
SERVERS+=(plyr-core)

# --- 4. page cache + correctness checks --------------------------------------------------------
log "warming the page cache"
cat "$DATA"/streamer/blobs/*/* >/dev/null

fetch() { # url out [curl args...] -> prints status
  local url=$1 out=$2
  shift 2
  curl -sS --max-time 10 -o "$out" -w '%{http_code}' "$@" "$url"
}
check_same() { # what expected_status url out_name [curl args]; compares body with the source file slice
  local what=$1 want=$2 path=$3 src=$4 off=$5 len=$6
  shift 6
  local server url got exp
  exp=$(dd if="$src" iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none | sha256sum | cut -d' ' -f1)
  for server in "${SERVERS[@]}"; do
    url=${URL[$server]}$path
    got=$(fetch "$url" "$WORK/check.body" "$@") || die "check '$what' on $server: curl failed"
    [[ $got == "$want" ]] || die "check '$what' on $server: status $got, expected $want (body: $(head -c 300 "$WORK/check.body"))"
    [[ $(sha256sum <"$WORK/check.body" | cut -d' ' -f1) == "$exp" ]] || die "check '$what' on $server: body differs from the source file"
  done
}
pub_id=$(awk '$1 == "public" {print $2; exit}' "$WORK/ids.tsv")
pub_src=$(awk '$1 == "public" {print $3; exit}' "$WORK/ids.tsv")
gat_id=$(awk '$1 == "gated" {print $2; exit}' "$WORK/ids.tsv")
gat_src=$(awk '$1 == "gated" {print $3; exit}' "$WORK/ids.tsv")
AUTH="Authorization: Bearer $TICKET"
log "checking status codes and bytes on every server"
check_same "64k range" 206 "/audio/$pub_id" "$pub_src" 12345 65536 -H "Range: bytes=12345-$((12345 + 65535))"
check_same "1m range" 206 "/audio/$pub_id" "$pub_src" 1000000 1048576 -H "Range: bytes=1000000-$((1000000 + 1048575))"
check_same "whole" 200 "/audio/$pub_id" "$pub_src" 0 "$FILE_BYTES"
code=$(fetch "$PLYR/audio/$gat_id" /dev/null -H "Range: bytes=0-99") || die "gated check: curl failed"
[[ $code == 401 ]] || die "gated track without a ticket answered $code, expected 401: the gate is not on, the gated workloads would be meaningless"
check_same "gated 64k range (ticket; warms the supporter cache)" 206 "/audio/$gat_id" "$gat_src" 777 65536 \
  -H "Range: bytes=777-$((777 + 65535))" -H "$AUTH"
check_same "gated whole (ticket)" 200 "/audio/$gat_id" "$gat_src" 0 "$FILE_BYTES" -H "$AUTH"
calls=$(grep -c '^CALL ' "$WORK/fake_atprotofans.log" || true)
((calls >= 1)) || die "plyr-core admitted a gated request without asking the supporter server"
rm -f "$WORK/src"/*.bin "$WORK/check.body"   # nginx and the checks use the blobs from here on

# --- 5. workloads -------------------------------------------------------------------------------
printf 'workload\tserver\trequests\tduration_us\tbytes\trps\tbytes_per_s\tp50_us\tp99_us\tmax_us\terrors\terror_detail\tcpu_ticks\tcpu_us_per_req\tcpu_pct\twrk_cpu_pct\tround\n' \
  >"$WORK/results.tsv"
FAILURES=()

run_one() { # workload server round
  local w=$1 server=$2 round=$3 url pids mode len set out before after line wrk_cpu rc=0
  case $w in
    range64k*) mode=range len=65536 ;;
    range1m*) mode=range len=1048576 ;;
    whole*) mode=whole len=0 ;;
  esac
  set=public
  local -a hdr=()
  if [[ $w == *-gated ]]; then set=gated; hdr=(-H "$AUTH"); fi
  url=${URL[$server]}
  out=$WORK/wrk/$w-$server-$round.txt
  pids=$(server_pids "$server")
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  # wrk runs under a tiny python parent that reports wrk's own CPU seconds (RUSAGE_CHILDREN).
  wrk_cpu=$(python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as out:
    rc = subprocess.call(sys.argv[2:], stdout=out, stderr=subprocess.STDOUT)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.3f" % (ru.ru_utime + ru.ru_stime))
sys.exit(rc)' "$out" "${WRK_PIN[@]}" "$WRK" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency "${hdr[@]}" \
    -s "$HERE/stream.lua" "$url" -- "$mode" "$WORK/paths-$set.txt" "$len" "$SEED") || rc=$?
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  if [[ $server != plyr-core ]]; then alive "${NGINX_PID[$server]}" || die "$server died during $w"; fi
  if [[ $server == plyr-core ]] && ! alive "$PLYR_PID"; then
    tail -30 "$WORK/plyr-core.log" >&2
    die "plyr-core died during $w (log: $WORK/plyr-core.log)"
  fi
  ((rc == 0)) || { cat "$out" >&2; die "wrk failed (exit $rc) for $w on $server"; }
  line=$(grep '^RESULT ' "$out") || { cat "$out" >&2; die "no RESULT line from wrk for $w on $server"; }
  python3 - "$w" "$server" "$((after - before))" "$CLK_TCK" "$line" "$wrk_cpu" "$round" >>"$WORK/results.tsv" <<'PY'
import sys
w, server, ticks, clk, line = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
wrk_cpu, rnd = float(sys.argv[6]), sys.argv[7]
d = dict(kv.split("=", 1) for kv in line.split()[1:])
req = int(d["requests"]); dur = int(d["duration_us"])
errs = {k[4:]: int(v) for k, v in d.items() if k.startswith("err_") and int(v)}
cpu_s = ticks / clk
print("\t".join(map(str, [w, server, req, dur, d["bytes"], d["rps"], d["bytes_per_s"], d["p50_us"], d["p99_us"],
    d["max_us"], sum(errs.values()), ",".join(f"{k}={v}" for k, v in errs.items()) or "-", ticks,
    f"{cpu_s * 1e6 / req:.1f}" if req else "nan", f"{100 * cpu_s / (dur / 1e6):.1f}",
    f"{100 * wrk_cpu / (dur / 1e6):.1f}", rnd])))
PY
  local summary
  summary=$(tail -1 "$WORK/results.tsv" | awk -F'\t' '{printf "%.0f req/s, %.0f MB/s, p99 %.1f ms, %s µs CPU/req, errors %s %s", $6, $7/1e6, $9/1000, $14, $11, $12}')
  log "  $w on $server (round $round): $summary"
  if [[ $(tail -1 "$WORK/results.tsv" | cut -f11) != 0 ]]; then FAILURES+=("$w on $server: $(tail -1 "$WORK/results.tsv" | cut -f12)"); fi
}

read -r load1 _ </proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
  log "WARNING: load average $load1 before the load runs: other jobs compete for the 2 cores; expect noisy numbers"
fi
log "load: wrk -t1 -c$CONNECTIONS -d${DURATION}s --timeout $WRK_TIMEOUT --latency, seed $SEED; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for w in $WORKLOADS; do
  for ((round = 1; round <= ROUNDS; round++)); do
    for server in "${SERVERS[@]}"; do run_one "$w" "$server" "$round"; done
  done
done
CALLS_TOTAL=$(grep -c '^CALL ' "$WORK/fake_atprotofans.log" || true)

# --- 6. table -----------------------------------------------------------------------------------
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) vCPU, kernel $(uname -r), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $("$WRK" -v 2>&1 | head -1 | cut -d' ' -f1-2)."
  echo "plyr-core: \`$PLYR_CORE_BIN\` --threads $THREADS --thread-model $THREAD_MODEL --streamer-file-send-mode $SEND_MODE; nginx: worker_processes $THREADS, sendfile on; \`nginx\` = tcp_nopush on (reference config), \`nginx-nopush-off\` = tcp_nopush off."
  echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency, $ROUNDS interleaved rounds (medians shown); servers pinned to CPUs $SERVER_CPUS, wrk to $WRK_CPUS; $NFILES files x $FILE_MB MiB per set, page cache warm; load average after: $(cut -d' ' -f1-3 /proc/loadavg); validateSupporter calls seen by the fake atprotofans: $CALLS_TOTAL."
} >"$WORK/header.txt"
echo
cat "$WORK/header.txt"
echo
python3 "$HERE/report.py" "$WORK/results.tsv" "$WORK/results.md" "$WORK/header.txt"
echo
echo "results: $WORK/results.md (raw: results.tsv, wrk/*.txt, plyr-core.log, nginx/*/error.log)"

warns=$(grep -cE ' (warn|error|critical) ' "$WORK/plyr-core.log" || true)
((warns == 0)) || { echo "plyr-core logged $warns warn/error lines; first ones:" >&2; grep -E ' (warn|error|critical) ' "$WORK/plyr-core.log" | head -5 >&2; }
if ((${#FAILURES[@]})); then
  printf 'run.sh: ERRORS during load:\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
