# Loader: config.json parsing, safetensors (single, sharded, f16/bf16), model
# assembly from HF dirs and the default GGUF, and errors on broken files.
hubkv_add_test(test_loader SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_loader.c)
