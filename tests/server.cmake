# The monitoring dashboard (mbq-state serve): renderers on hostile journal
# content, the HTTP server's limits and auth, and the end-to-end tests
# against real syncs, including a real browser.
mbq_add_test(NAME server_render_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_server_render.c
             LABELS unit server)
mbq_add_test(NAME server_http_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_server_http.c
             LABELS unit server)
find_program(MBQ_PYTHON3_SERVE python3 REQUIRED)
mbq_add_test(NAME dashboard_e2e SCRIPT ${MBQ_PYTHON3_SERVE}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_dashboard.py
             LABELS server SERVICES TIMEOUT 900)
# Headless chromium through the pinned selenium (tools/browser-venv.sh).
mbq_add_test(NAME dashboard_browser_e2e SCRIPT ${MBQ_PYTHON3_SERVE}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_dashboard_browser.py
             LABELS server SERVICES TIMEOUT 600)
