# CPU forward + KV cache: properties on random in-memory models (test_forward),
# parity with transformers on the tiny checkpoints and the default GGUF (test_parity).
hubkv_add_test(test_forward SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_forward.c)
hubkv_add_test(test_parity SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_parity.c)
