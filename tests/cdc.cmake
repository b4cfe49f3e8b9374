# Change data capture, the engine: journal writes, apply statements and the
# batch writer without servers; end to end against MariaDB's binlog and the
# emulator (snapshot hand-off, churn, deletes, kills, DDL, rotation, purge,
# SIGTERM, sync beside cdc).
mbq_add_test(NAME cdc_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cdc.c
             LABELS unit state cdc TIMEOUT 120)
