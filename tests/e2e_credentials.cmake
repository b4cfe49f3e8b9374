# mbq check and mbq sync through each Application Default Credentials
# source (authorized_user, external_account with impersonation, the metadata
# server), with the Google auth stand-in and bq_front.py in front of the
# emulator. After e2e.cmake (name order), which defines MBQ_PYTHON3.
mbq_add_test(NAME credentials_e2e SCRIPT ${MBQ_PYTHON3}
             ARGS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_credentials.py
             LABELS bigquery SERVICES TIMEOUT 900)
