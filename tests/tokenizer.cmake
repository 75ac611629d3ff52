# Tokenizer: ids equal to HF on golden strings (tokenizer.json fixtures and the
# default GGUF), decode round trips, clear errors on bad files.
hubkv_add_test(test_tokenizer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer.c)
