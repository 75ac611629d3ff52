# GGUF reader: dequantisation bit-exact vs gguf-py (fixture + default model
# slices), metadata, config and tokenizer spec, clear errors on corrupt files.
hubkv_add_test(test_gguf SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_gguf.c)
