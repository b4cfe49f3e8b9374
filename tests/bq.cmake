# BigQuery client (issue 3): pure parts (unit), against local stand-ins that
# answer as BigQuery's and Google's token endpoint's documentation says
# (bq_standin: what the emulator lacks, see ../shared/EMULATOR.md), and
# against the emulator (bq_emulator, SERVICES).
mbq_add_test(NAME bq_unit SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_bq_unit.c LABELS unit)
mbq_add_test(NAME bq_standin SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_bq_standin.c
             LABELS bigquery standin TIMEOUT 180)
mbq_add_test(NAME bq_emulator SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_bq_emulator.c
             LABELS bigquery SERVICES TIMEOUT 600)

# The HTTP client over TLS and HTTP/2 (what BigQuery itself speaks) against
# tests/standins/h2server, a Go net/http server built here when Go is found
# (it is on CI machines: the emulator is built with it).
find_program(MBQ_GO go PATHS /usr/local/go/bin)
if(MBQ_GO)
  set(MBQ_H2SERVER ${CMAKE_BINARY_DIR}/h2server)
  add_custom_command(OUTPUT ${MBQ_H2SERVER}
    COMMAND ${CMAKE_COMMAND} -E env GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
            ${MBQ_GO} build -o ${MBQ_H2SERVER} .
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/standins/h2server
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/standins/h2server/main.go
            ${CMAKE_CURRENT_SOURCE_DIR}/standins/h2server/go.mod
    COMMENT "Building the HTTP/2 test server (Go)")
  add_custom_target(h2server ALL DEPENDS ${MBQ_H2SERVER})
else()
  set(MBQ_H2SERVER ${CMAKE_BINARY_DIR}/h2server-not-built)
endif()
mbq_add_test(NAME http_tls SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_http_tls.c
             LABELS bigquery ARGS ${MBQ_H2SERVER} TIMEOUT 120)
