#!/usr/bin/env bash
# On the GPU machine: build hubkv with CUDA into /tmp/build-gpu, run the CUDA
# tests with their output, compute-sanitizer memcheck + racecheck on the
# kernel tests, then the benchmark. Every step runs even if one before failed;
# the summary at the end lists what failed. HUBKV_CHECK_BENCH=0 skips the
# benchmark (to run it in a separate call when one call has a time limit).
set -uo pipefail
cd "$(dirname "$0")/.."
DEPS=${HUBKV_DEPS:-/tmp/deps/usr}
export PKG_CONFIG_PATH=$DEPS/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}
export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export CPATH=$DEPS/include:${CPATH:-}
B=/tmp/build-gpu
failed=()
step() { echo; echo "=== $*"; "$@" || { echo "=== FAILED: $*"; failed+=("$*"); }; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
step cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DHUBKV_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
     -DCMAKE_PREFIX_PATH=$DEPS
step cmake --build $B -j "$(nproc)" --target test_cuda_kernels test_cuda_forward hubkv_bench_gpu
step $B/tests/test_cuda_kernels
HUBKV_TEST_DATA=$PWD/tests/data step $B/tests/test_cuda_forward
if command -v compute-sanitizer >/dev/null; then
  step compute-sanitizer --tool memcheck --error-exitcode 1 $B/tests/test_cuda_kernels
  step compute-sanitizer --tool racecheck --error-exitcode 1 $B/tests/test_cuda_kernels
  HUBKV_TEST_DATA=$PWD/tests/data step compute-sanitizer --tool memcheck --error-exitcode 1 \
       $B/tests/test_cuda_forward
  # the persistent decode kernel (grid barriers, bulk copies into shared memory)
  HUBKV_TEST_PERSIST_ONLY=1 step compute-sanitizer --tool racecheck --error-exitcode 1 \
       $B/tests/test_cuda_forward
  HUBKV_TEST_PERSIST_ONLY=1 step compute-sanitizer --tool synccheck --error-exitcode 1 \
       $B/tests/test_cuda_forward
else
  echo "compute-sanitizer not found"; failed+=("compute-sanitizer missing")
fi
step ctest --test-dir $B -L cuda --output-on-failure
if [ "${HUBKV_CHECK_BENCH:-1}" != 0 ]; then
  step python3 bench/gpu/bench_peer.py --hubkv $B/bench/gpu/hubkv_bench_gpu
fi
echo
if [ ${#failed[@]} -eq 0 ]; then echo "ALL STEPS PASSED"; else
  echo "FAILED STEPS:"; printf '  %s\n' "${failed[@]}"; exit 1; fi
