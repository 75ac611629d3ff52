#!/usr/bin/env bash
# Run hubkv-generate under valgrind (memcheck, full leak check) on every tiny
# model in tests/data/tiny, and with bad arguments and bad files, so the CLI's
# success and error paths are both clean. Exits non-zero on any memcheck
# error or leak, or when a run's exit status is not the expected one.
#   BUILD_DIR    build with eval/hubkv-generate (default build; built if absent)
#   VG_TOKENIZER tokenizer.json for the tiny models, which carry none
#                (default tests/data/tokenizer/llama3.tokenizer.json)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
GEN="$BUILD_DIR/eval/hubkv-generate"
TOK=${VG_TOKENIZER:-tests/data/tokenizer/llama3.tokenizer.json}
LOG_DIR="$BUILD_DIR/valgrind"

command -v valgrind >/dev/null || {
  echo "valgrind-cli: installing valgrind"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
}
if [ ! -x "$GEN" ]; then
  echo "valgrind-cli: building hubkv-generate in $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target hubkv-generate >/dev/null
fi
mkdir -p "$LOG_DIR"

# One thread each: OpenMP/OpenBLAS pools are torn down lazily and show up as
# "possibly lost" thread stacks that are not ours.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
VG=(valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes --quiet)

fails=0
n=0
# check NAME EXPECT(ok|fail) ARGS...: memcheck errors give 99, which is never expected.
check() {
  local name=$1 expect=$2
  shift 2
  local log="$LOG_DIR/$name.log" rc=0
  n=$((n + 1))
  "${VG[@]}" --log-file="$log.vg" "$GEN" "$@" >"$log" 2>&1 || rc=$?
  local verdict=ok
  if [ "$rc" -eq 99 ] || [ -s "$log.vg" ]; then
    verdict="MEMCHECK ERRORS (see $log.vg)"
  elif [ "$expect" = ok ] && [ "$rc" -ne 0 ]; then
    verdict="exit $rc, expected 0: $(tail -n 1 "$log")"
  elif [ "$expect" = fail ] && [ "$rc" -eq 0 ]; then
    verdict="exit 0, expected an error"
  fi
  [ "$verdict" = ok ] || fails=$((fails + 1))
  printf '%-34s %-4s exit %-3s %s\n' "$name" "$expect" "$rc" "$verdict"
  if [ "$expect" = fail ] && [ "$verdict" = ok ]; then
    printf '%34s %s\n' "" "$(grep -v '^usage\|^  ' "$log" | tail -n 1 | cut -c1-110)"
  fi
}

# The prompt is one or two byte-level tokens, so its ids fit the tiny vocabs (256-320).
for dir in tests/data/tiny/*/; do
  m=$(basename "$dir")
  check "tiny-$m" ok --model "$dir" --tokenizer "$TOK" --prompt "Hi" --max-new 4
done

# Bad arguments and files: a clear message, a non-zero exit, no leak.
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
printf 'GGUF\003\000\000\000' >"$t/truncated.gguf"
printf '{"weight_map": ' >"$t/bad.json"
mkdir "$t/nomodel"
cp tests/data/tiny/qwen3/config.json "$t/nomodel/"
check help ok --help
check no-args fail
check missing-prompt fail --model tests/data/tiny/llama3
check unknown-option fail --model tests/data/tiny/llama3 --prompt hi --frobnicate
check max-new-zero fail --model tests/data/tiny/llama3 --prompt hi --max-new 0
check max-new-text fail --model tests/data/tiny/llama3 --prompt hi --max-new ten
check model-missing fail --model /nonexistent/model.gguf --prompt hi
check model-truncated-gguf fail --model "$t/truncated.gguf" --prompt hi
check model-no-weights fail --model "$t/nomodel" --tokenizer "$TOK" --prompt hi
check tokenizer-bad-json fail --model tests/data/tiny/llama3 --tokenizer "$t/bad.json" --prompt hi
check prompt-ids-beyond-vocab fail --model tests/data/tiny/qwen3 --tokenizer "$TOK" \
  --prompt "The quick brown fox jumps over the lazy dog, again and again."

echo "valgrind-cli: $n runs, $fails failed (logs in $LOG_DIR)"
[ "$fails" -eq 0 ]
