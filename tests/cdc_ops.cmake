# Change data capture, the operator's side: the `cdc:` section and
# `mode: cdc` in the config.
mbq_add_test(NAME config_cdc_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config_cdc.c
             LABELS unit state cdc TIMEOUT 120)
