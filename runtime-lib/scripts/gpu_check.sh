#!/usr/bin/env bash
# GPU-machine check of libhubkv: build (standalone, CUDA on), run the runtime
# tests, compute-sanitizer memcheck + racecheck on the GPU test, then the
# benchmark against PyTorch. Run from the repository root. Exits non-zero on
# the first failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-/tmp/build-gpu}
cd "$ROOT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

echo "== configure + build (runtime-lib standalone, HUBKV_CUDA=ON) =="
cmake -S runtime-lib -B "$BUILD" -DHUBKV_CUDA=ON -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$(nproc)"

echo "== runtime tests =="
ctest --test-dir "$BUILD" --output-on-failure
# A skip of the GPU test would hide a broken device: insist that it ran.
"$BUILD/test_runtime_gpu"

echo "== compute-sanitizer =="
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
HUBKV_TEST_SMALL=1 "$SAN" --tool memcheck --leak-check full --error-exitcode 1 "$BUILD/test_runtime_gpu"
HUBKV_TEST_SMALL=1 "$SAN" --tool racecheck --error-exitcode 1 "$BUILD/test_runtime_gpu"

echo "== benchmark (keep 20%) vs PyTorch =="
python3 bench/runtime/bench_runtime_torch.py "$BUILD/bench_runtime" 0.2
