#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/build.sh) and runs each one. Exit 1 when a target finds a crash,
# a sanitizer report or a broken invariant (the input is saved as build/fuzz/crash-*), 77 when clang
# is missing.
#   fuzz/run.sh SECONDS [TARGET...]      explore: each target for SECONDS, growing a corpus kept in
#                                        build/fuzz/corpus/<target> from run to run
#   fuzz/run.sh --runs N [TARGET...]     the test suite's check: N inputs a target from its seeds
#                                        only, with a fixed seed, so a run here repeats exactly on
#                                        any machine (a finding in CI reproduces with this command)
# A target's seed inputs (fuzz/seeds/<target>/), dictionary of tokens (fuzz/<target>.dict) and cap
# on --runs (fuzz/<target>.runs) are used when present.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=time
limit=${1:-10}
if [ "${1:-}" = "--runs" ]; then
  mode=runs
  limit=${2:?fuzz/run.sh: --runs needs a count}
  shift 2
else
  shift || true
fi
command -v "${CXX_FUZZ:-clang++}" >/dev/null || { echo "fuzz/run.sh: clang++ not found: skipped"; exit 77; }
fuzz/build.sh "$@" >/dev/null || exit 2
failed=()
cd build/fuzz
for target in ${*:-$(ls ./*_fuzz | xargs -n1 basename)}; do
  if [ "$mode" = runs ]; then
    corpus=$(mktemp -d)
    runs=$limit
    # A slow target (a whole decode per input) caps its count in fuzz/<target>.runs.
    [ -f "../../fuzz/$target.runs" ] && runs=$(( $(cat "../../fuzz/$target.runs") < limit ? $(cat "../../fuzz/$target.runs") : limit ))
    budget=(-runs="$runs" -seed=1)
  else
    corpus=corpus/$target
    mkdir -p "$corpus"
    budget=(-max_total_time="$limit")
  fi
  extra=()
  [ -f "../../fuzz/$target.dict" ] && extra+=(-dict="../../fuzz/$target.dict")
  seeds=()
  [ -d "../../fuzz/seeds/$target" ] && seeds=("../../fuzz/seeds/$target")
  if ./"$target" "${budget[@]}" "${extra[@]}" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="./crash-$target-" \
      "$corpus" "${seeds[@]}" >"$target.log" 2>&1; then
    echo "fuzz: $target: $(grep -o 'Done [0-9]* runs' "$target.log" | tail -1), no finding"
  else
    echo "fuzz: $target FOUND A PROBLEM (build/fuzz/$target.log):"
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$target.log" | head -5
    failed+=("$target")
  fi
  [ "$mode" = runs ] && rm -rf "$corpus"
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: problems in ${failed[*]}"; exit 1; }
