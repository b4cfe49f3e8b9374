# The binlog reader (change data capture): positions, events and the
# settings check, and every type decoded from row images compared with the
# snapshot path's NDJSON, against the real MariaDB of tools/services.sh.
mbq_add_test(NAME binlog SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog.c
             LABELS mysql SERVICES TIMEOUT 300)
mbq_add_test(NAME binlog_types SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_binlog_types.c
             LABELS mysql SERVICES TIMEOUT 300)
