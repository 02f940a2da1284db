#!/usr/bin/env bash
# Transcode benchmark: one real 3-4 minute track, as FLAC, WAV and MP3, encoded to the rendition
# ladder three ways in the same run, with every output of ours checked.
#
#   bench/transcode/run.sh            # ~6 min with the defaults on 2 vCPUs
#
# It builds nothing: it expects build/release/plyr-core (scripts/build.sh release); without it, or
# without its `transcode` subcommand / `transcoder` service, those parts print "skipped: ..."
# and the ffmpeg anchors still run.
#
# The three ways, per input, interleaved round by round (a, b, c, a, b, c, ...):
#   (a) the ffmpeg CLI once per rendition, every rendition at once (N processes in parallel):
#       how the old Rust service drove ffmpeg, one process per target
#   (b) one ffmpeg CLI process with every rendition as an output (ffmpeg 5.1 encodes all outputs
#       on one thread: bench figures in the design notes, section 4.5)
#   (c) ours: plyr-core transcode INPUT --out DIR --renditions LADDER [--workers N], which prints
#       one JSON object (input, facts, renditions[] with encode_cpu_s, wall_s, cpu_s). It also
#       measures loudness and peaks in the same pass; (a) and (b) do not.
# (a) and (b) use the encoders and settings the engine uses:
#   mp3-K   -c:a libmp3lame -b:a Kk -ar 44100 -ac 2                              .mp3
#   aac-K   -c:a aac -b:a Kk -ar 44100 -ac 2 -movflags +faststart -f ipod        .m4a
#   opus-K  -c:a libopus -b:a Kk -ar 48000 -ac 2 -f ogg                          .opus
#   wav     -c:a pcm_s16le -f wav (source rate and channels)                     .wav
# each with -nostdin -hide_banner -loglevel error -vn -y and -map 0:a:0.
#
# Figures, per input (medians of ROUNDS): wall s, CPU s (user+sys of the process tree, from
# /usr/bin/time, or bash's `times` without it) and x realtime (track s / wall s) of (a), (b), (c);
# a/c and b/c of the walls (targets: >= 1.15 and >= 1.75); the physical limit of this machine,
# our encoders' CPU alone (sum of encode_cpu_s) / nproc, and how far our wall is above it
# (target: within 10 %). Beside each run, the CPU other processes took meanwhile (/proc/stat busy
# time minus the run's own CPU): on a shared machine this says which rounds were slowed.
# Checks, round 1 of (c) (and of (a) with CHECK_FFMPEG=1, to show the checker passes ffmpeg's own
# files): ffprobe's duration (minus the start_time it reports, the MP3 encoder delay) and the
# duration of a full decode within 50 ms of the input's decoded duration; for the mp3 renditions
# (CBR) size*8/duration within 5 % of the nominal bitrate; the full decode
# (`ffmpeg -v error -i OUT`) prints no error; the JSON's path, size and duration_ms agree.
# Then, queued jobs: `plyr-core serve streamer transcoder` in one process on loopback (the
# transcoder hands every rendition to the streamer beside it, as in production; alone it would try
# 127.0.0.1:8410), JOBS jobs POSTed at once (the FLAC input as the body,
# ?owner_did=did:plc:bench&renditions=LADDER), polled until "done" or "failed": jobs/minute from
# the first POST to the last job's end, and the machine's CPU utilisation over that window
# (/proc/stat), which shows whether the worker pool stays full.
#
# Knobs (environment):
#   TRACK          1-3 track names from the corpus manifest ("northerners.ogg" or "northerners"),
#                  or paths of audio files, space-separated  (default northerners.ogg: 207.2 s of
#                  orchestral music from wesnoth-1.16-music, the closest to 208 s there)
#   CORPUS_PACKAGES Debian packages bench/corpus/fetch.sh fetches for TRACK (default wesnoth-1.16-music)
#   CORPUS_DIR     the corpus cache (default: fetch.sh's, ${XDG_CACHE_HOME:-$HOME/.cache}/plyr-core/corpus)
#   INPUTS         which inputs to make and time: flac wav mp3                 (default all three)
#   LADDER         renditions, comma-separated             (default mp3-320,mp3-128,aac-256,opus-128,opus-64)
#   ROUNDS         rounds of (a), (b), (c) per input; medians are reported (default 3, at most 9)
#   WORKERS        --workers for plyr-core transcode       (default: not passed, the engine's default)
#   JOBS           queued jobs for the service run, 0 to skip it                (default 6, at most 50)
#   JOB_TIMEOUT    seconds the queued-jobs run may take                          (default 600)
#   JOB_SERVICES   services of that `plyr-core serve`          (default "streamer transcoder")
#   JOB_EXTRA_ARGS extra `plyr-core serve` arguments (word-split), e.g. "--transcoder-max-running-jobs 3"
#   CMD_TIMEOUT    seconds any single timed command may take                    (default 300)
#   CHECK_FFMPEG   1: run the output checks on (a)'s round-1 files too           (default 1)
#   RETRY_BUSY     how many times a round (a, b, c of one input) is run again when other
#                  processes took more than max(0.5 CPU-s, 5 %) beside one of its runs; the busy
#                  rows stay in results.tsv marked "busy" and out of the medians   (default 1, at most 3)
#   PLYR_CORE_BIN  (default: $REPO/build/release/plyr-core)
#   RESULTS_DIR    where results.md, results.tsv, checks.tsv and the JSON go
#                  (default: $REPO/bench/out/transcode-<UTC timestamp>, git-ignored)
#   CPU_TIMER=times  take CPU times from bash's `times` even where /usr/bin/time exists
#   KEEP=1         keep the temporary folder (inputs and encoded files); deleted by default
# Temporary files live in a folder under ${TMPDIR:-/tmp}. Everything listens on 127.0.0.1 only.
# Exit status: non-zero if a run or a check of (c) failed (skipped parts do not count).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
"$REPO/scripts/install-deps.sh" test  # what the benchmark runs against (nginx, wrk, ffmpeg, fpcalc)

