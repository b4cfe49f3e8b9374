mbq_add_test(NAME core_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_core.c LABELS unit)
mbq_add_test(NAME cli_unit SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.sh LABELS unit)
mbq_add_test(NAME split_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_split.c LABELS unit)
mbq_add_test(NAME reconcile_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_reconcile.c LABELS unit)
