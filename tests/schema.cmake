# Schema monitoring end to end (issue 6): an ALTER TABLE in MariaDB between
# two syncs, then the target's schema, rows, journal events and exit code,
# against the real MariaDB and the emulator (plus a recording stand-in in
# front of it for what the emulator cannot do).
find_program(MBQ_PYTHON3 python3 REQUIRED)
mbq_add_test(NAME schema_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_schema.py
             LABELS schema SERVICES TIMEOUT 900)
