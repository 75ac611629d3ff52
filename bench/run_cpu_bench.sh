#!/usr/bin/env bash
# CPU forward benchmark, hubkv vs transformers/PyTorch on the same model, ids
# and thread count, in one run; prints a table with the ratios hubkv / PyTorch.
#   bench/run_cpu_bench.sh [MODEL.gguf] [THREADS]     (defaults: the default model, nproc)
# Env: BUILD_DIR (default build), BENCH_ARGS (extra args for both, e.g. "--reps 5"),
#      TORCH_ATTN (sdpa or eager, default sdpa).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-${HUBKV_MODEL_GGUF:-${HUBKV_CACHE:-$HOME/.cache/hubkv}/SmolLM2-135M-Instruct.Q4_1.gguf}}
THREADS=${2:-$(nproc)}
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$MODEL" ] || { echo "run_cpu_bench.sh: model $MODEL not found (scripts/setup.sh fetches it)" >&2; exit 1; }
if [ ! -x "$BUILD_DIR/bench/bench_cpu_forward" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" --target bench_cpu_forward -j "$(nproc)" >/dev/null
fi
# One thread pool each, of the same size.
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
echo "model $MODEL, $THREADS threads, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD_DIR/bench/bench_cpu_forward" "$MODEL" --threads "$THREADS" ${BENCH_ARGS:-} | tee -a "$OUT"
python3 bench/bench_cpu_torch.py "$MODEL" --threads "$THREADS" --attn "${TORCH_ATTN:-sdpa}" \
  ${BENCH_ARGS:-} 2>/dev/null | tee -a "$OUT"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
res = {}
for r in rows:
    key = (r["test"], r["n"])
    res.setdefault(key, {})["hubkv" if r["impl"] == "hubkv" else "torch"] = r
goal = {"prefill": 0.7, "decode": 1.5}
print()
print("| test | tokens | hubkv tok/s | PyTorch tok/s | hubkv / PyTorch | goal |")
print("|---|---:|---:|---:|---:|---:|")
for (test, n), v in res.items():
    h, t = v.get("hubkv"), v.get("torch")
    what = f"decode after {h['prompt']}" if test == "decode" and h else test
    ratio = h["tok_s"] / t["tok_s"] if h and t else float("nan")
    print(f"| {what} | {n} | {h['tok_s'] if h else '-'} | {t['tok_s'] if t else '-'} | "
          f"{ratio:.2f}x | >= {goal[test]}x {'ok' if ratio >= goal[test] else 'BELOW'} |")
PY
