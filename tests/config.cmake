# Config module: every kind of config error (line, column, key), ${VAR}
# substitution, defaults, enums, secrets kept out of messages, and every
# allocation failure of a parse (run under MBQ_SANITIZE for the leak check).
mbq_add_test(NAME config_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c
             LABELS unit state TIMEOUT 300)
