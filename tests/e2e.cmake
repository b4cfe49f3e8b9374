# End-to-end tests of the programs against the real services (Python, stdlib
# only). Each works in its own database and dataset.
find_program(MBQ_PYTHON3 python3 REQUIRED)
mbq_add_test(NAME sync_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_sync.py
             LABELS state SERVICES TIMEOUT 600)
mbq_add_test(NAME crash_resume_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_crash.py
             LABELS crash SERVICES TIMEOUT 900)
mbq_add_test(NAME alerts_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_alerts.py
             LABELS alerts SERVICES TIMEOUT 600)
mbq_add_test(NAME limits_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_limits.py
             LABELS state SERVICES TIMEOUT 600)
mbq_add_test(NAME resume_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_resume.py
             LABELS crash SERVICES TIMEOUT 900)
# Kills at random instants under churn (journal commit and running jobs
# included), and what a cursor guarantees about late commits and DST.
mbq_add_test(NAME random_kills_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_random_kills.py
             LABELS crash SERVICES TIMEOUT 600)
mbq_add_test(NAME late_commits_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_late_commits.py
             LABELS crash SERVICES TIMEOUT 300)
# What real BigQuery does that the emulator hides: job failures on
# BigQuery's side, metadata kept by full refreshes and rebuilds, clustering
# by mapped names (a recording stand-in in front of the emulator).
mbq_add_test(NAME bq_fidelity_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_bq_fidelity.py
             LABELS bigquery SERVICES TIMEOUT 900)
# Chunked backfills: first syncs and full refreshes in key-range chunks,
# killed at every chunk state, with writes during the backfill.
mbq_add_test(NAME backfill_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_backfill.py
             LABELS crash SERVICES TIMEOUT 900)
# Deletes reach BigQuery: reconciliation (hard, soft, guard, dry run, kills).
mbq_add_test(NAME deletes_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_deletes.py
             LABELS state SERVICES TIMEOUT 1800)
