#!/usr/bin/env bash
# Scale-out benchmark of the labeler's label log: DURABLE EMIT RATE of TWO `plyr-core serve labeler`
# instances sharing one label log in PostgreSQL, against ONE instance on its embedded SQLite log, in
# the same run, interleaved round by round. Target: the two PostgreSQL instances together reach at
# least half the SQLite figure.
#
#   bench/scaleout/labels.sh            e.g. EMIT_LABELS=4000 ROUNDS=1 bench/scaleout/labels.sh
#
# It builds nothing: it expects build/release/plyr-core and build/release/bench/labeler_load
# (scripts/build.sh release), PostgreSQL 15's server binaries (Debian: postgresql-15, in
# /usr/lib/postgresql/15/bin) and python3.
#
# Knobs (environment):
#   PLYR_CORE_BIN    server binary                          (default: $REPO/build/release/plyr-core)
#   LOAD_BIN         load generator                         (default: $REPO/build/release/bench/labeler_load)
#   EMIT_LABELS      labels per run, in all: the SQLite instance emits all of them, each PostgreSQL
#                    instance half of them (the first one the odd one)            (default 40000)
#   EMIT_RUNS        emit settings, "BATCHxCONNECTIONS" words, as bench/labeler/run.sh (default "1x64 100x8")
#   PG_CONNECTIONS   each: every PostgreSQL instance gets its own labeler_load with C connections
#                    (the two together keep twice the requests in flight of the SQLite run: each
#                    instance sees the client load the single one sees);
#                    split: C/2 connections each (rounded up), the same requests in flight in all
#                                                                                 (default each)
#   ROUNDS           interleaved rounds, 1-9; the table shows medians              (default 3)
#   LABELER_ARGS     extra `plyr-core serve labeler` arguments for EVERY instance (word-split),
#                    e.g. "--threads 1"                                            (default: none)
#   LOAD_TIMEOUT     labeler_load --timeout, seconds per run                        (default 600)
#   PG_BIN           PostgreSQL server binaries             (default /usr/lib/postgresql/15/bin)
#   KEEP=1           keep the cluster's data folder and the labelers' data folders (deleted by
#                    default; logs and results always stay)
#
# What it does:
#   1. work dir bench/out/scaleout-labels-<UTC timestamp>/; one admin token for every process.
#   2. a THROW-AWAY PostgreSQL cluster in WORK/pgdata (initdb -A trust; as the postgres user via
#      runuser when run as root) on a free loopback port (never 5432), its socket in its folder.
#   3. per round, per EMIT_RUNS setting BxC, in this order:
#      (a) ONE labeler with a fresh data folder (its own empty SQLite log); one labeler_load emit
#          (EMIT_LABELS labels, B per request over C keep-alive connections, one live subscriber
#          that must see every acknowledged seq).
#      (b) a fresh database bench_r<round>_<B>x<C> in the cluster and TWO labelers (fresh data
#          folders, the same did, signing key, admin token and --database-url; the second started
#          once the first has migrated the database); two labeler_load emit, one per instance,
#          started together (each EMIT_LABELS/2 labels, --stream-labels EMIT_LABELS: each
#          subscriber sees both emitters' labels; run tags a and b), both waited for.
#          Combined labels/s = EMIT_LABELS / the later process's durable_s (each process measures
#          from its own first send to its last durable answer); the sum of the two reported rates
#          is shown too. The cluster's CPU (utime+stime of the postmaster, of its live children
#          and, through its cutime+cstime, of the children it reaped; /proc) is read right before
#          the two load generators start and right after both ended (so it also covers their
#          connects and their 300 ms settle), divided by EMIT_LABELS. Each labeler's CPU per
#          label is what labeler_load reports for its --server-pid (its CPU over its own run,
#          divided by ITS labels; on the shared log that CPU also covers delivering the other
#          instance's labels to its subscriber).
#      Then the run's labelers are stopped (SIGTERM) and, unless KEEP=1, their data deleted.
#   4. prints a markdown table of medians over the rounds (runs whose labeler_load processes all
#      passed; "n=" in a row says when some did not), then every run (also WORK/table.md); one row per run in
#      WORK/results.tsv; every labeler_load's stdout/stderr in WORK/runs/; logs in WORK/logs/.
#   5. stops the cluster (pg_ctl stop -m fast) and deletes it unless KEEP=1. Only processes this
#      script started are stopped. Exit non-zero if a labeler_load run failed (a missing or
#      unexpected label, an error answer, a timeout) or a labeler died.
# Nothing is pinned: every process (labelers, load generators, PostgreSQL) shares the machine's
# cores; (b) adds no cores, so it shows what the shared log costs, not more capacity.
# PLYR_* variables of the caller (and a PLYR_CONFIG file) are kept away from every plyr-core process.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PLYR_CORE_BIN=${PLYR_CORE_BIN:-$REPO/build/release/plyr-core}
LOAD_BIN=${LOAD_BIN:-$REPO/build/release/bench/labeler_load}
EMIT_LABELS=${EMIT_LABELS:-40000}
EMIT_RUNS=${EMIT_RUNS:-1x64 100x8}
PG_CONNECTIONS=${PG_CONNECTIONS:-each}
ROUNDS=${ROUNDS:-3}
LABELER_ARGS=${LABELER_ARGS:-}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-600}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
KEEP=${KEEP:-0}
# The labels' src: the same did:plc as bench/labeler/run.sh; a fixed throw-away k256 key.
LABELER_DID=did:plc:ar7c4by46qjdydhdevvrndac
SIGNING_KEY=0101010101010101010101010101010101010101010101010101010101010101
CMDLINE="EMIT_LABELS=$EMIT_LABELS EMIT_RUNS=\"$EMIT_RUNS\" PG_CONNECTIONS=$PG_CONNECTIONS ROUNDS=$ROUNDS"
[[ -z $LABELER_ARGS ]] || CMDLINE+=" LABELER_ARGS=\"$LABELER_ARGS\""
[[ $LOAD_TIMEOUT == 600 ]] || CMDLINE+=" LOAD_TIMEOUT=$LOAD_TIMEOUT"
[[ $PLYR_CORE_BIN == "$REPO/build/release/plyr-core" ]] || CMDLINE+=" PLYR_CORE_BIN=$PLYR_CORE_BIN"
[[ $LOAD_BIN == "$REPO/build/release/bench/labeler_load" ]] || CMDLINE+=" LOAD_BIN=$LOAD_BIN"
CMDLINE+=" bench/scaleout/labels.sh"

