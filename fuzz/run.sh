#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/build.sh) and runs each for SECONDS (default 10), growing a
# corpus in build/fuzz/corpus/<target>. Exit 1 when a target finds a crash, a sanitizer report or a
# broken invariant (the input is saved as build/fuzz/crash-*), 77 when clang is missing.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift || true
command -v "${CXX_FUZZ:-clang++}" >/dev/null || { echo "fuzz/run.sh: clang++ not found: skipped"; exit 77; }
fuzz/build.sh "$@" >/dev/null || exit 2
failed=()
cd build/fuzz
for target in ${*:-$(ls ./*_fuzz | xargs -n1 basename)}; do
  mkdir -p "corpus/$target"
  if ./"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="./crash-$target-" \
      "corpus/$target" >"$target.log" 2>&1; then
    echo "fuzz: $target: $(grep -o 'Done [0-9]* runs' "$target.log" | tail -1), no finding"
  else
    echo "fuzz: $target FOUND A PROBLEM (build/fuzz/$target.log):"
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$target.log" | head -5
    failed+=("$target")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: problems in ${failed[*]}"; exit 1; }
