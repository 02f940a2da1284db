#!/usr/bin/env bash
# Scale-out benchmark of the transcoder's job queue: job throughput of TWO `plyr-core serve
# transcoder` instances sharing one PostgreSQL queue, against ONE instance on its embedded SQLite
# queue, in the same run, on the same input, interleaved round by round.
#
#   bench/scaleout/jobs.sh              e.g. JOBS=4 DURATION_S=20 ROUNDS=1 bench/scaleout/jobs.sh
#
# It builds nothing: it expects build/release/plyr-core (scripts/build.sh release), PostgreSQL 15's
# server binaries (Debian: postgresql-15, in /usr/lib/postgresql/15/bin), ffmpeg, curl, python3.
#
# Knobs (environment):
#   PLYR_CORE_BIN    server binary                                (default: $REPO/build/release/plyr-core)
#   JOBS             jobs per run, 1-50                           (default 8)
#   DURATION_S       seconds of the input, 1-600                  (default 60)
#   SOURCE           the input's audio: music (two voices of chord tones plus pink noise, 44.1 kHz
#                    stereo, ~600 kbit/s as FLAC) or sine (440 Hz on both channels, ~100 kbit/s as FLAC)
#                                                                 (default music)
#   LADDER           renditions of every job, comma-separated     (default mp3-128,opus-64)
#   SAME_INPUT=1     POST the very same bytes for every job (uploads are content-addressed: one
#                    file on the streamer for all). By default job i gets its own copy of the input,
#                    the same audio with a tag "comment=plyr-bench job i" (ffmpeg -c copy), as distinct
#                    uploads are. (Identical bodies arriving at once once raced on the PostgreSQL
#                    queue; SAME_INPUT=1 is the check that they no longer do.)  (default 0)
#   ROUNDS           interleaved rounds (a, b, a, b, ...), 1-9; the table shows medians (default 2)
#   TRANSCODER_ARGS  extra `plyr-core serve transcoder` arguments for EVERY instance of both setups
#                    (word-split), e.g. "--transcoder-max-running-jobs 1 --transcoder-workers 1"
#                    (default: none, the service's defaults: 2 running jobs, one encoder thread per core)
#   JOB_TIMEOUT      seconds one run (all JOBS) may take          (default 600)
#   POLL_S           seconds between two GET /v1/jobs polls       (default 0.1)
#   PG_BIN           PostgreSQL server binaries                   (default /usr/lib/postgresql/15/bin)
#   KEEP=1           keep the cluster's data folder, the plyr-core data folders, the input and the
#                    admin token (deleted by default; logs and results always stay)
#
# What it does:
#   1. work dir bench/out/scaleout-jobs-<UTC timestamp>/; the input (DURATION_S s, FLAC, made with
#      the ffmpeg CLI) and its JOBS tagged copies (WORK/inputs/); one admin token (WORK/admin-token)
#      for every process.
#   2. a THROW-AWAY PostgreSQL cluster in WORK/pgdata (initdb -A trust; as the postgres user via
#      runuser when run as root) on a free loopback port (never 5432), its socket in its folder.
#   3. per round, in this order:
#      (a) a fresh streamer (`serve streamer`, the renditions go there) and ONE transcoder with its
#          own fresh data folder, hence its own empty SQLite queue;
#      (b) a fresh streamer, a fresh database bench_r<round> in the cluster, and TWO transcoders
#          (fresh data folders, --database-url of that database, the second started once the first
#          has migrated it), each with the service's default settings;
#      JOBS jobs POSTed back to back (job i's FLAC as the body, ?owner_did=did:plc:bench&renditions=LADDER;
#      in (b) alternately to the two instances, and each body is first stored on the streamer, as
#      the shared queue requires), then GET /v1/jobs polled every POLL_S s (alternately on the
#      instances) until every job has ended. jobs/min = JOBS / (first POST to the last end seen);
#      utime+stime (/proc/PID/stat) of the transcoders, the streamer and the cluster (its postmaster,
#      live children, and the children it reaped) read right before the first POST and right after,
#      with the machine's busy time (/proc/stat), whose remainder is what other processes took.
#      Afterwards every job is checked: "done", with one result per rendition of LADDER; and each
#      instance's plyr_transcoder_jobs_ended_total{state="done"} (GET /metrics) says how many it
#      ran, cross-checked against its log's "transcoder: job running id=" lines. Then the run's
#      processes are stopped (SIGTERM) and, unless KEEP=1, its data folders deleted.
#   4. prints a markdown table of medians (also WORK/table.md; one row per run in WORK/results.tsv,
#      the raw runs in WORK/runs/*.json, logs in WORK/logs/).
#   5. stops the cluster (pg_ctl stop -m fast) and deletes it unless KEEP=1. Only processes this
#      script started are stopped. Exit non-zero if a job did not end "done", a process died, or a
#      run timed out.
# Nothing is pinned: every process shares the machine's cores; (b) does not add cores, so it shows
# what the shared queue costs and how it balances jobs, not more capacity. With the defaults (b) also
# has twice the job slots and encoder threads of (a) (2 running jobs and one thread per core EACH):
# TRANSCODER_ARGS="--transcoder-max-running-jobs 1 --transcoder-workers 1" evens that out.
# PLYR_* variables of the caller (and a PLYR_CONFIG file) are kept away from every plyr-core process.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PLYR_CORE_BIN=${PLYR_CORE_BIN:-$REPO/build/release/plyr-core}
JOBS=${JOBS:-8}
DURATION_S=${DURATION_S:-60}
SOURCE=${SOURCE:-music}
LADDER=${LADDER:-mp3-128,opus-64}
ROUNDS=${ROUNDS:-2}
TRANSCODER_ARGS=${TRANSCODER_ARGS:-}
JOB_TIMEOUT=${JOB_TIMEOUT:-600}
POLL_S=${POLL_S:-0.1}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SAME_INPUT=${SAME_INPUT:-0}
KEEP=${KEEP:-0}
TOOL=$HERE/jobs.py
CMDLINE="JOBS=$JOBS DURATION_S=$DURATION_S SOURCE=$SOURCE LADDER=$LADDER ROUNDS=$ROUNDS${TRANSCODER_ARGS:+ TRANSCODER_ARGS=\"$TRANSCODER_ARGS\"}"
[[ $SAME_INPUT != 1 ]] || CMDLINE+=" SAME_INPUT=1"
[[ $POLL_S == 0.1 ]] || CMDLINE+=" POLL_S=$POLL_S"
[[ $PLYR_CORE_BIN == "$REPO/build/release/plyr-core" ]] || CMDLINE+=" PLYR_CORE_BIN=$PLYR_CORE_BIN"
CMDLINE+=" bench/scaleout/jobs.sh"

