# Streaming extract + load (issue 11): the bounded pipe alone (unit), and the
# pipeline against MariaDB, the emulator and a local server that cuts or
# watches the upload request (SERVICES).
mbq_add_test(NAME pipeline_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pipeline_unit.c
             LABELS unit)
mbq_add_test(NAME pipeline SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pipeline.c
             LABELS bigquery mysql SERVICES TIMEOUT 600)
