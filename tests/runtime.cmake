# libhubkv (runtime-lib) tests. Included by tests/CMakeLists.txt in the full
# tree and by runtime-lib/CMakeLists.txt when runtime-lib is built alone, so
# it uses only the hubkv target (no engine).
get_filename_component(_hkv_rt_tests ${CMAKE_CURRENT_LIST_DIR} ABSOLUTE)
find_package(HDF5 COMPONENTS C QUIET)

function(hubkv_rt_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;ARGS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_include_directories(${name} PRIVATE ${_hkv_rt_tests})
  target_link_libraries(${name} PRIVATE hubkv m)
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77
                       ENVIRONMENT "HUBKV_TEST_DATA=${HUBKV_TEST_DATA}")
endfunction()

hubkv_rt_add_test(test_runtime_budget SOURCES ${_hkv_rt_tests}/test_runtime_budget.c)
hubkv_rt_add_test(test_runtime_ops SOURCES ${_hkv_rt_tests}/test_runtime_ops.c)
hubkv_rt_add_test(test_runtime_decode SOURCES ${_hkv_rt_tests}/test_runtime_decode.c)
# The profile test edits files with libhdf5 directly to make bad profiles; it
# writes the round-trip file that tests/scripts/check_profile_h5py.py reads
# (given this test binary as its second argument, the script also writes /gate
# weights with h5py and checks them through `test_runtime_profile --dump-gate`).
hubkv_rt_add_test(test_runtime_profile SOURCES ${_hkv_rt_tests}/test_runtime_profile.c
                  ARGS ${CMAKE_CURRENT_BINARY_DIR}/runtime_roundtrip.h5)
target_include_directories(test_runtime_profile SYSTEM PRIVATE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
target_link_libraries(test_runtime_profile PRIVATE ${HDF5_C_LIBRARIES})
# CPU vs GPU agreement; exits 77 ("no CUDA device: skipped") without a GPU.
hubkv_rt_add_test(test_runtime_gpu SOURCES ${_hkv_rt_tests}/test_runtime_gpu.c)
if(HUBKV_CUDA)
  target_link_libraries(test_runtime_gpu PRIVATE CUDA::cudart)
  target_compile_definitions(test_runtime_gpu PRIVATE HUBKV_TEST_CUDA=1)
endif()
