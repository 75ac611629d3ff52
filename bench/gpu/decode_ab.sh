#!/usr/bin/env bash
# On the GPU machine, after a build into $1 (default /tmp/build-gpu): decode
# tokens/s of the bench shapes on the persistent kernel (HUBKV_GPU_PERSIST=1,
# once with its per-phase trace, HKG_PD_TRACE) and on the per-kernel path with
# the decode products through cuBLAS or hkg_gemv, with and without the CUDA
# graph (HUBKV_GPU_GEMV / HUBKV_GPU_GRAPH), then the 1B shape's long prefill.
# Builds the random models as bench_peer.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:-/tmp/build-gpu}
X=$B/bench/gpu/hubkv_bench_gpu
python3 -c "import sys; sys.path.insert(0, 'bench/gpu'); import bench_peer as b; \
[b.build(n, s) for n, s in b.SHAPES.items()]" 2>&1 | grep -v Writing
for shape in llama-3.2-1b smollm2-135m; do
  for v in "HUBKV_GPU_PERSIST=1 HKG_PD_TRACE=1" "HUBKV_GPU_PERSIST=1" \
           "HUBKV_GPU_PERSIST=0 HUBKV_GPU_GEMV=0 HUBKV_GPU_GRAPH=0" "HUBKV_GPU_PERSIST=0 HUBKV_GPU_GEMV=0" \
           "HUBKV_GPU_PERSIST=0 HUBKV_GPU_GRAPH=0" "HUBKV_GPU_PERSIST=0"; do
    echo "== $shape $v"
    env $v $X /tmp/hubkv-bench-$shape --prefill 0 --decode 8192 2>&1 | grep -E "copy|decode|bytes|pd trace"
  done
done
echo "== llama-3.2-1b prefill"
$X /tmp/hubkv-bench-llama-3.2-1b --prefill 8192 --prefill 32768 --decode 8192 | grep -E "gemm|prefill|decode"
