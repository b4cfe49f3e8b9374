# libFuzzer harness for the config parser (issue 8). Only with -DMBQ_FUZZ=ON
# and clang:
#   CC=clang cmake -S . -B build-fuzz -DMBQ_FUZZ=ON -DMBQ_SANITIZE=ON
#   ninja -C build-fuzz fuzz_config
#   build-fuzz/tests/fuzz_config -max_total_time=60 \
#       -dict=tests/fuzz/config.dict tests/fuzz/corpus/config
# `ctest -L fuzz` runs it for 60 s on a copy of the seed corpus.
if(MBQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MBQ_FUZZ needs clang (CC=clang)")
  endif()
  # The parser and the core it uses are compiled into the harness itself:
  # mbqcore is built without coverage instrumentation (-fsanitize=fuzzer-no-link),
  # and libFuzzer is blind to code it cannot see.
  add_executable(fuzz_config ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_config.c
      ${CMAKE_SOURCE_DIR}/src/config.c ${CMAKE_SOURCE_DIR}/src/error.c
      ${CMAKE_SOURCE_DIR}/src/buf.c ${CMAKE_SOURCE_DIR}/src/log.c ${CMAKE_SOURCE_DIR}/src/util.c)
  target_include_directories(fuzz_config PRIVATE ${CMAKE_SOURCE_DIR}/include)
  target_compile_definitions(fuzz_config PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
      MBQ_VERSION="${PROJECT_VERSION}")
  target_link_libraries(fuzz_config PRIVATE PkgConfig::YAML PkgConfig::UUID Threads::Threads)
  target_compile_options(fuzz_config PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_config PRIVATE -fsanitize=fuzzer,address,undefined)
  add_test(NAME fuzz_config
           COMMAND sh -c "rm -rf fuzz_config_corpus && cp -r '${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/config' fuzz_config_corpus && exec '$<TARGET_FILE:fuzz_config>' -max_total_time=60 -timeout=10 -rss_limit_mb=2048 -dict='${CMAKE_CURRENT_SOURCE_DIR}/fuzz/config.dict' fuzz_config_corpus")
  set_tests_properties(fuzz_config PROPERTIES LABELS fuzz TIMEOUT 180)
endif()
