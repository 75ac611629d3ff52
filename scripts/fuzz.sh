#!/usr/bin/env bash
# Fuzz every file parser with libFuzzer (clang, ASan + UBSan) for a bounded
# time each, print the executions per target, keep crash inputs, and exit
# non-zero if any target crashed, leaked, timed out or ran out of memory.
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_TARGETS     space-separated subset (default: every target)
#   FUZZ_SKIP        targets left out (default "fuzz_profile fuzz_calib fuzz_stats",
#                    the HDF5 readers: libhdf5 1.10 itself crashes, leaks or
#                    over-allocates on corrupt files within seconds, see
#                    docs/reliability.md; run them with FUZZ_TARGETS to hunt)
#   FUZZ_BUILD_DIR   build directory (default build-fuzz)
#   FUZZ_CRASH_DIR   where crash inputs go, one folder per target
#                    (default $FUZZ_BUILD_DIR/crashes)
#   FUZZ_KEEP_GOING  1: fork mode, keep fuzzing a target after a crash so one
#                    run finds several (slower start; for bug hunts, not CI)
# A crash input becomes a regression test: copy it (small) into
# tests/data/fuzz-regressions/<target>/ and test_fuzz_regressions replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
CRASH_DIR=${FUZZ_CRASH_DIR:-$BUILD_DIR/crashes}
start=$(date +%s)

# ---- clang with the libFuzzer runtime and OpenMP (idempotent)
fuzzer_works() {
  local t
  t=$(mktemp -d)
  printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$t/f.c"
  clang -fsanitize=fuzzer,address,undefined "$t/f.c" -o "$t/f" >/dev/null 2>&1
  local rc=$?
  rm -rf "$t"
  return $rc
}
if ! command -v clang >/dev/null || ! fuzzer_works; then
  echo "fuzz: installing clang, its libFuzzer runtime and libomp"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-dev libomp-dev >/dev/null
  fuzzer_works || { echo "fuzz: clang -fsanitize=fuzzer still fails" >&2; exit 1; }
fi
scripts/setup.sh

# ---- build the targets (the engine instrumented for coverage + sanitizers)
mkdir -p "$BUILD_DIR"
log="$BUILD_DIR/build.log"
if ! { CC=clang cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUBKV_FUZZ=ON -DHUBKV_CUDA=OFF && \
       cmake --build "$BUILD_DIR" -j "$(nproc)" --target fuzz_all; } >"$log" 2>&1; then
  cat "$log"
  echo "fuzz: build failed (log: $log)" >&2
  exit 1
fi
list="$BUILD_DIR/fuzz-targets.txt"
bin_dir="$BUILD_DIR/tests/fuzz"

# ---- run each target
# Executions and exec/s from libFuzzer's last status line
# ("#N DONE cov: ... exec/s: E" or, in fork mode, "#N: cov: ... exec/s: E").
final_stats() {
  local line
  # After a crash there is no DONE line: take the last status line instead.
  line=$(grep -E '^#[0-9]+:?[[:space:]]+(DONE|cov:)' "$1" | tail -n 1 || true)
  [ -z "$line" ] && line=$(grep -E '^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+cov:' "$1" | tail -n 1 || true)
  if [ -z "$line" ]; then echo "? ?"; return; fi
  local n e
  n=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$line")
  e=$(grep -oE 'exec/s: [0-9]+' <<<"$line" | awk '{print $2}')
  echo "$n ${e:-?}"
}

failed=()
summary=()
total_execs=0
export HUBKV_TEST_DATA=$PWD/tests/data
# Scratch files of the targets (a crashed run cannot clean up after itself).
base=/tmp; [ -w /dev/shm ] && base=/dev/shm
FZ_SCRATCH=$(mktemp -d "$base/hubkv-fuzz-run-XXXXXX")
export FZ_SCRATCH
trap 'rm -rf "$FZ_SCRATCH"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
while read -r name max_len dict seeds; do
  [ -z "$name" ] && continue
  if [ -n "${FUZZ_TARGETS:-}" ] && ! grep -qw -- "$name" <<<"$FUZZ_TARGETS"; then continue; fi
  if [ -z "${FUZZ_TARGETS:-}" ] && grep -qw -- "$name" <<<"${FUZZ_SKIP-fuzz_profile fuzz_calib fuzz_stats}"; then
    summary+=("$(printf '%-24s %12s %s' "$name" "" "skipped (FUZZ_SKIP)")")
    continue
  fi
  corpus="$BUILD_DIR/corpus/$name"
  crashes="$CRASH_DIR/$name"
  mkdir -p "$corpus" "$crashes"
  args=(-max_total_time="$FUZZ_SECONDS" -max_len="$max_len" -timeout=20 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$crashes/")
  [ "$dict" != "-" ] && args+=(-dict="$dict")
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  flog="$BUILD_DIR/$name.log"
  echo "== $name: ${FUZZ_SECONDS}s, max_len $max_len, seeds $seeds"
  rc=0
  marker="$BUILD_DIR/.start-$name"
  touch "$marker"  # crash inputs of earlier runs stay, but only new ones count
  "$bin_dir/$name" "${args[@]}" "$corpus" "$seeds" >"$flog" 2>&1 || rc=$?
  read -r execs rate < <(final_stats "$flog")
  [[ "$execs" =~ ^[0-9]+$ ]] && total_execs=$((total_execs + execs))
  found=$(find "$crashes" -type f -newer "$marker" | wc -l)
  status=ok
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    status="FAILED (exit $rc, $found input(s) in $crashes)"
    failed+=("$name")
    grep -E 'ERROR: |SUMMARY: |runtime error|fuzz invariant' "$flog" | head -n 5 || true
    echo "   log: $flog"
  fi
  summary+=("$(printf '%-24s %12s execs %8s exec/s  %s' "$name" "$execs" "$rate" "$status")")
done <"$list"

echo
echo "== fuzz summary (${FUZZ_SECONDS}s per target, $(($(date +%s) - start))s wall in all)"
printf '%s\n' "${summary[@]}"
echo "total executions: $total_execs"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; reproduce with $bin_dir/<target> <input>" >&2
  exit 1
fi
