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
