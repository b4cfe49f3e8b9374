# libFuzzer harnesses (issue 8). Only with -DMBQ_FUZZ=ON and clang:
#   CC=clang cmake -S . -B build-fuzz -G Ninja -DMBQ_FUZZ=ON -DMBQ_SANITIZE=ON
#   ninja -C build-fuzz fuzz_config fuzz_bq_json fuzz_encoder fuzz_binlog
#   (cd build-fuzz && ctest -L fuzz)
# Each runs for 60 s on a copy of its seed corpus (tests/fuzz/corpus/<name>)
# and fails on any crash, leak or sanitizer report. tools/test.sh does this.
if(MBQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MBQ_FUZZ needs clang (CC=clang)")
  endif()

  # mbq_add_fuzzer(NAME n CORPUS dir SOURCES src/x.c... LIBS targets... [DICT file])
  # The code under test and the core it uses are compiled into the harness
  # itself: mbqcore is built without coverage instrumentation, and libFuzzer
  # is blind to code it cannot see.
  function(mbq_add_fuzzer)
    cmake_parse_arguments(F "" "NAME;CORPUS;DICT" "SOURCES;LIBS" ${ARGN})
    set(core src/util/error.c src/util/buf.c src/util/log.c src/util/util.c)
    list(TRANSFORM core PREPEND ${CMAKE_SOURCE_DIR}/)
    list(TRANSFORM F_SOURCES PREPEND ${CMAKE_SOURCE_DIR}/)
    add_executable(${F_NAME} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${F_NAME}.c ${F_SOURCES} ${core})
    target_include_directories(${F_NAME} PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
    target_compile_definitions(${F_NAME} PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
        MBQ_VERSION="${PROJECT_VERSION}")
    # util.c checksums files (OpenSSL SHA-256 through zlib's gzread)
    target_link_libraries(${F_NAME} PRIVATE ${F_LIBS} PkgConfig::UUID OpenSSL::Crypto ZLIB::ZLIB
                          Threads::Threads)
    target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer,address,undefined)
    set(dict "")
    if(F_DICT)
      set(dict "-dict='${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${F_DICT}'")
    endif()
    set(corpus ${F_NAME}_corpus)
    add_test(NAME ${F_NAME}
             COMMAND sh -c "rm -rf ${corpus} && cp -r '${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${F_CORPUS}' ${corpus} && exec '$<TARGET_FILE:${F_NAME}>' -max_total_time=60 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 ${dict} ${corpus}")
    set_tests_properties(${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 180)
  endfunction()

  # the config parser: every file of src/config/ (a new section file must
  # not break the harness's link)
  file(GLOB config_sources RELATIVE ${CMAKE_SOURCE_DIR} CONFIGURE_DEPENDS
       ${CMAKE_SOURCE_DIR}/src/config/*.c)
  mbq_add_fuzzer(NAME fuzz_config CORPUS config DICT config.dict
                 SOURCES ${config_sources} LIBS PkgConfig::YAML)
  # BigQuery's JSON responses: errors, schemas, jobs, tables
  mbq_add_fuzzer(NAME fuzz_bq_json CORPUS bq_json SOURCES src/bigquery/bq_json.c LIBS PkgConfig::JSONC)
  # the row encoder (mbq_typemap_encode, mbq_buf_json_string), output checked with json-c
  mbq_add_fuzzer(NAME fuzz_encoder CORPUS encoder SOURCES src/mysql/typemap.c LIBS PkgConfig::JSONC)
  # the binlog reader's decoders: TABLE_MAP metadata and row images, from bytes
  # the source sends (binlog_text.c's charset loader needs libmariadb to link)
  mbq_add_fuzzer(NAME fuzz_binlog CORPUS binlog
                 SOURCES src/mysql/binlog_tablemap.c src/mysql/binlog_rows.c
                         src/mysql/binlog_text.c src/mysql/binlog_wkb.c
                 LIBS PkgConfig::MARIADB)
endif()
