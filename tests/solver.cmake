# hubkv-solve (solver/): PAVA, hulls, greedy vs exact DP, baselines, export
# round trips, and the CLI end to end on the tiny model.
if(TARGET hubkv_solver_core)
  hubkv_add_test(test_solver_core SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_solver_core.c LIBS hubkv_solver_core)
endif()
if(TARGET hubkv_solver_core AND TARGET hubkv-profile)
  hubkv_add_test(test_solver_cli SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_solver_cli.c LIBS hubkv_solver_core
                 ARGS $<TARGET_FILE:hubkv-synth> $<TARGET_FILE:hubkv-profile> $<TARGET_FILE:hubkv-solve>
                      $<TARGET_FILE:hubkv-inspect> ${HUBKV_TEST_DATA}/tiny/llama3 ${CMAKE_CURRENT_BINARY_DIR}/solver_cli)
  add_test(NAME cli_solve_help COMMAND hubkv-solve --help)
  set_tests_properties(cli_solve_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: hubkv-solve")
  add_test(NAME cli_inspect_help COMMAND hubkv-inspect --help)
  set_tests_properties(cli_inspect_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: hubkv-inspect")
endif()
