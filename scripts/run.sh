#!/usr/bin/env bash
# The main job on the default model: install what is missing, build, and run
# the pipeline. (Grows issue by issue: for now it tokenizes a prompt and prints
# the model's greedy continuation, on the CPU.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=build scripts/build.sh
MODEL=${HUBKV_MODEL:-${HUBKV_CACHE:-$HOME/.cache/hubkv}/SmolLM2-135M-Instruct.Q4_1.gguf}
PROMPT=${1:-"What is a KV cache in a transformer language model? Answer in two sentences."}
build/eval/hubkv-generate --model "$MODEL" --chat --max-new 64 --prompt "$PROMPT"