TRACK=${TRACK:-northerners.ogg}
CORPUS_PACKAGES=${CORPUS_PACKAGES:-wesnoth-1.16-music}
CORPUS_DIR=${CORPUS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/plyr-core/corpus}
INPUTS=${INPUTS:-flac wav mp3}
LADDER=${LADDER:-mp3-320,mp3-128,aac-256,opus-128,opus-64}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-}
JOBS=${JOBS:-6}
JOB_TIMEOUT=${JOB_TIMEOUT:-600}
JOB_SERVICES=${JOB_SERVICES:-streamer transcoder}
JOB_EXTRA_ARGS=${JOB_EXTRA_ARGS:-}
CMD_TIMEOUT=${CMD_TIMEOUT:-300}
CHECK_FFMPEG=${CHECK_FFMPEG:-1}
RETRY_BUSY=${RETRY_BUSY:-1}
PLYR_CORE_BIN=${PLYR_CORE_BIN:-$REPO/build/release/plyr-core}
KEEP=${KEEP:-0}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/out/transcode-$STAMP}
TOOL=$HERE/tool.py
FF_COMMON=(-nostdin -hide_banner -loglevel error -y)

die() { echo "run.sh: ERROR: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# --- settings -----------------------------------------------------------------------------------
[[ $ROUNDS =~ ^[1-9]$ ]] || die "ROUNDS must be 1-9, got '$ROUNDS'"
if ! [[ $JOBS =~ ^[0-9]+$ ]] || ((JOBS > 50)); then die "JOBS must be 0-50, got '$JOBS'"; fi
if ! [[ $JOB_TIMEOUT =~ ^[1-9][0-9]*$ ]] || ((JOB_TIMEOUT > 3600)); then die "JOB_TIMEOUT must be 1-3600 s"; fi
if ! [[ $CMD_TIMEOUT =~ ^[1-9][0-9]*$ ]] || ((CMD_TIMEOUT > 1800)); then die "CMD_TIMEOUT must be 1-1800 s"; fi
[[ -z $WORKERS || $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer"
[[ $RETRY_BUSY =~ ^[0-3]$ ]] || die "RETRY_BUSY must be 0-3"
read -r -a TRACKS <<<"$TRACK"
((${#TRACKS[@]} >= 1 && ${#TRACKS[@]} <= 3)) || die "TRACK names 1-3 tracks, got ${#TRACKS[@]}"
read -r -a INPUT_KINDS <<<"$INPUTS"
((${#INPUT_KINDS[@]} >= 1)) || die "INPUTS is empty"
for k in "${INPUT_KINDS[@]}"; do [[ $k == flac || $k == wav || $k == mp3 ]] || die "unknown input kind '$k' (flac wav mp3)"; done

# Rendition name -> ffmpeg output arguments (without the path) and extension.
declare -A R_ARGS=() R_EXT=()
IFS=, read -r -a RENDITIONS <<<"$LADDER"
((${#RENDITIONS[@]} >= 1 && ${#RENDITIONS[@]} <= 8)) || die "LADDER names 1-8 renditions"
for r in "${RENDITIONS[@]}"; do
  [[ -z ${R_EXT[$r]:-} ]] || die "rendition $r twice in LADDER"
  case $r in
    mp3-[0-9]*) R_ARGS[$r]="-c:a libmp3lame -b:a ${r#mp3-}k -ar 44100 -ac 2" R_EXT[$r]=mp3 ;;
    aac-[0-9]*) R_ARGS[$r]="-c:a aac -b:a ${r#aac-}k -ar 44100 -ac 2 -movflags +faststart -f ipod" R_EXT[$r]=m4a ;;
    opus-[0-9]*) R_ARGS[$r]="-c:a libopus -b:a ${r#opus-}k -ar 48000 -ac 2 -f ogg" R_EXT[$r]=opus ;;
    wav) R_ARGS[$r]="-c:a pcm_s16le -f wav" R_EXT[$r]=wav ;;
    *) die "unknown rendition '$r' in LADDER (mp3-K, aac-K, opus-K, wav)" ;;
  esac
  [[ $r == wav || ${r#*-} =~ ^[1-9][0-9]{0,2}$ ]] || die "bad bitrate in rendition '$r'"
done
NOUT=${#RENDITIONS[@]}

for c in ffmpeg ffprobe python3 timeout awk; do command -v "$c" >/dev/null || die "$c is required (apt-get install ffmpeg python3)"; done
TIME_BIN=""
if [[ ${CPU_TIMER:-} == times ]]; then
  :
elif [[ -x /usr/bin/time ]]; then
  TIME_BIN=/usr/bin/time
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  log "installing the Debian package 'time' for /usr/bin/time"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2 && TIME_BIN=/usr/bin/time
fi
[[ -n $TIME_BIN ]] || log "no /usr/bin/time: CPU times come from bash's \`times\`"
NPROC=$(nproc)
CLK_TCK=$(getconf CLK_TCK)

# --- temp folder, cleanup ------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/plyr-transcode-bench.XXXXXX")
mkdir -p "$RESULTS_DIR"
RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
BG_PIDS=()      # timed wrappers running in the background
SERVER_PID=""

stop_tree() { # pid: a timed wrapper we started; its descendants (time, timeout, ffmpeg) first
  local pid=$1 child
  kill -0 "$pid" 2>/dev/null || return 0
  for child in $(pgrep -P "$pid" 2>/dev/null); do stop_tree "$child"; done
  kill -TERM "$pid" 2>/dev/null || true
}

stop_server() {
  local i
  [[ -n $SERVER_PID ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "plyr-core serve ignored SIGTERM for 15 s; SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

cleanup() {
  local rc=$? p
  set +e
  for p in "${BG_PIDS[@]}"; do stop_tree "$p"; done
  stop_server
  wait 2>/dev/null
  if [[ $KEEP == 1 ]]; then
    echo "run.sh: temporary files kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  [[ $rc -eq 0 ]] || echo "run.sh: FAILED (exit $rc); logs in $RESULTS_DIR" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- timing -------------------------------------------------------------------------------------
# timed TIMEFILE cmd...: runs cmd (bounded by CMD_TIMEOUT), writes "user sys" CPU seconds of its
# process tree to TIMEFILE; returns cmd's exit status.
secs() { # "1m2.345s" -> 62.345
  local t=$1
  [[ $t =~ ^([0-9]+)m([0-9.]+)s$ ]] || { echo 0; return; }
  awk -v m="${BASH_REMATCH[1]}" -v s="${BASH_REMATCH[2]}" 'BEGIN { printf "%.3f", m * 60 + s }'
}
timed() {
  local tf=$1
  shift
  if [[ -n $TIME_BIN ]]; then
    "$TIME_BIN" -f '%U %S' -o "$tf" timeout --foreground -k 5 "$CMD_TIMEOUT" "$@"
  else
    (
      rc=0
      timeout --foreground -k 5 "$CMD_TIMEOUT" "$@" || rc=$?
      times >"$tf.raw"   # no pipe or $(...): a forked `times` reports no children
      read -r u s < <(tail -1 "$tf.raw")
      echo "$(secs "$u") $(secs "$s")" >"$tf"
      exit "$rc"
    )
  fi
}
# fg_timed TIMEFILE cmd...: timed, waited for with `wait` so that a signal to this script is
# handled at once, not when the command ends. (--foreground above: a Ctrl-C reaches the command.)
fg_timed() {
  local p rc=0
  timed "$@" &
  p=$!
  BG_PIDS+=("$p")
  wait "$p" || rc=$?
  BG_PIDS=()
  return "$rc"
}
cpu_of() { # TIMEFILE... -> summed user+sys seconds
  local f
  for f in "$@"; do tail -1 "$f"; done | awk '{ t += $1 + $2 } END { printf "%.3f", t }'
}
now() { echo "$EPOCHREALTIME"; }
# Machine-wide CPU from /proc/stat: "busy steal" in clock ticks (busy = user nice system irq softirq).
# Busy time during a run minus the run's own CPU is what other processes took meanwhile.
stat_ticks() { awk 'NR == 1 { print $2 + $3 + $4 + $7 + $8, $9; exit }' /proc/stat; }
others() { # "busy steal" before, after, our CPU s -> "other_cpu_s<TAB>steal_s"
  awk -v a="$1" -v b="$2" -v cpu="$3" -v hz="$CLK_TCK" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    printf "%.2f\t%.2f", (y[1] - x[1]) / hz - cpu, (y[2] - x[2]) / hz }'
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- corpus and inputs --------------------------------------------------------------------------
SRC_PATHS=() SRC_NAMES=() SRC_INFO=()
need_corpus=0
for t in "${TRACKS[@]}"; do [[ -f $t ]] || need_corpus=1; done
if ((need_corpus)); then
  log "corpus: PACKAGES=\"$CORPUS_PACKAGES\" bench/corpus/fetch.sh $CORPUS_DIR"
  PACKAGES=$CORPUS_PACKAGES "$REPO/bench/corpus/fetch.sh" "$CORPUS_DIR" >"$WORK/manifest.tsv" 2>"$WORK/fetch.log" \
    || { cat "$WORK/fetch.log" >&2; die "bench/corpus/fetch.sh failed"; }
fi
for t in "${TRACKS[@]}"; do
  if [[ -f $t ]]; then
    path=$(cd "$(dirname "$t")" && pwd)/$(basename "$t")
    info="file $path"
  else
    line=$(python3 "$TOOL" pick "$WORK/manifest.tsv" "$t") || exit 1
    path=${line#*$'\t'}
    pkgver=$(awk -F'\t' -v p="$path" '$8 == p { print $2 " " $3 }' "$WORK/manifest.tsv")
    info="$(basename "$path") from $pkgver"
  fi
  dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$path") || die "ffprobe cannot read $path"
  awk -v d="$dur" 'BEGIN { exit !(d > 0 && d <= 600) }' || die "$path: $dur s; tracks up to 600 s only"
  awk -v d="$dur" 'BEGIN { exit !(d < 180 || d > 240) }' && log "WARNING: $path is $dur s, not 3-4 min"
  name=$(basename "$path")
  name=${name%.*}
  for n in "${SRC_NAMES[@]}"; do [[ $n != "$name" ]] || die "two tracks named $name"; done
  SRC_PATHS+=("$path") SRC_NAMES+=("$name") SRC_INFO+=("$info, $(printf '%.1f' "$dur") s")
  log "track: $info ($dur s)"
done

mkdir -p "$WORK/in" "$WORK/out" "$WORK/t" "$RESULTS_DIR/c-json" "$RESULTS_DIR/logs"
LABELS=()
declare -A IN_PATH=() IN_REF=()
for i in "${!SRC_PATHS[@]}"; do
  for k in "${INPUT_KINDS[@]}"; do
    label=${SRC_NAMES[$i]}.$k
    out=$WORK/in/$label
    case $k in
      flac) args=(-c:a flac -sample_fmt s16) ;;
      wav) args=(-c:a pcm_s16le) ;;
      mp3) args=(-c:a libmp3lame -b:a 320k) ;;
    esac
    ffmpeg "${FF_COMMON[@]}" -i "${SRC_PATHS[$i]}" -map 0:a:0 -vn "${args[@]}" -ar 44100 -ac 2 "$out" \
      || die "making $label failed"
    ref=$(python3 "$TOOL" decoded-duration "$out") || die "decoding $label failed"
    LABELS+=("$label") IN_PATH[$label]=$out IN_REF[$label]=$ref
    log "input $label: $(($(stat -c %s "$out") / 1024)) KiB, $ref s decoded"
  done
done

# --- the three ways -----------------------------------------------------------------------------
# shellcheck disable=SC2206  # R_ARGS entries are word lists
ffmpeg_output_args() { # rendition dir -> words appended to OUT_ARGS
  local r=$1 dir=$2
  OUT_ARGS+=(-map 0:a:0 -vn ${R_ARGS[$r]} "$dir/$r.${R_EXT[$r]}")
}

C_STATUS=ok C_NOTE=""
if [[ ! -x $PLYR_CORE_BIN ]]; then
  C_STATUS=skipped C_NOTE="$PLYR_CORE_BIN is not built (scripts/build.sh release)"
elif ! "$PLYR_CORE_BIN" transcode --help >/dev/null 2>"$WORK/transcode-help.err"; then
  C_STATUS=skipped C_NOTE="plyr-core has no 'transcode' subcommand yet ($(head -c 200 "$WORK/transcode-help.err" | head -1))"
fi
[[ $C_STATUS == ok ]] || log "(c) skipped: $C_NOTE"
C_ARGS=(--renditions "$LADDER")
[[ -z $WORKERS ]] || C_ARGS+=(--workers "$WORKERS")

RESULTS=$RESULTS_DIR/results.tsv
CHECKS=$RESULTS_DIR/checks.tsv
rm -f "$CHECKS"
printf 'input\tround\tvariant\ttrack_s\twall_s\tcpu_s\tstatus\tnote\tjson\tnout\tother_cpu_s\tsteal_s\n' >"$RESULTS"
FAILURES=()

run_a() { # label round dir
  local label=$1 round=$2 dir=$3 r t0 t1 s0 s1 cpu rc=0 pid
  local -a pids=() tfs=()
  mkdir -p "$dir"
  s0=$(stat_ticks)
  t0=$(now)
  for r in "${RENDITIONS[@]}"; do
    OUT_ARGS=()
    ffmpeg_output_args "$r" "$dir"
    timed "$WORK/t/a-$r" ffmpeg "${FF_COMMON[@]}" -i "${IN_PATH[$label]}" "${OUT_ARGS[@]}" 2>"$RESULTS_DIR/logs/a-$label-$r.log" &
    pids+=($!) tfs+=("$WORK/t/a-$r")
    BG_PIDS+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
  t1=$(now)
  s1=$(stat_ticks)
  BG_PIDS=()
  ((rc == 0)) || { FAILURES+=("(a) $label round $round: an ffmpeg exited $rc"); return 0; }
  cpu=$(cpu_of "${tfs[@]}")
  printf '%s\t%s\ta\t%s\t%s\t%s\tok\t-\t-\t%s\t%s\n' "$label" "$round" "${IN_REF[$label]}" "$(elapsed "$t0" "$t1")" \
    "$cpu" "$NOUT" "$(others "$s0" "$s1" "$cpu")" >>"$RESULTS"
}

run_b() {
  local label=$1 round=$2 dir=$3 r t0 t1 s0 s1 cpu rc=0
  mkdir -p "$dir"
  OUT_ARGS=()
  for r in "${RENDITIONS[@]}"; do ffmpeg_output_args "$r" "$dir"; done
  s0=$(stat_ticks)
  t0=$(now)
  fg_timed "$WORK/t/b" ffmpeg "${FF_COMMON[@]}" -i "${IN_PATH[$label]}" "${OUT_ARGS[@]}" 2>"$RESULTS_DIR/logs/b-$label.log" || rc=$?
  t1=$(now)
  s1=$(stat_ticks)
  ((rc == 0)) || { FAILURES+=("(b) $label round $round: ffmpeg exited $rc"); return 0; }
  cpu=$(cpu_of "$WORK/t/b")
  printf '%s\t%s\tb\t%s\t%s\t%s\tok\t-\t-\t%s\t%s\n' "$label" "$round" "${IN_REF[$label]}" "$(elapsed "$t0" "$t1")" \
    "$cpu" "$NOUT" "$(others "$s0" "$s1" "$cpu")" >>"$RESULTS"
}

run_c() {
  local label=$1 round=$2 dir=$3 t0 t1 s0 s1 cpu rc=0 json
  json=$RESULTS_DIR/c-json/$label-r$round.json
  if [[ $C_STATUS != ok ]]; then
    printf '%s\t%s\tc\t%s\tnan\tnan\tskipped\t%s\t-\t%s\tnan\tnan\n' "$label" "$round" "${IN_REF[$label]}" "$C_NOTE" "$NOUT" >>"$RESULTS"
    return 0
  fi
  mkdir -p "$dir"
  s0=$(stat_ticks)
  t0=$(now)
  fg_timed "$WORK/t/c" "$PLYR_CORE_BIN" transcode "${IN_PATH[$label]}" --out "$dir" "${C_ARGS[@]}" \
    >"$json" 2>"$RESULTS_DIR/logs/c-$label-r$round.log" || rc=$?
  t1=$(now)
  s1=$(stat_ticks)
  if ((rc != 0)) || ! python3 -c 'import json, sys; json.load(open(sys.argv[1]))["renditions"]' "$json" 2>/dev/null; then
    FAILURES+=("(c) $label round $round: exit $rc, output not the JSON of the contract (log: $RESULTS_DIR/logs/c-$label-r$round.log)")
    printf '%s\t%s\tc\t%s\tnan\tnan\tfailed\texit %s\t%s\t%s\tnan\tnan\n' "$label" "$round" "${IN_REF[$label]}" "$rc" "$json" "$NOUT" >>"$RESULTS"
    return 0
  fi
  cpu=$(cpu_of "$WORK/t/c")
  printf '%s\t%s\tc\t%s\t%s\t%s\tok\t-\t%s\t%s\t%s\n' "$label" "$round" "${IN_REF[$label]}" "$(elapsed "$t0" "$t1")" \
    "$cpu" "$json" "$NOUT" "$(others "$s0" "$s1" "$cpu")" >>"$RESULTS"
}

# Warm-up, untimed: load ffmpeg's libraries and, if present, run ours once on a 10 s excerpt.
log "warm-up"
first=${LABELS[0]}
ffmpeg "${FF_COMMON[@]}" -i "${IN_PATH[$first]}" -t 10 -map 0:a:0 -c:a flac "$WORK/warm.flac"
OUT_ARGS=()
for r in "${RENDITIONS[@]}"; do ffmpeg_output_args "$r" "$WORK/warm-a"; done
mkdir -p "$WORK/warm-a" "$WORK/warm-c"
ffmpeg "${FF_COMMON[@]}" -i "$WORK/warm.flac" "${OUT_ARGS[@]}"
if [[ $C_STATUS == ok ]]; then
  fg_timed "$WORK/t/warm" "$PLYR_CORE_BIN" transcode "$WORK/warm.flac" --out "$WORK/warm-c" "${C_ARGS[@]}" \
    >"$WORK/warm-c.json" 2>"$RESULTS_DIR/logs/c-warmup.log" || log "WARNING: the warm-up run of plyr-core transcode failed (log: $RESULTS_DIR/logs/c-warmup.log)"
fi
rm -rf "$WORK/warm-a" "$WORK/warm-c" "$WORK/warm.flac"

read -r LOAD_BEFORE _ </proc/loadavg
if awk -v l="$LOAD_BEFORE" -v n="$NPROC" 'BEGIN { exit !(l > 0.25 * n) }'; then
  log "WARNING: load average $LOAD_BEFORE before the timed runs: other jobs compete for the $NPROC CPUs; expect noisy figures"
fi
log "timed runs: ${#LABELS[@]} inputs x $ROUNDS rounds x (a) $NOUT ffmpeg processes, (b) 1 ffmpeg with $NOUT outputs, (c) plyr-core transcode"
# Marks the ok rows of (label, round) "busy" if any of them shared the machine with more than
# max(0.5 CPU-s, 5 % of its own CPU) of other work; returns 0 if it marked them.
mark_busy() { # label round
  local tmp=$RESULTS.tmp
  awk -F'\t' -v l="$1" -v r="$2" '$1 == l && $2 == r && $7 == "ok" && $11 + 0 > 0.5 && $11 + 0 > 0.05 * $6 { hit = 1 }
    END { exit !hit }' "$RESULTS" || return 1
  awk -F'\t' -v OFS='\t' -v l="$1" -v r="$2" '$1 == l && $2 == r && $7 == "ok" { $7 = "busy" }
    !($1 == l && $2 == r && $7 == "skipped") { print }' "$RESULTS" >"$tmp"
  mv "$tmp" "$RESULTS"
}
for ((round = 1; round <= ROUNDS; round++)); do
  for label in "${LABELS[@]}"; do
    base=$WORK/out/$label-r$round
    for ((try = 0; ; try++)); do
      rm -rf "$base-a" "$base-b" "$base-c"
      run_a "$label" "$round" "$base-a"
      run_b "$label" "$round" "$base-b"
      run_c "$label" "$round" "$base-c"
      log "round $round $label: $(awk -F'\t' -v l="$label" -v r="$round" '$1 == l && $2 == r && $7 != "busy" {
        if ($7 == "ok") printf "(%s) %s s wall %s s CPU (others %s)  ", $3, $5, $6, $11; else printf "(%s) %s  ", $3, $7 }' "$RESULTS")"
      ((try < RETRY_BUSY)) || break
      mark_busy "$label" "$round" || break
      log "  other processes took CPU during this round: running it again (RETRY_BUSY=$RETRY_BUSY)"
    done
    if ((round == 1)); then
      if [[ $CHECK_FFMPEG == 1 && -d $base-a ]]; then
        python3 "$TOOL" check "$label" a "${IN_REF[$label]}" "$base-a" "$LADDER" "$CHECKS" || true
      fi
      if [[ $C_STATUS == ok && -d $base-c ]]; then
        python3 "$TOOL" check "$label" c "${IN_REF[$label]}" "$base-c" "$LADDER" "$CHECKS" \
          "$RESULTS_DIR/c-json/$label-r1.json" || { FAILURES+=("output checks of (c) on $label"); }
      fi
    fi
    rm -rf "$base-a" "$base-b" "$base-c"
  done
done

# --- queued jobs against the service -------------------------------------------------------------
JOBS_JSON=$RESULTS_DIR/jobs.json
rm -f "$JOBS_JSON"
jobs_skipped() {
  log "queued jobs: skipped: $1"
  python3 -c 'import json, sys; json.dump({"jobs": int(sys.argv[2]), "skipped": sys.argv[1]}, open(sys.argv[3], "w"))' \
    "$1" "$JOBS" "$JOBS_JSON"
}
if ((JOBS == 0)); then
  jobs_skipped "JOBS=0"
elif [[ ! -x $PLYR_CORE_BIN ]]; then
  jobs_skipped "$PLYR_CORE_BIN is not built"
else
  DATA=$WORK/data
  READY=$WORK/ready.json
  SERVER_LOG=$RESULTS_DIR/logs/serve.log
  mkdir -p "$DATA"
  read -r -a svc <<<"$JOB_SERVICES"
  SERVE_ARGS=(serve "${svc[@]}" --data "$DATA" --ready-file "$READY" --access-log false --transcoder-listen 127.0.0.1:0)
  [[ " $JOB_SERVICES " == *" streamer "* ]] && SERVE_ARGS+=(--streamer-listen 127.0.0.1:0)
  [[ -z $WORKERS ]] || SERVE_ARGS+=(--transcoder-workers "$WORKERS")
  # shellcheck disable=SC2206  # word splitting wanted
  SERVE_ARGS+=($JOB_EXTRA_ARGS)
  echo "$PLYR_CORE_BIN ${SERVE_ARGS[*]}" >"$RESULTS_DIR/logs/serve.cmdline"
  # PLYR_CONFIG (a TOML file) would change settings the flags do not name: ignore it here.
  env -u PLYR_CONFIG "$PLYR_CORE_BIN" "${SERVE_ARGS[@]}" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  for ((i = 0; i < 200; i++)); do [[ -s $READY ]] && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  PORT=""
  [[ -s $READY ]] && PORT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("transcoder", ""))' "$READY" 2>/dev/null || true)
  if [[ -z $PORT ]]; then
    reason=$(grep -m1 -iE "not a service|not expected|unknown|unrecognized|transcoder" "$SERVER_LOG" | head -c 200 || true)
    if ! kill -0 "$SERVER_PID" 2>/dev/null && [[ -n $reason ]]; then
      jobs_skipped "plyr-core has no transcoder service yet ($reason)"
    elif [[ -s $READY ]]; then
      jobs_skipped "the ready file has no \"transcoder\" port: $(head -c 200 "$READY")"
    else
      tail -5 "$SERVER_LOG" >&2
      FAILURES+=("plyr-core serve transcoder did not become ready (log: $SERVER_LOG)")
    fi
    stop_server
  else
    [[ -s $DATA/admin-token ]] || die "no admin token at $DATA/admin-token"
    first_flac=""
    for l in "${LABELS[@]}"; do [[ $l == *.flac ]] && { first_flac=${IN_PATH[$l]}; break; }; done
    [[ -n $first_flac ]] || first_flac=${IN_PATH[${LABELS[0]}]}
    log "queued jobs: $JOBS x POST /v1/jobs ($(basename "$first_flac")) to 127.0.0.1:$PORT, polling until done"
    python3 "$TOOL" jobs "$PORT" "$DATA/admin-token" "$first_flac" "owner_did=did:plc:bench&renditions=$LADDER" \
      "$JOBS" "$JOB_TIMEOUT" "$SERVER_PID" "$JOBS_JSON" \
      || FAILURES+=("queued jobs: see above (server log: $SERVER_LOG)")
    stop_server
  fi
fi

# --- report -------------------------------------------------------------------------------------
read -r LOAD_AFTER _ </proc/loadavg
HEAD=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=""
[[ -n $(git -C "$REPO" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null) ]] && DIRTY=" (+ uncommitted changes)"
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
FFV=$(ffmpeg -version | awk 'NR == 1 { print $3 }')
knobs=""
for v in TRACK INPUTS LADDER ROUNDS WORKERS JOBS JOB_SERVICES JOB_EXTRA_ARGS RETRY_BUSY; do
  case $v in
    TRACK) def=northerners.ogg ;; INPUTS) def="flac wav mp3" ;; LADDER) def=mp3-320,mp3-128,aac-256,opus-128,opus-64 ;;
    ROUNDS) def=3 ;; WORKERS) def="" ;; JOBS) def=6 ;; JOB_SERVICES) def="streamer transcoder" ;; JOB_EXTRA_ARGS) def="" ;; RETRY_BUSY) def=1 ;;
  esac
  [[ ${!v} == "$def" ]] || knobs+="$v=\"${!v}\" "
done
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), HEAD $HEAD$DIRTY, $NPROC CPUs ($CPU_MODEL), kernel $(uname -r), ffmpeg $FFV; load average $LOAD_BEFORE before, $LOAD_AFTER after."
  echo
  echo '```sh'
  echo "${knobs}bench/transcode/run.sh"
  echo '```'
  echo
  echo "Track: $(IFS=';'; echo "${SRC_INFO[*]}"); inputs made from it with the ffmpeg CLI, 44.1 kHz stereo: ${INPUTS// /, } (mp3 at 320k)."
  echo "Ladder $LADDER; medians of $ROUNDS rounds; wall / CPU (user+sys of the process tree) / × realtime (track s ÷ wall)."
  echo "Limit = our encoders' CPU (sum of encode_cpu_s) ÷ $NPROC CPUs. (c) also measures loudness and peaks; (a) and (b) do not."
  grep -q '"skipped"' "$JOBS_JSON" 2>/dev/null || echo "Queued jobs: \`plyr-core serve $JOB_SERVICES${JOB_EXTRA_ARGS:+ $JOB_EXTRA_ARGS}\`, $JOBS jobs POSTed at once with the FLAC input, the same ladder; the window runs from the first POST to the last job's end and includes the uploads and the handoff of every rendition to the streamer."
} >"$RESULTS_DIR/header.md"
echo
python3 "$TOOL" report "$RESULTS" "$CHECKS" "$JOBS_JSON" "$RESULTS_DIR/results.md" "$RESULTS_DIR/header.md" "$NPROC"
echo
echo "results: $RESULTS_DIR/results.md (raw: results.tsv, checks.tsv, jobs.json, c-json/, logs/)"
if ((${#FAILURES[@]})); then
  printf 'run.sh: FAILURES:\n' >&2
  printf '  %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
