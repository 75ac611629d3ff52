# Reliability: every fuzz crash reproducer (tests/data/fuzz-regressions) and
# every seed corpus (tests/fuzz/seeds) replayed through the fuzzers' entry
# points; runs in the normal and the ASan+UBSan builds of scripts/test.sh.
hubkv_add_test(test_fuzz_regressions
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_fuzz_regressions.c ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_entries.c
  ARGS ${HUBKV_TEST_DATA}/fuzz-regressions ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/seeds
  LIBS PkgConfig::CJSON)
target_compile_definitions(test_fuzz_regressions PRIVATE HUBKV_FUZZ_DATA_DIR="${HUBKV_TEST_DATA}")
# The HDF5 readers' reproducers (fuzz_profile, fuzz_calib, fuzz_stats) where
# runtime-lib and profile/ are built.
if(TARGET hubkv AND TARGET hubkv_profile_core)
  target_sources(test_fuzz_regressions PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_profile.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_h5.c)
  target_link_libraries(test_fuzz_regressions PRIVATE hubkv hubkv_profile_core)
  target_compile_definitions(test_fuzz_regressions PRIVATE HUBKV_FUZZ_H5)
endif()

# Kill-mid-write and disk-full (RLIMIT_FSIZE) test of every product-file
# writer: profile, calibration set, stats file, hubkv-solve's profile.
if(TARGET hubkv_solver_core)
  hubkv_add_test(test_kill_write SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_kill_write.c
    LIBS hubkv_solver_core)
  set_tests_properties(test_kill_write PROPERTIES TIMEOUT 600)
endif()
