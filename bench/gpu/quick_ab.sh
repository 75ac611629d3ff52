#!/usr/bin/env bash
# On the GPU machine, one short run: build the CUDA targets into $B, kernel
# and forward tests, the 1B shape's long prefill, SmolLM2-shape decode at 8K
# for several decode-attention block counts (HUBKV_GPU_DEC_PER_SM), a
# per-kernel profile of SmolLM2 decode (nsys, when present), memcheck.
# Logs go to $OUT (or /tmp/quick-ab). Each step is time-limited.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-/tmp/build-gpu}
O=${OUT:-/tmp/quick-ab}
DEPS=${HUBKV_DEPS:-/tmp/deps/usr}
export PKG_CONFIG_PATH=$DEPS/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}
export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export CPATH=$DEPS/include:${CPATH:-}
X=$B/bench/gpu/hubkv_bench_gpu
cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DHUBKV_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_PREFIX_PATH=$DEPS > $O/cmake.log 2>&1 || { tail -20 $O/cmake.log; exit 1; }
cmake --build $B -j "$(nproc)" --target test_cuda_kernels test_cuda_forward hubkv_bench_gpu \
  > $O/build.log 2>&1 || { grep -B2 -A8 error $O/build.log | head -60; exit 1; }
echo "built at $SECONDS s"
python3 -c "import sys; sys.path.insert(0, 'bench/gpu'); import bench_peer as b; \
[b.build(n, s) for n, s in b.SHAPES.items() if n in '${SHAPES:-llama-3.2-1b smollm2-135m}'.split()]" \
  > $O/models.log 2>&1 &
timeout 60 $B/tests/test_cuda_kernels > $O/kernels.log 2>&1; echo "test_cuda_kernels rc $?"
tail -3 $O/kernels.log
HUBKV_TEST_DATA=$PWD/tests/data timeout 60 $B/tests/test_cuda_forward > $O/forward.log 2>&1
echo "test_cuda_forward rc $?"; tail -3 $O/forward.log
wait
echo "== 1B prefill ($SECONDS s)"
[ -d /tmp/hubkv-bench-llama-3.2-1b ] && timeout 60 $X /tmp/hubkv-bench-llama-3.2-1b --prefill 8192 --prefill 32768 --decode 8192 \
  | grep -E "gemm|prefill|decode"
echo "== smollm2 decode ($SECONDS s)"
timeout 30 $X /tmp/hubkv-bench-smollm2-135m --prefill 0 --decode 8192 | grep -E "decode"
# per-kernel device time of decode steps (plain launches; ncu serialises them,
# so this is kernel time without the gaps between kernels)
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
if [ -n "$NCU" ]; then
  HUBKV_GPU_GRAPH=0 timeout 90 $NCU --metrics gpu__time_duration.sum --csv \
    -k regex:'gemv|decode|rope_scatter|embed' --launch-skip 2000 --launch-count 240 \
    $X /tmp/hubkv-bench-smollm2-135m --prefill 0 --decode 8192 > $O/ncu.csv 2>&1
  python3 bench/gpu/ncu_sum.py $O/ncu.csv
else echo "ncu not found"; fi
echo "== memcheck ($SECONDS s)"
timeout ${MEMCHECK_S:-90} compute-sanitizer --tool memcheck --error-exitcode 1 \
  $B/tests/test_cuda_kernels > $O/memcheck.log 2>&1; echo "memcheck kernels rc $?"
tail -3 $O/memcheck.log
echo "done at $SECONDS s"
