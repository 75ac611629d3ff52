# GPU engine tests (model/cuda). Without a device they print "no CUDA
# device: skipped" and exit 77, which CTest reports as skipped.
if(HUBKV_CUDA)
  foreach(t test_cuda_kernels test_cuda_forward)
    hubkv_add_test(${t} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c LIBS hubkv_cuda)
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/model/cuda)
    set_tests_properties(${t} PROPERTIES SKIP_RETURN_CODE 77 LABELS "cuda")
  endforeach()
endif()

# The GPU benchmark (bench/gpu; bench/CMakeLists.txt has another owner).
if(HUBKV_CUDA)
  add_executable(hubkv_bench_gpu ${CMAKE_SOURCE_DIR}/bench/gpu/bench_gpu.c)
  target_link_libraries(hubkv_bench_gpu PRIVATE hubkv_cuda)
  set_target_properties(hubkv_bench_gpu PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/bench/gpu)
endif()
