# The binlog reader (change data capture): positions, events and the
# settings check, and every type decoded from row images compared with the
# snapshot path's NDJSON, against the real MariaDB of tools/services.sh.
# The tests against the server run alone (RUN_SERIAL): DDL and COMMITs of
# other tests reach every binlog reader, a busy server sends no heartbeats,
# and binlog_admin changes the server (SET GLOBAL, PURGE BINARY LOGS, a
# restart). Each takes a few seconds.
mbq_add_test(NAME binlog SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog.c
             LABELS mysql SERVICES TIMEOUT 300)
mbq_add_test(NAME binlog_types SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_types.c
             LABELS mysql SERVICES TIMEOUT 300)
mbq_add_test(NAME binlog_admin SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_admin.c
             LABELS mysql SERVICES TIMEOUT 300)
# Client CPU per row: binlog decode + encode against the snapshot path's extract.
mbq_add_test(NAME binlog_speed SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_speed.c
             LABELS mysql SERVICES TIMEOUT 600)
set_tests_properties(binlog binlog_types binlog_admin binlog_speed PROPERTIES RUN_SERIAL TRUE)
# The decoders alone: value texts, hand-built events, truncations, corruption.
mbq_add_test(NAME binlog_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_unit.c LABELS unit)
