#!/usr/bin/env bash
# The test command: install what is missing, build, run the whole test suite
# (CTest), then the CPU tests again under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=build scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
if [ "${HUBKV_SKIP_ASAN:-0}" != 1 ]; then
  echo "== the same tests under AddressSanitizer + UndefinedBehaviorSanitizer (CPU build)"
  BUILD_DIR=build-asan scripts/build.sh -DCMAKE_BUILD_TYPE=Debug -DHUBKV_SANITIZE=ON -DHUBKV_CUDA=OFF
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -LE slow
fi
