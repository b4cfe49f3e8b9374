# Reliability proof (issue 8): faults and bad input. Each test
# prints its figures (README, "Reliability"). test_faults starts its own
# services (it restarts and stops them); the others use the shared ones.
find_program(MBQ_PYTHON3 python3 REQUIRED)
mbq_add_test(NAME faults_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_faults.py
             LABELS reliability SERVICES TIMEOUT 900)
mbq_add_test(NAME badinput_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_badinput.py
             LABELS reliability SERVICES TIMEOUT 600)
mbq_add_test(NAME security_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_security.py
             LABELS reliability SERVICES TIMEOUT 600)
