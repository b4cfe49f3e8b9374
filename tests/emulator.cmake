# The BigQuery emulator's patch series (tools/emulator/patches, applied by
# tools/build-emulator.sh): the Go tests that the patches add, run in the
# patched source tree kept beside the cached binary. Each proves one place
# where the patched emulator answers as BigQuery does and v0.8.1 did not.
mbq_add_test(NAME emulator_patches SCRIPT ${CMAKE_SOURCE_DIR}/tools/emulator/test-patches.sh
             LABELS emulator TIMEOUT 900)
