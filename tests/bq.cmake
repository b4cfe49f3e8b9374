# BigQuery client (issue 3): pure parts (unit), against local stand-ins that
# answer as BigQuery's and Google's token endpoint's documentation says
# (bq_standin: what the emulator lacks, see ../shared/EMULATOR.md), and
# against the emulator (bq_emulator, SERVICES).
mbq_add_test(NAME bq_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_bq_unit.c LABELS unit)
mbq_add_test(NAME bq_standin SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_bq_standin.c
             LABELS bigquery standin TIMEOUT 180)
mbq_add_test(NAME bq_emulator SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_bq_emulator.c
             LABELS bigquery SERVICES TIMEOUT 600)
