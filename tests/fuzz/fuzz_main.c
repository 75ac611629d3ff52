/* One libFuzzer target: FZ_ENTRY (set by tests/fuzz/CMakeLists.txt) is the
 * entry point of fuzz_entries.c that this target drives. */
#include "fuzz_entries.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return FZ_ENTRY(data, size); }
