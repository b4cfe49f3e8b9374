mbq_add_test(NAME journal_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_journal.c
             LABELS unit state)
