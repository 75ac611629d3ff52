#!/usr/bin/env bash
# Configure and build hubkv into BUILD_DIR (default build/). Extra args go to
# cmake. Quiet on success; the build log is printed on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
mkdir -p "$BUILD_DIR"
log="$BUILD_DIR/build.log"
if ! { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" && \
       cmake --build "$BUILD_DIR" -j "$(nproc)"; } >"$log" 2>&1; then
  cat "$log"
  echo "build failed (log: $log)" >&2
  exit 1
fi
