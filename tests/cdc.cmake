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
# Tests that change the shared MariaDB's global binlog settings (the check's
# STATEMENT/MINIMAL cases, the reader's admin cases) must not run beside
# this one: a writer's session would log its rows as statements. They take
# the same lock.
set_tests_properties(cdc_e2e PROPERTIES RESOURCE_LOCK mbq_mariadb_binlog_settings)
function(mbq_cdc_binlog_settings_lock)
  foreach(t cdc_check_e2e binlog_admin)
    if(TEST ${t})
      set_tests_properties(${t} PROPERTIES RESOURCE_LOCK mbq_mariadb_binlog_settings)
    endif()
  endforeach()
endfunction()
cmake_language(DEFER CALL mbq_cdc_binlog_settings_lock)
