#!/usr/bin/env bash
# Audio-fingerprint evaluation in one command: builds plyr-core, makes the query sets of seeds 1
# and 2 from the real-music corpus (make_queries.py), then runs evaluate.py: the service's
# recall, wrong-work matches and false positives per length and distortion, a threshold tau
# calibrated on seed 1 and applied to seed 2, latency, and fingerprint speed against fpcalc.
#
#   bench/fingerprint/run.sh                  # full: every distortion, 10 and 30 s, every track
#   bench/fingerprint/run.sh --quick          # a small subset; fails unless the anchor rows hold
#   bench/fingerprint/run.sh [--quick] ARGS   # ARGS go to evaluate.py, e.g.
#                                             #   --serve-args="--fingerprint-max-ber 0.22"
#
# Run time on 2 vCPUs, once the corpus is fetched (bench/corpus/fetch.sh caches it in
# ~/.cache/plyr-core/corpus: seven Debian packages, about 1 GB unpacked) and plyr-core is built:
#   --quick  about 3 min the first time (two seeds x 20 references + 10 negatives, 10-s excerpts,
#            6 distortions: 360 query files), under 1 min once the query files exist
#   full     about 1.5 h the first time: 35-50 min of ffmpeg per seed (6004 query files each),
#            then about 15 min of evaluation (0.5-1 min to register the 132 references, 6-11 min
#            per seed of queries, 0.5-1.5 min of speed comparison; the longer figures on a busy
#            machine);
#            query files already made are not made again, and answers already received are
#            not asked again (evaluate.py resumes while the binary and the references are the same).
#
# Output:
#   queries  ${FP_EVAL_DIR:-bench/out/fingerprint/queries}, with --quick that folder's name
#            followed by "-quick" (a separate reference set: the two never share a folder)
#   results  bench/out/fingerprint/results or results-quick: report.md (also printed),
#            summary.json, seed<N>.jsonl (the answers), service.log
#   bench/out is git-ignored.
#
# Knobs (environment):
#   PLYR_CORE_BIN  the plyr-core binary to evaluate; when set, nothing is built
#                  (default: scripts/build.sh release, then build/release/plyr-core)
#   FP_EVAL_DIR    folder of the query sets (default bench/out/fingerprint/queries)
#   RESULTS_DIR    evaluate.py's results folder (default bench/out/fingerprint/results[-quick])
#   JOBS           parallel ffmpeg jobs of make_queries.py (default: the CPU count)
# Relative paths are taken from the repository's root.
# Exit status: evaluate.py's (1: --quick's anchor assertion failed; 2: a setup error); a
# make_queries.py run that made some but not all query files only warns.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
"$REPO/scripts/install-deps.sh" test  # what the benchmark runs against (nginx, wrk, ffmpeg, fpcalc)
cd "$REPO"

log() { echo "run.sh: $*" >&2; }
die() { echo "run.sh: ERROR: $*" >&2; exit 2; }

quick=0
eval_args=()
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) eval_args+=("$arg") ;;
  esac
done

JOBS=${JOBS:-$(nproc)}
QUERIES=${FP_EVAL_DIR:-bench/out/fingerprint/queries}
QUERIES=${QUERIES%/}
if ((quick)); then
  QUERIES=$QUERIES-quick
  RESULTS=${RESULTS_DIR:-bench/out/fingerprint/results-quick}
  make_args=(--reference-packages wesnoth-1.16-music --negative-packages warzone2100-music
             --max-refs 20 --max-negatives 10 --lengths 10
             --distortions clean,mp3_64k,opus_32k,vol_m10,snr10,tempo_102)
  eval_args=(--assert-anchor --speed-files 3 "${eval_args[@]}")
else
  RESULTS=${RESULTS_DIR:-bench/out/fingerprint/results}
  make_args=(--lengths 10,30)
fi

command -v python3 >/dev/null || die "python3 is required"
started=$SECONDS
timings=()
lap() { timings+=("$1: $((SECONDS - $2)) s"); }

# 1. The binary.
t=$SECONDS
if [[ -z ${PLYR_CORE_BIN:-} ]]; then
  log "building (scripts/build.sh release)"
  scripts/build.sh release
  PLYR_CORE_BIN=$REPO/build/release/plyr-core
  lap build "$t"
fi
[[ -x $PLYR_CORE_BIN ]] || die "$PLYR_CORE_BIN is not an executable file"

# 2. The query sets of seeds 1 and 2.
for seed in 1 2; do
  t=$SECONDS
  log "queries of seed $seed into $QUERIES"
  rc=0
  python3 "$HERE/make_queries.py" --out "$QUERIES" --seed "$seed" --jobs "$JOBS" "${make_args[@]}" || rc=$?
  case $rc in
    0) ;;
    1) log "WARNING: some query files of seed $seed could not be made (see above); evaluating the others" ;;
    *) die "make_queries.py failed for seed $seed (exit $rc)" ;;
  esac
  lap "queries of seed $seed" "$t"
done

# 3. The evaluation.
t=$SECONDS
rc=0
python3 "$HERE/evaluate.py" --queries "$QUERIES" --calibrate-seed 1 --report-seed 2 \
  --bin "$PLYR_CORE_BIN" --out "$RESULTS" "${eval_args[@]}" || rc=$?
lap evaluation "$t"

log "wall time: ${timings[*]/%/;} total $((SECONDS - started)) s"
log "report: $RESULTS/report.md"
exit "$rc"