die() { echo "labels.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# --- settings -----------------------------------------------------------------------------------
if ! [[ $EMIT_LABELS =~ ^[1-9][0-9]*$ ]] || ((EMIT_LABELS < 2 || EMIT_LABELS > 10000000)); then
  die "EMIT_LABELS must be 2-10000000, got '$EMIT_LABELS'"
fi
[[ -n ${EMIT_RUNS// /} ]] || die "EMIT_RUNS is empty"
for r in $EMIT_RUNS; do [[ $r =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || die "EMIT_RUNS entry '$r' is not BATCHxCONNECTIONS"; done
[[ $PG_CONNECTIONS == each || $PG_CONNECTIONS == split ]] || die "PG_CONNECTIONS must be each or split, got '$PG_CONNECTIONS'"
[[ $ROUNDS =~ ^[1-9]$ ]] || die "ROUNDS must be 1-9, got '$ROUNDS'"
if ! [[ $LOAD_TIMEOUT =~ ^[1-9][0-9]*$ ]] || ((LOAD_TIMEOUT > 7200)); then die "LOAD_TIMEOUT must be 1-7200 s"; fi
[[ $KEEP == 0 || $KEEP == 1 ]] || die "KEEP must be 0 or 1, got '$KEEP'"
[[ -x $PLYR_CORE_BIN ]] || die "PLYR_CORE_BIN=$PLYR_CORE_BIN is not an executable (scripts/build.sh release)"
[[ -x $LOAD_BIN ]] || die "LOAD_BIN=$LOAD_BIN is not an executable (scripts/build.sh release)"
for b in initdb pg_ctl createdb postgres; do [[ -x $PG_BIN/$b ]] || die "$PG_BIN/$b is missing (apt-get install postgresql-15, or set PG_BIN)"; done
command -v python3 >/dev/null || die "python3 is required"
AS_ROOT=0
if [[ $(id -u) == 0 ]]; then
  AS_ROOT=1
  id postgres >/dev/null 2>&1 || die "running as root needs the user 'postgres' for the cluster"
  [[ -x /usr/sbin/runuser ]] || die "running as root needs /usr/sbin/runuser"
fi
# Each connection and subscriber is a descriptor on both sides.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]] || ((hard > 65536)); then ulimit -n 65536; else ulimit -n "$hard"; fi

bin_id() { local b; for b in "$PLYR_CORE_BIN" "$LOAD_BIN"; do echo "$(date -u -r "$b" '+%Y-%m-%d %H:%M:%S UTC') $(stat -c %s "$b")"; done; }
BIN_ID=$(bin_id)   # a rebuild during the run shows at the end
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$REPO/bench/out/scaleout-labels-$STAMP
[[ -e $WORK ]] && WORK=$WORK-$$
PG_DIR=$WORK/pgdata
mkdir -p "$WORK/logs" "$WORK/runs"
: >"$WORK/results.tsv.tmp"
PLYR_PIDS=()    # plyr-core processes of the current run
LOAD_PIDS=()    # labeler_load processes, while they run
PG_STARTED=0
TOKEN=bench-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')

# --- processes, cleanup -------------------------------------------------------------------------
as_pg() { # command... : as the postgres user when root (the cluster belongs to it), from /
  if ((AS_ROOT)); then (cd / && /usr/sbin/runuser -u postgres -- "$@"); else "$@"; fi
}
stop_pid() { # pid name
  local pid=$1 name=$2 i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "labels.sh: $name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_loads() {
  local p
  for p in "${LOAD_PIDS[@]}"; do stop_pid "$p" labeler_load; done
  LOAD_PIDS=()
}
stop_plyr() {
  local p
  for p in "${PLYR_PIDS[@]}"; do stop_pid "$p" plyr-core; done
  PLYR_PIDS=()
}
stop_pg() {
  ((PG_STARTED)) || return 0
  if [[ -f $PG_DIR/postmaster.pid ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast -w -t 30 stop >>"$WORK/logs/pg_ctl.log" 2>&1 \
      || echo "labels.sh: pg_ctl stop failed (see $WORK/logs/pg_ctl.log); the cluster in $PG_DIR may still run" >&2
  fi
  PG_STARTED=0
}
cleanup() {
  local rc=$?
  set +e
  stop_loads
  stop_plyr
  stop_pg
  rm -f "$WORK/results.tsv.tmp"
  if [[ $KEEP == 1 ]]; then
    echo "labels.sh: KEEP=1: cluster and data folders kept in $WORK" >&2
  else
    [[ -f $PG_DIR/postmaster.pid ]] || rm -rf "$PG_DIR"
    rm -rf "$WORK/data"
  fi
  [[ $rc -eq 0 ]] || echo "labels.sh: FAILED (exit $rc); logs in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Settings the flags do not name (a PLYR_CONFIG file, PLYR_* variables) stay out of every process.
UNSET=()
for v in $(compgen -e | grep '^PLYR_' || true); do UNSET+=(-u "$v"); done

# start_labeler NAME DATA_DIR ARGS...: starts `plyr-core serve labeler` in the background and waits
# until it listens; sets SPAWN_PID and SPAWN_PORT (no $(...) here: the child stays ours).
start_labeler() {
  local name=$1 data=$2 i
  shift 2
  local ready=$data/ready.json logf=$WORK/logs/$name.log
  mkdir -p "$data"
  local args=(serve labeler --data "$data" --labeler-listen 127.0.0.1:0 --ready-file "$ready"
    --labeler-did "$LABELER_DID" --labeler-signing-key "$SIGNING_KEY" --admin-token "$TOKEN"
    --access-log false "$@")
  echo "$name: $PLYR_CORE_BIN ${args[*]/$TOKEN/TOKEN}" >>"$WORK/logs/cmdlines.txt"
  env "${UNSET[@]}" "$PLYR_CORE_BIN" "${args[@]}" >"$logf" 2>&1 &
  SPAWN_PID=$!
  PLYR_PIDS+=("$SPAWN_PID")
  for ((i = 0; i < 600; i++)); do
    [[ -s $ready ]] && break
    kill -0 "$SPAWN_PID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -s $ready ]] || { tail -20 "$logf" >&2; die "$name (plyr-core serve labeler) did not become ready"; }
  SPAWN_PORT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["labeler"])' "$ready") \
    || die "$name: no \"labeler\" port in $ready"
}

# The cluster's CPU in clock ticks: utime+stime of the postmaster and of every live process it
# forked, plus the postmaster's cutime+cstime (backends that exited and were reaped). As jobs.py.
pg_ticks() {
  python3 - "$PG_DIR" <<'PY'
import os, sys
def fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
try:
    pm = int(open(os.path.join(sys.argv[1], "postmaster.pid")).readline())
except (OSError, ValueError):
    print(-1); sys.exit()
f = fields(pm)
if f is None:
    print(-1); sys.exit()
total = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
for name in os.listdir("/proc"):
    if name.isdigit():
        c = fields(name)
        if c is not None and int(c[1]) == pm:
            total += int(c[11]) + int(c[12])
print(total)
PY
}

# --- the cluster --------------------------------------------------------------------------------
log "work dir: $WORK"
PG_PORT=$(free_port)
[[ $PG_PORT != 5432 ]] || PG_PORT=$(free_port)
[[ $PG_PORT != 5432 ]] || die "no free port other than 5432"
mkdir -p "$PG_DIR"
touch "$WORK/logs/postgres.log"
if ((AS_ROOT)); then chown postgres:postgres "$PG_DIR" "$WORK/logs/postgres.log"; fi
chmod 700 "$PG_DIR"
as_pg "$PG_BIN/initdb" -D "$PG_DIR" -U postgres -A trust -E UTF8 --locale=C >"$WORK/logs/initdb.log" 2>&1 \
  || { tail -20 "$WORK/logs/initdb.log" >&2; die "initdb failed"; }
PG_STARTED=1
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$WORK/logs/postgres.log" -w -t 30 \
  -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=on" start >"$WORK/logs/pg_ctl.log" 2>&1 \
  || { tail -20 "$WORK/logs/postgres.log" >&2; die "the cluster did not start (pg_ctl start)"; }
PG_VERSION=$("$PG_BIN/postgres" --version | awk '{ print $3 }')
log "PostgreSQL $PG_VERSION: throw-away cluster $PG_DIR on 127.0.0.1:$PG_PORT (postmaster pid $(head -1 "$PG_DIR/postmaster.pid"))"
# shellcheck disable=SC2206  # word splitting wanted
EXTRA=($LABELER_ARGS)

# --- the runs -----------------------------------------------------------------------------------
FAILURES=()
CLK=$(getconf CLK_TCK)

# One row of results.tsv from the run's labeler_load outputs (python: parse, aggregate).
record() { # round run setup labels pg_ticks_before pg_ticks_after exit_statuses(a,b) out_files...
  python3 - "$WORK/results.tsv.tmp" "$CLK" "$@" <<'PY'
import sys
tsv, clk, round_, run, setup, labels, pg0, pg1, rcs, *outs = sys.argv[1:]
clk, labels, pg0, pg1 = int(clk), int(labels), int(pg0), int(pg1)
res = []
for o in outs:
    d = None
    for line in open(o):
        if line.startswith("RESULT "):
            d = dict(kv.split("=", 1) for kv in line.split()[1:])
    res.append(d)
ok = all(d is not None for d in res)
def col(key, fmt="{}"):
    return ",".join(fmt.format(d[key]) if d else "-" for d in res)
if ok:
    durable = max(float(d["durable_s"]) for d in res)
    visible = max(float(d["visible_s"]) for d in res)
    acked = sum(int(d["labels"]) for d in res)
    # One process: its own figure (the same quotient, before rounding durable_s).
    rate = res[0]["durable_labels_per_s"] if len(res) == 1 else f"{acked / durable:.0f}"
    vrate = f"{acked / visible:.0f}"
    rsum = f"{sum(float(d['durable_labels_per_s']) for d in res):.0f}"
    durable = f"{durable:.4f}"
else:
    durable = rate = vrate = rsum = "-"
    acked = sum(int(d["labels"]) for d in res if d)
if setup == "pg" and pg0 >= 0 and pg1 >= 0:
    pg_s = (pg1 - pg0) / clk
    pg_cols = [f"{pg_s:.2f}", f"{pg_s * 1e6 / labels:.1f}"]
else:
    pg_cols = ["-", "-"]
row = [round_, run, setup, str(len(res)), str(labels), str(acked), durable, rate, rsum, vrate,
       col("durable_labels_per_s"), col("server_cpu_us_per_label"), col("server_cpu_s"), *pg_cols,
       col("req_p50_ms"), col("req_p99_ms"), col("req_max_ms"), col("missing"), col("unexpected"), rcs]
with open(tsv, "a") as f:
    f.write("\t".join(row) + "\n")
PY
}

# run_setup sqlite|pg ROUND BxC
run_setup() {
  local setup=$1 round=$2 run=$3
  local batch=${run%x*} conns=${run#*x}
  local tag=r$round-$run-$setup n i rc pg0=-1 pg1=-1 url=""
  local dir=$WORK/data/$tag
  local -a pids=() ports=() labels=() outs=() rcs=() tags=(a b)
  if [[ $setup == sqlite ]]; then
    start_labeler "$tag-1" "$dir/1" "${EXTRA[@]}"
    pids+=("$SPAWN_PID") ports+=("$SPAWN_PORT") labels+=("$EMIT_LABELS")
  else
    local db=bench_r${round}_$run
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db" >>"$WORK/logs/pg_ctl.log" 2>&1 \
      || die "createdb $db failed (see $WORK/logs/pg_ctl.log)"
    url=postgres://postgres@127.0.0.1:$PG_PORT/$db
    for n in 1 2; do   # one after the other: the first migrates the database
      start_labeler "$tag-$n" "$dir/$n" --database-url "$url" "${EXTRA[@]}"
      pids+=("$SPAWN_PID") ports+=("$SPAWN_PORT")
    done
    labels=($((EMIT_LABELS - EMIT_LABELS / 2)) $((EMIT_LABELS / 2)))
    [[ $PG_CONNECTIONS == each ]] || conns=$(((conns + 1) / 2))
  fi
  log "round $round, $run, $setup: ${#pids[@]} labeler(s)${url:+ on $url}; labels ${labels[*]}, batch $batch, $conns connection(s) each (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  [[ $setup == sqlite ]] || pg0=$(pg_ticks)
  for ((i = 0; i < ${#pids[@]}; i++)); do
    local out=$WORK/runs/$tag-${tags[i]}
    local largs=(emit --port "${ports[i]}" --token "$TOKEN" --labels "${labels[i]}" --connections "$conns"
      --batch "$batch" --server-pid "${pids[i]}" --run-tag "${tags[i]}" --timeout "$LOAD_TIMEOUT")
    [[ $setup == sqlite ]] || largs+=(--stream-labels "$EMIT_LABELS")
    echo "$tag-${tags[i]}: $LOAD_BIN ${largs[*]/$TOKEN/TOKEN}" >>"$WORK/logs/cmdlines.txt"
    "$LOAD_BIN" "${largs[@]}" >"$out.stdout" 2>"$out.stderr" &
    LOAD_PIDS+=($!)
    outs+=("$out.stdout")
  done
  for ((i = 0; i < ${#LOAD_PIDS[@]}; i++)); do
    rc=0
    wait "${LOAD_PIDS[i]}" || rc=$?
    rcs+=("$rc")
  done
  LOAD_PIDS=()
  [[ $setup == sqlite ]] || pg1=$(pg_ticks)
  for ((i = 0; i < ${#pids[@]}; i++)); do
    local out=$WORK/runs/$tag-${tags[i]}
    sed 's/^/    /' "$out.stderr" >&2
    ((rcs[i] == 0)) || FAILURES+=("round $round, $run, $setup, labeler_load ${tags[i]}: exit ${rcs[i]} (see $out.stderr)")
    kill -0 "${pids[i]}" 2>/dev/null || FAILURES+=("round $round, $run, $setup: labeler $((i + 1)) died (see $WORK/logs/$tag-$((i + 1)).log)")
  done
  record "$round" "$run" "$setup" "$EMIT_LABELS" "$pg0" "$pg1" "$(IFS=,; echo "${rcs[*]}")" "${outs[@]}"
  tail -1 "$WORK/results.tsv.tmp" | awk -F'\t' '{ printf "    => %s labels/s (sum of rates %s); postgres CPU %s s\n", $8, $9, $14 }' >&2
  stop_plyr
  [[ $KEEP == 1 ]] || rm -rf "$dir"
}

read -r -a LOAD_BEFORE <<<"$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average ${LOAD_BEFORE[*]}; $ROUNDS round(s) of (SQLite, PostgreSQL x2) per setting: $EMIT_RUNS; $EMIT_LABELS labels per run"
for ((round = 1; round <= ROUNDS; round++)); do
  for run in $EMIT_RUNS; do
    run_setup sqlite "$round" "$run"
    run_setup pg "$round" "$run"
  done
done
read -r -a LOAD_AFTER <<<"$(cut -d' ' -f1-3 /proc/loadavg)"
stop_pg

# --- table --------------------------------------------------------------------------------------
{
  printf 'round\trun\tsetup\tinstances\tlabels\tacked\tdurable_s\tlabels_per_s\tsum_of_rates\tvisible_labels_per_s\t'
  printf 'rates\tlabeler_cpu_us_per_label\tlabeler_cpu_s\tpostgres_cpu_s\tpostgres_cpu_us_per_label\t'
  printf 'req_p50_ms\treq_p99_ms\treq_max_ms\tmissing\tunexpected\texit\n'
  cat "$WORK/results.tsv.tmp"
} >"$WORK/results.tsv"
HEAD_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$REPO" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]] || HEAD_REV+=" (worktree modified)"
if [[ $PG_CONNECTIONS == each ]]; then CONN_TXT="each PostgreSQL instance gets its own BxC load (twice the requests in flight of the SQLite run)"
else CONN_TXT="the PostgreSQL instances get C/2 connections each (the same requests in flight as the SQLite run)"; fi
{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), HEAD $HEAD_REV, load average ${LOAD_BEFORE[*]} before / ${LOAD_AFTER[*]} after, command: \`$CMDLINE\`"
  echo "plyr-core: $PLYR_CORE_BIN, labeler_load: $LOAD_BIN ($(bin_id | tr '\n' ';' | sed 's/;$//; s/;/; /')); \`serve labeler --access-log false${LABELER_ARGS:+ $LABELER_ARGS}\` (services' defaults otherwise)."
  echo "$(nproc) vCPU ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), nothing pinned; PostgreSQL $PG_VERSION (throw-away cluster, fsync=on, defaults otherwise); $EMIT_LABELS labels per run (SQLite: one labeler_load; PostgreSQL: two at once, $((EMIT_LABELS - EMIT_LABELS / 2)) + $((EMIT_LABELS / 2)), each subscriber checking all $EMIT_LABELS); $CONN_TXT; $ROUNDS interleaved round(s), medians."
} >"$WORK/header.txt"
echo
python3 - "$WORK/results.tsv" "$WORK/header.txt" "$EMIT_RUNS" <<'PY' | tee "$WORK/table.md"
import csv, statistics, sys
tsv, header, runs = sys.argv[1], sys.argv[2], sys.argv[3].split()
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None
def num(s, i=None):
    if s in ("-", ""):
        return None
    parts = s.split(",")
    if i is None:
        return float(s)
    return None if parts[i] == "-" else float(parts[i])
def f(v, d=0):
    return "n/a" if v is None else f"{v:,.{d}f}".replace(",", " ")
def ok(r):
    return r["labels_per_s"] != "-" and all(x == "0" for x in r["missing"].split(",") + r["unexpected"].split(",") + r["exit"].split(","))
out = [open(header).read().strip(), ""]
out.append("| run (BxC) | SQLite 1 instance labels/s | PostgreSQL 2 instances labels/s (combined) | ÷ SQLite | target ≥ 0.5 "
           "| labeler CPU µs/label (SQLite / PG each) | postgres CPU µs/label | p99 request ms (SQLite / PG) |")
out.append("|---|---:|---:|---:|---|---:|---:|---:|")
notes = []
for run in runs:
    a = [r for r in rows if r["run"] == run and r["setup"] == "sqlite"]
    b = [r for r in rows if r["run"] == run and r["setup"] == "pg"]
    ag, bg = [r for r in a if ok(r)], [r for r in b if ok(r)]
    sq = med([num(r["labels_per_s"]) for r in ag])
    pg = med([num(r["labels_per_s"]) for r in bg])
    pgsum = med([num(r["sum_of_rates"]) for r in bg])
    ratio = pg / sq if sq and pg else None
    verdict = "n/a" if ratio is None else ("**met**" if ratio >= 0.5 else "**MISSED**")
    cpu_a = med([num(r["labeler_cpu_us_per_label"], 0) for r in ag])
    cpu_b1 = med([num(r["labeler_cpu_us_per_label"], 0) for r in bg])
    cpu_b2 = med([num(r["labeler_cpu_us_per_label"], 1) for r in bg])
    pgcpu = med([num(r["postgres_cpu_us_per_label"]) for r in bg])
    p99_a = med([num(r["req_p99_ms"], 0) for r in ag])
    p99_b = med([max(num(r["req_p99_ms"], 0), num(r["req_p99_ms"], 1)) for r in bg])
    n = f" (n={len(ag)}/{len(a)}, {len(bg)}/{len(b)})" if len(ag) != len(a) or len(bg) != len(b) else ""
    out.append(f"| {run}{n} | {f(sq)} | {f(pg)} (sum of rates {f(pgsum)}) | {'n/a' if ratio is None else f'{ratio:.2f}'} | {verdict} "
               f"| {f(cpu_a, 1)} / {f(cpu_b1, 1)}, {f(cpu_b2, 1)} | {f(pgcpu, 1)} | {f(p99_a, 1)} / {f(p99_b, 1)} |")
out.append("")
out.append("PG p99: the higher of the two instances' p99, median over rounds. Per run (labels/s; PG: combined, the two "
           "instances' own rates, postgres CPU s):")
out.append("")
out.append("| round | run | SQLite | PG combined | PG a / b | ÷ SQLite | postgres CPU s | missing / unexpected (SQLite; PG a, b) |")
out.append("|---:|---|---:|---:|---:|---:|---:|---|")
for r in sorted({(int(x["round"]), x["run"]) for x in rows}, key=lambda k: (k[0], runs.index(k[1]))):
    a = next((x for x in rows if (int(x["round"]), x["run"]) == r and x["setup"] == "sqlite"), None)
    b = next((x for x in rows if (int(x["round"]), x["run"]) == r and x["setup"] == "pg"), None)
    sq = num(a["labels_per_s"]) if a else None
    pg = num(b["labels_per_s"]) if b else None
    rates = " / ".join(f(num(v)) if v != "-" else "n/a" for v in b["rates"].split(",")) if b else "n/a"
    def mu(x):
        if x is None:
            return "n/a"
        return ", ".join(f"{m}/{u}" for m, u in zip(x["missing"].split(","), x["unexpected"].split(",")))
    out.append(f"| {r[0]} | {r[1]} | {f(sq)} | {f(pg)} | {rates} | {f(pg / sq, 2) if sq and pg else 'n/a'} "
               f"| {b['postgres_cpu_s'] if b else 'n/a'} | {mu(a)}; {mu(b)} |")
print("\n".join(out))
PY
[[ $(bin_id) == "$BIN_ID" ]] \
  || echo "- WARNING: plyr-core or labeler_load was rebuilt during the run: the runs may not all have used the same binaries" | tee -a "$WORK/table.md"
if ((${#FAILURES[@]})); then printf -- '- FAILED: %s\n' "${FAILURES[@]}" | tee -a "$WORK/table.md"; fi
echo
echo "results: $WORK/table.md (one row per run: results.tsv; labeler_load outputs: runs/; logs/)"

warns=$(cat "$WORK"/logs/r*-*.log | grep -cE '^[^ ]+ (warn|warning|error|critical) ' || true)
((warns == 0)) || { echo "plyr-core logged $warns warn/error lines; first ones:" >&2; cat "$WORK"/logs/r*-*.log | grep -E '^[^ ]+ (warn|warning|error|critical) ' | head -5 >&2; }
if ((${#FAILURES[@]})); then
  printf 'labels.sh: FAILURES:\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
