# hubkv-synth / hubkv-profile (profile/): scorers vs naive attention on the
# tiny model, curves, calibration sets, resume after a kill, shard merging.
if(TARGET hubkv_profile_core)
  hubkv_add_test(test_profile_scores SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_profile_scores.c
                 LIBS hubkv_profile_core)
  hubkv_add_test(test_profile_synth SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_profile_synth.c
                 LIBS hubkv_profile_core ARGS ${CMAKE_SOURCE_DIR}/data/templates.json)
  set_tests_properties(test_profile_synth PROPERTIES SKIP_RETURN_CODE 77)
  # Drives the tools: resume after a SIGKILL-like exit, and 2 merged shards,
  # each compared with an uninterrupted single run.
  hubkv_add_test(test_profile_resume SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_profile_resume.c
                 LIBS hubkv_profile_core
                 ARGS $<TARGET_FILE:hubkv-synth> $<TARGET_FILE:hubkv-profile>
                      ${HUBKV_TEST_DATA}/tiny/llama3 ${CMAKE_CURRENT_BINARY_DIR}/profile_resume)
  add_test(NAME cli_profile_help COMMAND hubkv-profile --help)
  set_tests_properties(cli_profile_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: hubkv-profile")
  add_test(NAME cli_synth_help COMMAND hubkv-synth --help)
  set_tests_properties(cli_synth_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: hubkv-synth")
  add_test(NAME cli_profile_bad_calib COMMAND sh -c "$<TARGET_FILE:hubkv-profile> --model x --calib /nonexistent.h5 --out /tmp/x.h5 2>&1; true")
  set_tests_properties(cli_profile_bad_calib PROPERTIES PASS_REGULAR_EXPRESSION "/nonexistent.h5: cannot open")
  add_test(NAME cli_synth_bad_mix COMMAND sh -c "$<TARGET_FILE:hubkv-synth> --random-vocab 50 --out /tmp/x.h5 --mix foo=1 2>&1; true")
  set_tests_properties(cli_synth_bad_mix PROPERTIES PASS_REGULAR_EXPRESSION "unknown task 'foo'")
endif()
# hubkv-profile under mpirun (1, 2, 4 ranks, resume, shards) against one
# plain run; skipped without Open MPI (openmpi-bin, libopenmpi-dev).
if(TARGET hubkv_profile_core)
  find_package(MPI COMPONENTS C QUIET)
  set(HKP_MPIRUN none)  # an empty argument would vanish from the list
  if(MPIEXEC_EXECUTABLE)
    set(HKP_MPIRUN ${MPIEXEC_EXECUTABLE})
  endif()
  hubkv_add_test(test_profile_mpi SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_profile_mpi.c
                 LIBS hubkv_profile_core
                 ARGS $<TARGET_FILE:hubkv-synth> $<TARGET_FILE:hubkv-profile> ${HKP_MPIRUN}
                      ${HUBKV_TEST_DATA}/tiny/llama3 ${CMAKE_CURRENT_BINARY_DIR}/profile_mpi)
  set_tests_properties(test_profile_mpi PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
