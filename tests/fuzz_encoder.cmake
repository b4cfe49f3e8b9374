# libFuzzer harness for the row encoder (mbq_typemap_encode, mbq_buf_json_string); checks output with json-c
# (issue 8). Only with -DMBQ_FUZZ=ON and clang; see fuzz_config.cmake.
# `ctest -L fuzz` runs it for 60 s on a copy of tests/fuzz/corpus/encoder and
# fails on any crash, leak or sanitizer report.
if(MBQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MBQ_FUZZ needs clang (CC=clang)")
  endif()
  add_executable(fuzz_encoder ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_encoder.c
      ${CMAKE_SOURCE_DIR}/src/typemap.c ${CMAKE_SOURCE_DIR}/src/error.c ${CMAKE_SOURCE_DIR}/src/buf.c ${CMAKE_SOURCE_DIR}/src/log.c ${CMAKE_SOURCE_DIR}/src/util.c)
  target_include_directories(fuzz_encoder PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
  target_compile_definitions(fuzz_encoder PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
      MBQ_VERSION="${PROJECT_VERSION}")
  target_link_libraries(fuzz_encoder PRIVATE PkgConfig::JSONC PkgConfig::UUID Threads::Threads)
  target_compile_options(fuzz_encoder PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_encoder PRIVATE -fsanitize=fuzzer,address,undefined)
  add_test(NAME fuzz_encoder
           COMMAND sh -c "rm -rf fuzz_encoder_corpus && cp -r '${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/encoder' fuzz_encoder_corpus && exec '$<TARGET_FILE:fuzz_encoder>' -max_total_time=60 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 fuzz_encoder_corpus")
  set_tests_properties(fuzz_encoder PROPERTIES LABELS fuzz TIMEOUT 180)
endif()
