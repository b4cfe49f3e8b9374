# Application Default Credentials (mbq/credentials.h) against
# tests/standins/google_auth_standin.py: OAuth token endpoint, STS, IAM
# Credentials and the metadata server on loopback.
mbq_add_test(NAME auth_standin SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_auth_standin.c
             LABELS bigquery standin TIMEOUT 180)
