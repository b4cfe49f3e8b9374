# Operators: run-level alerts and metrics, table discovery, the shipped
# systemd units, and the Debian package installed and run.
find_program(MBQ_PYTHON3 python3 REQUIRED)
mbq_add_test(NAME runlevel_alerts_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_runlevel_alerts.py
             LABELS alerts SERVICES TIMEOUT 600)
mbq_add_test(NAME discovery_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_discovery.py
             LABELS state SERVICES TIMEOUT 600)
# systemd-analyze verify / security --offline on the units as installed.
mbq_add_test(NAME units_verify SCRIPT bash
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/test_units.sh
             LABELS unit TIMEOUT 120)
# Builds a Release .deb with CPack, installs it (dpkg -i as root), runs
# `mbq --version` and `mbq check` from it against the services, removes it.
mbq_add_test(NAME package_deb SCRIPT bash
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/test_package.sh
             LABELS package SERVICES TIMEOUT 1200)
mbq_add_test(NAME discover_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_discover_unit.c
             LABELS unit)
