# Change data capture, the engine: journal writes, apply statements and the
# batch writer without servers; end to end against MariaDB's binlog and the
# emulator (snapshot hand-off, churn, deletes, kills, DDL, rotation, purge,
# SIGTERM, sync beside cdc).
mbq_add_test(NAME cdc_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cdc.c
             LABELS unit state cdc TIMEOUT 120)
find_program(MBQ_PYTHON3 python3 REQUIRED)
mbq_add_test(NAME cdc_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_cdc.py
             LABELS crash cdc SERVICES TIMEOUT 900)