die() { echo "jobs.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# --- settings -----------------------------------------------------------------------------------
if ! [[ $JOBS =~ ^[1-9][0-9]*$ ]] || ((JOBS > 50)); then die "JOBS must be 1-50, got '$JOBS'"; fi
if ! [[ $DURATION_S =~ ^[1-9][0-9]*$ ]] || ((DURATION_S > 600)); then die "DURATION_S must be 1-600, got '$DURATION_S'"; fi
[[ $ROUNDS =~ ^[1-9]$ ]] || die "ROUNDS must be 1-9, got '$ROUNDS'"
if ! [[ $JOB_TIMEOUT =~ ^[1-9][0-9]*$ ]] || ((JOB_TIMEOUT > 7200)); then die "JOB_TIMEOUT must be 1-7200 s"; fi
[[ $POLL_S =~ ^(0?\.[0-9]+|[1-5](\.[0-9]+)?)$ ]] || die "POLL_S must be a number of seconds up to 5, got '$POLL_S'"
[[ $SOURCE == music || $SOURCE == sine ]] || die "SOURCE must be music or sine, got '$SOURCE'"
[[ $SAME_INPUT == 0 || $SAME_INPUT == 1 ]] || die "SAME_INPUT must be 0 or 1, got '$SAME_INPUT'"
[[ $LADDER =~ ^[a-z0-9-]+(,[a-z0-9-]+)*$ ]] || die "LADDER must be rendition names separated by commas, got '$LADDER'"
[[ -x $PLYR_CORE_BIN ]] || die "PLYR_CORE_BIN=$PLYR_CORE_BIN is not an executable (scripts/build.sh release)"
for b in initdb pg_ctl createdb postgres; do [[ -x $PG_BIN/$b ]] || die "$PG_BIN/$b is missing (apt-get install postgresql-15, or set PG_BIN)"; done
for c in ffmpeg curl python3 getconf; do command -v "$c" >/dev/null || die "$c is required"; done
AS_ROOT=0
if [[ $(id -u) == 0 ]]; then
  AS_ROOT=1
  id postgres >/dev/null 2>&1 || die "running as root needs the user 'postgres' for the cluster"
  [[ -x /usr/sbin/runuser ]] || die "running as root needs /usr/sbin/runuser"
fi

bin_id() { echo "modified $(date -u -r "$PLYR_CORE_BIN" '+%Y-%m-%d %H:%M:%S UTC'), $(stat -c %s "$PLYR_CORE_BIN") bytes"; }
BIN_ID=$(bin_id)   # a rebuild during the run shows at the end
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$REPO/bench/out/scaleout-jobs-$STAMP
[[ -e $WORK ]] && WORK=$WORK-$$
PG_DIR=$WORK/pgdata
mkdir -p "$WORK/logs" "$WORK/runs"
PLYR_PIDS=()    # plyr-core processes of the current run
HELPER_PID=""   # jobs.py run, while it runs
PG_STARTED=0

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
  echo "jobs.sh: $name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
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
      || echo "jobs.sh: pg_ctl stop failed (see $WORK/logs/pg_ctl.log); the cluster in $PG_DIR may still run" >&2
  fi
  PG_STARTED=0
}
cleanup() {
  local rc=$?
  set +e
  stop_pid "$HELPER_PID" "jobs.py"
  stop_plyr
  stop_pg
  if [[ $KEEP == 1 ]]; then
    echo "jobs.sh: KEEP=1: cluster and data folders kept in $WORK" >&2
  else
    [[ -f $PG_DIR/postmaster.pid ]] || rm -rf "$PG_DIR"
    rm -rf "$WORK/data" "$WORK/input.flac" "$WORK/inputs" "$WORK/admin-token"
  fi
  [[ $rc -eq 0 ]] || echo "jobs.sh: FAILED (exit $rc); logs in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Settings the flags do not name (a PLYR_CONFIG file, PLYR_* variables) stay out of every process.
UNSET=()
for v in $(compgen -e | grep '^PLYR_' || true); do UNSET+=(-u "$v"); done

# start_plyr NAME SERVICE DATA_DIR ARGS...: starts `plyr-core serve SERVICE` in the background and
# waits until it listens; sets SPAWN_PID and SPAWN_PORT (no $(...) here: the child stays ours).
start_plyr() {
  local name=$1 svc=$2 data=$3 i
  shift 3
  local ready=$data/ready.json logf=$WORK/logs/$name.log
  mkdir -p "$data"
  local args=(serve "$svc" --data "$data" --ready-file "$ready" --access-log false --admin-token-file "$TOKEN_FILE" "$@")
  echo "$name: $PLYR_CORE_BIN ${args[*]}" >>"$WORK/logs/cmdlines.txt"
  env "${UNSET[@]}" "$PLYR_CORE_BIN" "${args[@]}" >"$logf" 2>&1 &
  SPAWN_PID=$!
  PLYR_PIDS+=("$SPAWN_PID")
  for ((i = 0; i < 600; i++)); do
    [[ -s $ready ]] && break
    kill -0 "$SPAWN_PID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -s $ready ]] || { tail -20 "$logf" >&2; die "$name (plyr-core serve $svc) did not become ready"; }
  SPAWN_PORT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$ready" "$svc") \
    || die "$name: no \"$svc\" port in $ready"
}

# --- 1. input, token ----------------------------------------------------------------------------
log "work dir: $WORK"
INPUT=$WORK/input.flac
D=$DURATION_S
if [[ $SOURCE == sine ]]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "sine=frequency=440:duration=$D" \
    -ac 2 -ar 44100 -c:a flac -sample_fmt s16 "$INPUT" || die "ffmpeg could not make the input"
else
  # Two voices of chord tones that change every 1-2 s, a slow tremolo, and pink noise under them.
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "aevalsrc=exprs='0.25*sin(2*PI*(220+110*gte(mod(t,2),1))*t)+0.15*sin(2*PI*330*t)*(0.5+0.5*sin(2*PI*0.5*t))|0.25*sin(2*PI*(277+55*gte(mod(t,4),2))*t)+0.15*sin(2*PI*440*t)':s=44100:d=$D" \
    -f lavfi -i "anoisesrc=color=pink:amplitude=0.08:seed=42:r=44100:d=$D" \
    -filter_complex "[1:a]pan=stereo|c0=c0|c1=c0[n];[0:a][n]amix=inputs=2:normalize=0[m]" \
    -map "[m]" -ac 2 -ar 44100 -c:a flac -sample_fmt s16 "$INPUT" || die "ffmpeg could not make the input"
fi
INPUT_KB=$(($(stat -c %s "$INPUT") / 1024))
mkdir -p "$WORK/inputs"
for ((i = 0; i < JOBS; i++)); do
  if [[ $SAME_INPUT == 1 ]]; then
    ln "$INPUT" "$WORK/inputs/job-$i.flac"
  else
    ffmpeg -nostdin -hide_banner -loglevel error -y -i "$INPUT" -map 0 -c copy -metadata "comment=plyr-bench job $i" \
      "$WORK/inputs/job-$i.flac" || die "ffmpeg could not tag a copy of the input"
  fi
done
log "input: $SOURCE, $DURATION_S s, FLAC 44.1 kHz stereo, $INPUT_KB KiB; $([[ $SAME_INPUT == 1 ]] && echo "the same file for every job" || echo "a tagged copy per job")"
TOKEN_FILE=$WORK/admin-token
(umask 077 && python3 -c 'import secrets; print(secrets.token_hex(20))' >"$TOKEN_FILE")
QUERY="owner_did=did:plc:bench&renditions=$LADDER"
# shellcheck disable=SC2206  # word splitting wanted
EXTRA=($TRANSCODER_ARGS)

# --- 2. the throw-away cluster ------------------------------------------------------------------
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

# --- 3. the runs --------------------------------------------------------------------------------
FAILURES=()
run_setup() { # a|b round
  local setup=$1 round=$2
  local tag=r$round-$setup url="" rc=0 spid sport
  local dir=$WORK/data/$tag
  local -a inst=() targs=()
  start_plyr "$tag-streamer" streamer "$dir/streamer" --streamer-listen 127.0.0.1:0
  spid=$SPAWN_PID sport=$SPAWN_PORT
  targs=(--transcoder-listen 127.0.0.1:0 --transcoder-streamer-url "http://127.0.0.1:$sport"
    --transcoder-streamer-token-file "$TOKEN_FILE")
  if [[ $setup == a ]]; then
    start_plyr "$tag-transcoder1" transcoder "$dir/transcoder1" "${targs[@]}" "${EXTRA[@]}"
    inst+=("$SPAWN_PORT:$SPAWN_PID:$WORK/logs/$tag-transcoder1.log")
  else
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "bench_r$round" >>"$WORK/logs/pg_ctl.log" 2>&1 \
      || die "createdb bench_r$round failed (see $WORK/logs/pg_ctl.log)"
    url=postgres://postgres@127.0.0.1:$PG_PORT/bench_r$round
    local n
    for n in 1 2; do
      start_plyr "$tag-transcoder$n" transcoder "$dir/transcoder$n" "${targs[@]}" --database-url "$url" "${EXTRA[@]}"
      inst+=("$SPAWN_PORT:$SPAWN_PID:$WORK/logs/$tag-transcoder$n.log")
    done
  fi
  log "round $round ($setup): $JOBS job(s) to ${#inst[@]} transcoder(s)${url:+ on $url}"
  # In the background and waited for, so that a signal to this script is handled at once.
  python3 "$TOOL" run "$WORK/runs/$tag.json" "$setup" "$round" "$TOKEN_FILE" "$WORK/inputs" "$QUERY" "$JOBS" \
    "$JOB_TIMEOUT" "$POLL_S" "$spid" "$([[ $setup == b ]] && echo "$PG_DIR" || echo -)" "${inst[@]}" &
  HELPER_PID=$!
  wait "$HELPER_PID" || rc=$?
  HELPER_PID=""
  case $rc in
    0) ;;
    1) FAILURES+=("($setup) round $round: jobs did not end \"done\" (see above; logs $WORK/logs/$tag-*.log)") ;;
    *) FAILURES+=("($setup) round $round: the run broke off (exit $rc; logs $WORK/logs/$tag-*.log)") ;;
  esac
  stop_plyr
  [[ $KEEP == 1 ]] || rm -rf "$dir"
}

