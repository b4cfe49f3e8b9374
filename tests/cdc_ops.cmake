# Change data capture, the operator's side: the `cdc:` section and
# `mode: cdc` in the config.
mbq_add_test(NAME config_cdc_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config_cdc.c
             LABELS unit state cdc TIMEOUT 120)
# Journal reads, inspect, reset, the dashboard and /metrics for cdc tables,
# on a journal filled with SQL.
mbq_add_test(NAME cdc_ops_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_cdc_ops.c
             LABELS unit state server cdc TIMEOUT 120)
