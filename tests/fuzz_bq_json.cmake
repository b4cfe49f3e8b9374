# libFuzzer harness for the parsing of BigQuery's JSON responses (errors, schemas, jobs, tables)
# (issue 8). Only with -DMBQ_FUZZ=ON and clang; see fuzz_config.cmake.
# `ctest -L fuzz` runs it for 60 s on a copy of tests/fuzz/corpus/bq_json and
# fails on any crash, leak or sanitizer report.
if(MBQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MBQ_FUZZ needs clang (CC=clang)")
  endif()
  add_executable(fuzz_bq_json ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_bq_json.c
      ${CMAKE_SOURCE_DIR}/src/bq_json.c ${CMAKE_SOURCE_DIR}/src/error.c ${CMAKE_SOURCE_DIR}/src/buf.c ${CMAKE_SOURCE_DIR}/src/log.c ${CMAKE_SOURCE_DIR}/src/util.c)
  target_include_directories(fuzz_bq_json PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
  target_compile_definitions(fuzz_bq_json PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
      MBQ_VERSION="${PROJECT_VERSION}")
  target_link_libraries(fuzz_bq_json PRIVATE PkgConfig::JSONC PkgConfig::UUID Threads::Threads)
  target_compile_options(fuzz_bq_json PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_bq_json PRIVATE -fsanitize=fuzzer,address,undefined)
  add_test(NAME fuzz_bq_json
           COMMAND sh -c "rm -rf fuzz_bq_json_corpus && cp -r '${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/bq_json' fuzz_bq_json_corpus && exec '$<TARGET_FILE:fuzz_bq_json>' -max_total_time=60 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 fuzz_bq_json_corpus")
  set_tests_properties(fuzz_bq_json PROPERTIES LABELS fuzz TIMEOUT 180)
endif()