read -r -a LOAD_BEFORE <<<"$(cut -d' ' -f1-3 /proc/loadavg)"
log "load average ${LOAD_BEFORE[*]}; $ROUNDS round(s) of (a) then (b); ladder $LADDER"
for ((round = 1; round <= ROUNDS; round++)); do
  run_setup a "$round"
  run_setup b "$round"
done
read -r -a LOAD_AFTER <<<"$(cut -d' ' -f1-3 /proc/loadavg)"
stop_pg

# --- 4. table -----------------------------------------------------------------------------------
HEAD_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$REPO" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]] || HEAD_REV+=" (worktree modified)"
NPROC=$(nproc)
{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), HEAD $HEAD_REV, load average ${LOAD_BEFORE[*]} before / ${LOAD_AFTER[*]} after, command: \`$CMDLINE\`"
  echo "plyr-core: $PLYR_CORE_BIN ($BIN_ID)."
  echo "$NPROC vCPU ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), nothing pinned; PostgreSQL $PG_VERSION (throw-away cluster, fsync=on, defaults otherwise); input $DURATION_S s $SOURCE, FLAC $INPUT_KB KiB ($([[ $SAME_INPUT == 1 ]] && echo "the same bytes for every job" || echo "each job its own tagged copy")); ladder $LADDER; $JOBS jobs per run POSTed back to back (in (b) alternately to the two instances); transcoder settings: ${TRANSCODER_ARGS:-the defaults}; $ROUNDS interleaved round(s)."
} >"$WORK/header.txt"
echo
python3 "$TOOL" report "$WORK/runs" "$WORK/header.txt" "$NPROC" "$WORK/results.tsv" | tee "$WORK/table.md"
[[ $(bin_id) == "$BIN_ID" ]] \
  || echo "- WARNING: $PLYR_CORE_BIN was rebuilt during the run: the runs may not all have used the same binary" | tee -a "$WORK/table.md"
if ((${#FAILURES[@]})); then printf -- '- FAILED: %s\n' "${FAILURES[@]}" | tee -a "$WORK/table.md"; fi
echo
echo "results: $WORK/table.md (one row per run: results.tsv; raw: runs/*.json; logs/)"

warns=$(cat "$WORK"/logs/r*-*.log | grep -cE '^[^ ]+ (warn|warning|error|critical) ' || true)
((warns == 0)) || { echo "plyr-core logged $warns warn/error lines; first ones:" >&2; cat "$WORK"/logs/r*-*.log | grep -E '^[^ ]+ (warn|warning|error|critical) ' | head -5 >&2; }
if ((${#FAILURES[@]})); then
  printf 'jobs.sh: FAILURES:\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
