#!/usr/bin/env bash
# On the GPU machine, one short run: build the CUDA targets into $B, then the
# steps named in $STEPS (default: all but prof), each time-limited:
#   tests    test_cuda_kernels, test_cuda_forward
#   prefill  1B shape prefill 8K/32K (chunk 8K) + decode at 8K
#   chunks   1B shape 32K prefill with chunks of 16K and 32K
#   attn     attention kernel alone (HKG_ATTN_BENCH)
#   decode   SmolLM2-shape decode at 8K
#   ncu      per-kernel device time of SmolLM2 decode steps (ncu)
#   prof     per-kernel device time of one 1B 32K prefill (nsys, else ncu)
#   memcheck compute-sanitizer memcheck of the kernel tests
# Logs go to $OUT (or /tmp/quick-ab).
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-/tmp/build-gpu}
O=${OUT:-/tmp/quick-ab}
mkdir -p $O
STEPS=${STEPS:-tests prefill attn decode ncu memcheck}
has() { [[ " $STEPS " == *" $1 "* ]]; }
DEPS=${HUBKV_DEPS:-/tmp/deps/usr}
export PKG_CONFIG_PATH=$DEPS/lib/x86_64-linux-gnu/pkgconfig:${PKG_CONFIG_PATH:-}
export LD_LIBRARY_PATH=$DEPS/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export CPATH=$DEPS/include:${CPATH:-}
X=$B/bench/gpu/hubkv_bench_gpu
M1=/tmp/hubkv-bench-llama-3.2-1b
MS=/tmp/hubkv-bench-smollm2-135m
cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release -DHUBKV_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_PREFIX_PATH=$DEPS > $O/cmake.log 2>&1 || { tail -20 $O/cmake.log; exit 1; }
cmake --build $B -j "$(nproc)" --target test_cuda_kernels test_cuda_forward hubkv_bench_gpu \
  > $O/build.log 2>&1 || { grep -B2 -A8 error $O/build.log | head -60; exit 1; }
echo "built at $SECONDS s"
python3 -c "import sys; sys.path.insert(0, 'bench/gpu'); import bench_peer as b; \
[b.build(n, s) for n, s in b.SHAPES.items() if n in '${SHAPES:-llama-3.2-1b smollm2-135m}'.split()]" \
  > $O/models.log 2>&1 &
if has tests; then
  timeout 60 $B/tests/test_cuda_kernels > $O/kernels.log 2>&1; echo "test_cuda_kernels rc $?"
  tail -3 $O/kernels.log
  HUBKV_TEST_DATA=$PWD/tests/data timeout 60 $B/tests/test_cuda_forward > $O/forward.log 2>&1
  echo "test_cuda_forward rc $?"; tail -3 $O/forward.log
fi
if has attn; then
  HKG_ATTN_BENCH=1 timeout 60 $B/tests/test_cuda_kernels 2>&1 | grep "bench prefill"
fi
wait
if has prefill; then
  echo "== 1B prefill ($SECONDS s)"
  timeout 90 $X $M1 --prefill 8192 --prefill 32768 --decode 8192 | grep -E "gemm|prefill|decode"
fi
if has chunks; then
  for c in 16384 32768; do
    echo "== 1B prefill 32K, chunk $c ($SECONDS s)"
    timeout 60 $X $M1 --prefill 32768 --decode 0 --rates 0 --cap 0 --chunk $c | grep prefill
  done
fi
if has decode; then
  echo "== smollm2 decode ($SECONDS s)"
  timeout 30 $X $MS --prefill 0 --decode 8192 --rates 0 | grep -E "decode"
fi
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
# per-kernel device time of decode steps (plain launches; ncu serialises them,
# so this is kernel time without the gaps between kernels)
if has ncu && [ -n "$NCU" ]; then
  HUBKV_GPU_GRAPH=0 timeout 90 $NCU --metrics gpu__time_duration.sum --csv \
    -k regex:'gemv|decode|rope_scatter|embed' --launch-skip 2000 --launch-count 240 \
    $X $MS --prefill 0 --decode 8192 --rates 0 > $O/ncu.csv 2>&1
  python3 bench/gpu/ncu_sum.py $O/ncu.csv
fi
# one 32K prefill of the 1B shape (3 runs: warm-up + 2 timed), per kernel
if has prof; then
  echo "== profile 1B 32K prefill ($SECONDS s)"
  NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
  P="$X $M1 --prefill 32768 --decode 0 --rates 0 --cap 0"
  if [ -n "$NSYS" ]; then
    timeout 120 $NSYS profile -t cuda -o /tmp/prof32k -f true $P > $O/nsys.log 2>&1
    $NSYS stats -r cuda_gpu_kern_sum -f csv /tmp/prof32k.nsys-rep 2>/dev/null > $O/nsys_kern.csv
    python3 - $O/nsys_kern.csv <<'EOF'
import csv, sys
rows = [l for l in open(sys.argv[1]) if l.strip()]
start = next(i for i, l in enumerate(rows) if l.startswith('"Time') or l.startswith('Time'))
tot = 0
for r in csv.DictReader(rows[start:]):
    ns = float(r["Total Time (ns)"]); tot += ns
    print(f'{r["Name"][:90]:90s} n={r["Instances"]:>5s} per-prefill={ns / 3e6:8.2f} ms avg={float(r["Avg (ns)"]) / 1e3:9.1f} us')
print(f"total per prefill {tot / 3e6:.1f} ms")
EOF
  elif [ -n "$NCU" ]; then
    timeout 240 $NCU --metrics gpu__time_duration.sum --csv --clock-control none \
      --cache-control none $P > $O/ncu_prof.csv 2>&1
    python3 bench/gpu/ncu_sum.py $O/ncu_prof.csv
  else echo "no profiler"; fi
fi
if has memcheck; then
  echo "== memcheck ($SECONDS s)"
  timeout ${MEMCHECK_S:-90} compute-sanitizer --tool memcheck --error-exitcode 1 \
    $B/tests/test_cuda_kernels > $O/memcheck.log 2>&1; echo "memcheck kernels rc $?"
  tail -3 $O/memcheck.log
fi
echo "done at $SECONDS s"
