#!/bin/sh
# Profiling cost per context token as a multiple of a plain prefill of the
# same contexts (hubkv-profile --bench), on the GPU, for the default model's
# shape (SmolLM2-135M) and the Llama-3.2-1B shape, both random-initialised by
# transformers (bench/gpu/bench_peer.py's SHAPES) and random-id calibration
# sets. Goal (issue 6): <= 2x without KVzip; KVzip's reconstruction pass
# costs about one more prefill by design.
# usage: bench/profile/run_profile_bench.sh [BUILD_DIR]   (default build-bench-profile)
# Env: COUNT (contexts, 8), MIN_LEN/MAX_LEN (2048/8192), DEVICE (gpu), CHUNK (1024).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-bench-profile}
COUNT=${COUNT:-8} MIN_LEN=${MIN_LEN:-2048} MAX_LEN=${MAX_LEN:-8192}
DEVICE=${DEVICE:-gpu} CHUNK=${CHUNK:-1024}
OUT=${OUT:-/tmp/hubkv-bench-profile}
mkdir -p "$OUT"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 || { cat "$OUT/cmake.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target hubkv-synth hubkv-profile >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
SYNTH=$BUILD/profile/hubkv-synth PROF=$BUILD/profile/hubkv-profile
# The models: the same builder as the GPU peer benchmark.
python3 - "$ROOT" <<'PY'
import sys
sys.path.insert(0, sys.argv[1] + "/bench/gpu")
import bench_peer
for name in ("smollm2-135m", "llama-3.2-1b"):
    print(bench_peer.build(name, bench_peer.SHAPES[name]))
PY
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for name in smollm2-135m llama-3.2-1b; do
    model=/tmp/hubkv-bench-$name
    vocab=$(python3 -c "import json; print(json.load(open('$model/config.json'))['vocab_size'])")
    calib=$OUT/calib-$name.h5
    "$SYNTH" --random-vocab "$vocab" --count "$COUNT" --min-len "$MIN_LEN" --max-len "$MAX_LEN" \
        --future-min 128 --future-max 512 --heldout-frac 0 --out "$calib" >/dev/null
    for kv in "" "--no-kvzip"; do
        echo "##### $name ${kv:-with KVzip} ($COUNT contexts of $MIN_LEN..$MAX_LEN tokens, $DEVICE, chunk $CHUNK)"
        "$PROF" --model "$model" --calib "$calib" --device "$DEVICE" --chunk "$CHUNK" --bench $kv 2>&1
    done
done
