# The end-to-end run on production settings (gzip, chunked resumable uploads,
# OAuth, HTTPS with verification) through tests/standins/bq_front.py in front
# of the emulator. Its own file: tests/e2e.cmake defines MBQ_PYTHON3 (the
# modules are included in name order).
mbq_add_test(NAME production_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_production.py
             LABELS bigquery SERVICES TIMEOUT 900)
