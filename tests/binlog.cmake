# The binlog reader (change data capture): positions, events and the
# settings check, and every type decoded from row images compared with the
# snapshot path's NDJSON, against the real MariaDB of tools/services.sh.
mbq_add_test(NAME binlog SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog.c
             LABELS mysql SERVICES TIMEOUT 300)
mbq_add_test(NAME binlog_types SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_types.c
             LABELS mysql SERVICES TIMEOUT 300)
# Changes the server for every test (SET GLOBAL, PURGE BINARY LOGS, a
# restart): alone.
mbq_add_test(NAME binlog_admin SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_admin.c
             LABELS mysql SERVICES TIMEOUT 300)
set_tests_properties(binlog_admin PROPERTIES RUN_SERIAL TRUE)
# Client CPU per row: binlog decode + encode against the snapshot path's extract.
mbq_add_test(NAME binlog_speed SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_speed.c
             LABELS mysql SERVICES TIMEOUT 600)
# The decoders alone: value texts, hand-built events, truncations, corruption.
mbq_add_test(NAME binlog_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_unit.c LABELS unit)
