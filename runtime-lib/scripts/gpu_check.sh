#!/usr/bin/env bash
# GPU-machine check of libhubkv: build (standalone, CUDA on), run the runtime
# tests, compute-sanitizer memcheck + racecheck on the GPU test, then the
# benchmark against PyTorch. Run from anywhere. Every step runs even when an
# earlier one fails; a summary at the end lists each step's result, and the
# exit status is non-zero if any step failed.
# BUILD (default /tmp/build-rt-gpu) is this script's own build dir: a
# standalone runtime-lib build must not share a full-tree build's cache.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-/tmp/build-rt-gpu}
KEEP=${KEEP:-0.2}
cd "$ROOT" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

declare -a NAMES=() RESULTS=()
# step NAME CMD...: runs CMD, records PASS/FAIL(rc) and the time it took.
step() {
    local name=$1
    shift
    echo
    echo "== $name =="
    local t0=$SECONDS
    "$@"
    local rc=$?
    NAMES+=("$name")
    if [ $rc -eq 0 ]; then RESULTS+=("PASS ($((SECONDS - t0)) s)"); else RESULTS+=("FAIL rc=$rc"); fi
    return 0
}

# A cache from another source dir (e.g. a full-tree build) would make cmake refuse.
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q "^CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT/runtime-lib$" "$BUILD/CMakeCache.txt"; then
    echo "$BUILD holds another project's cache: starting it afresh"
    rm -rf "$BUILD"
fi
step "configure (runtime-lib standalone, HUBKV_CUDA=ON)" \
    cmake -S runtime-lib -B "$BUILD" -DHUBKV_CUDA=ON -DCMAKE_BUILD_TYPE=Release
step "build" cmake --build "$BUILD" -j"$(nproc)"
step "ctest (runtime)" ctest --test-dir "$BUILD" --output-on-failure
# A skip (77) of the GPU test would hide a broken device: run it directly too.
step "test_runtime_gpu (must run, not skip)" "$BUILD/test_runtime_gpu"

SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
step "compute-sanitizer memcheck" env HUBKV_TEST_SMALL=1 "$SAN" --tool memcheck --leak-check full \
    --error-exitcode 1 "$BUILD/test_runtime_gpu"
step "compute-sanitizer racecheck" env HUBKV_TEST_SMALL=1 "$SAN" --tool racecheck --error-exitcode 1 \
    "$BUILD/test_runtime_gpu"
step "compute-sanitizer synccheck" env HUBKV_TEST_SMALL=1 "$SAN" --tool synccheck --error-exitcode 1 \
    "$BUILD/test_runtime_gpu"

step "benchmark (keep $KEEP) vs PyTorch" python3 bench/runtime/bench_runtime_torch.py "$BUILD/bench_runtime" "$KEEP"

echo
echo "== summary =="
fail=0
for i in "${!NAMES[@]}"; do
    printf '  %-45s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"
    case ${RESULTS[$i]} in FAIL*) fail=1 ;; esac
done
exit $fail
