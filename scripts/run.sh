#!/usr/bin/env bash
# The main job on the default model: install what is missing, build, then run
# the pipeline (CPU when there is no GPU; a re-run resumes finished work):
#   hubkv-synth    calibration contexts from the linux-doc reST corpus
#   hubkv-profile  oracle importance, base scorers, per-head loss curves
#   hubkv-solve    convex hulls + marginal-utility budgets -> HDF5 profile
#   hubkv-inspect  metadata, budget summary, heat map and loss curves (SVG)
# and a greedy continuation of a prompt as an engine smoke test.
#   HUBKV_MODEL   model (.gguf or HF directory; default: the cached SmolLM2)
#   HUBKV_OUT     output directory (default out/)
#   HUBKV_SCORER  base scorer the budgets are solved for (default snapkv)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=build scripts/build.sh
MODEL=${HUBKV_MODEL:-${HUBKV_CACHE:-$HOME/.cache/hubkv}/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${HUBKV_OUT:-out}
SCORER=${HUBKV_SCORER:-snapkv}
PROMPT=${1:-"What is a KV cache in a transformer language model? Answer in two sentences."}
mkdir -p "$OUT"

echo "== 1/5 hubkv-synth: calibration contexts"
build/profile/hubkv-synth --model "$MODEL" --out "$OUT/calib.h5" --quick
echo "== 2/5 hubkv-profile: oracle importance and loss curves (resumes an interrupted run)"
build/profile/hubkv-profile --model "$MODEL" --calib "$OUT/calib.h5" --out "$OUT/stats.h5"
echo "== 3/5 hubkv-solve: per-head budgets for compression ratios 1..99% ($SCORER)"
build/solver/hubkv-solve --stats "$OUT/stats.h5" --model "$MODEL" --scorer "$SCORER" \
    --out "$OUT/profile.h5" --export-lukv "$OUT/lukv_prune_ratios.npy"
echo "== 4/5 hubkv-inspect: what the profile holds"
build/solver/hubkv-inspect "$OUT/profile.h5" --heatmap "$OUT/budgets.svg" --curves "$OUT/curves.svg"
echo "== 5/5 hubkv-generate: engine smoke test"
build/eval/hubkv-generate --model "$MODEL" --chat --max-new 64 --prompt "$PROMPT"
echo "outputs in $OUT/: calib.h5 stats.h5 profile.h5 lukv_prune_ratios.npy budgets.svg curves.svg"
