# Reliability: every fuzz crash reproducer (tests/data/fuzz-regressions) and
# every seed corpus (tests/fuzz/seeds) replayed through the fuzzers' entry
# points; runs in the normal and the ASan+UBSan builds of scripts/test.sh.
hubkv_add_test(test_fuzz_regressions
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_fuzz_regressions.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_entries.c
  ARGS ${HUBKV_TEST_DATA}/fuzz-regressions ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds
  LIBS PkgConfig::CJSON)
target_compile_definitions(test_fuzz_regressions PRIVATE HUBKV_FUZZ_DATA_DIR="${HUBKV_TEST_DATA}")
