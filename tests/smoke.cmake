# Smoke tests: each proves one of the services that tools/services.sh starts is
# real (MariaDB through libmariadb, the BigQuery emulator through the REST API,
# the SMTP sink through libcurl's SMTP). Each works in its own database,
# dataset or mail subject, so they run in parallel with the rest of the suite.
mbq_add_test(NAME smoke_mysql SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_smoke_mysql.c
             LABELS smoke mysql SERVICES TIMEOUT 120)
mbq_add_test(NAME smoke_bq SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_smoke_bq.c
             LABELS smoke bigquery SERVICES TIMEOUT 120)
mbq_add_test(NAME smoke_smtp SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_smoke_smtp.c
             LABELS smoke alerts SERVICES TIMEOUT 120)
