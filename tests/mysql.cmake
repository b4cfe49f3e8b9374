# MySQL source and type mapping (issue 4): unit tests of the mapping, and
# integration tests against the real MariaDB of tools/services.sh.
mbq_add_test(NAME typemap_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_typemap.c LABELS unit)
mbq_add_test(NAME mysql_types SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_mysql_types.c
             LABELS mysql SERVICES TIMEOUT 300)
mbq_add_test(NAME mysql_window SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_mysql_window.c
             LABELS mysql SERVICES TIMEOUT 300)
mbq_add_test(NAME mysql_errors SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_mysql_errors.c
             LABELS mysql SERVICES TIMEOUT 300)
mbq_add_test(NAME mysql_extract_cli SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_mysql_extract_cli.sh
             LABELS mysql SERVICES TIMEOUT 300)
# Chunked backfills: key-range chunk boundaries against the real MariaDB.
mbq_add_test(NAME chunks SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_chunks.c
             LABELS mysql SERVICES TIMEOUT 300)
