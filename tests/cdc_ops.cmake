# Change data capture, the operator's side: the `cdc:` section and
# `mode: cdc` in the config.
mbq_add_test(NAME config_cdc_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config_cdc.c
             LABELS unit state cdc TIMEOUT 120)
# Journal reads, inspect, reset, the dashboard and /metrics for cdc tables,
# on a journal filled with SQL.
mbq_add_test(NAME cdc_ops_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cdc_ops.c
             LABELS unit state server cdc TIMEOUT 120)
# `mbq check` with cdc tables against the test MariaDB: each failing binlog
# setting and the missing replication privilege named, a pass when all hold.
find_program(MBQ_PYTHON3 python3 REQUIRED)
mbq_add_test(NAME cdc_check_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_cdc_check.py
             LABELS cdc SERVICES TIMEOUT 600)
# It changes the server's global binlog settings for a moment: nothing else
# may run against the same MariaDB meanwhile.
set_tests_properties(cdc_check_e2e PROPERTIES RUN_SERIAL TRUE)
