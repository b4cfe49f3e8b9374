# Self-test of tools/faultproxy.py (the TCP fault proxy the reliability tests
# put in front of the emulator and MariaDB): pass, refuse, cut in both
# directions, stall, delay and complete, against tiny local servers.
mbq_add_test(NAME faultproxy_self SCRIPT ${CMAKE_CURRENT_SOURCE_DIR}/test_faultproxy.py
             LABELS unit TIMEOUT 120)
