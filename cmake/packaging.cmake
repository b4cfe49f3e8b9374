# Installation of the operator files and the Debian package (CPack).
#
#   cmake -S . -B build-pkg -G Ninja -DCMAKE_BUILD_TYPE=Release -DMBQ_TESTS=OFF \
#         -DCMAKE_INSTALL_PREFIX=/usr
#   cmake --build build-pkg && (cd build-pkg && cpack -G DEB)   # mbq_<version>_amd64.deb
#
# or, without a package: cmake --install build-pkg --prefix /usr/local.
# The unit files name the installed binary, so configure with the prefix the
# files will live under (the package always uses CMAKE_INSTALL_PREFIX).
include(GNUInstallDirs)

set(MBQ_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(MBQ_DOCDIR ${CMAKE_INSTALL_FULL_DATAROOTDIR}/doc/mbq)
configure_file(${CMAKE_SOURCE_DIR}/dist/systemd/mbq.service.in
               ${CMAKE_BINARY_DIR}/dist/mbq.service @ONLY)
configure_file(${CMAKE_SOURCE_DIR}/dist/systemd/mbq-cdc.service.in
               ${CMAKE_BINARY_DIR}/dist/mbq-cdc.service @ONLY)

# systemd reads units from <prefix>/lib/systemd/system for /usr and
# /usr/local alike (systemd.unit(5), "System Unit Search Path").
install(FILES ${CMAKE_BINARY_DIR}/dist/mbq.service ${CMAKE_SOURCE_DIR}/dist/systemd/mbq.timer
        DESTINATION lib/systemd/system)
install(FILES ${CMAKE_BINARY_DIR}/dist/mbq-cdc.service DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/production.md
              ${CMAKE_SOURCE_DIR}/docs/configuration.md ${CMAKE_SOURCE_DIR}/docs/type-mapping.md
              ${CMAKE_SOURCE_DIR}/docs/cdc.md
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/mbq)
install(FILES ${CMAKE_SOURCE_DIR}/config/mbq.example.yml ${CMAKE_SOURCE_DIR}/dist/cron/mbq.crontab
              ${CMAKE_SOURCE_DIR}/dist/mbq.production.yml
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/mbq/examples)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mbq)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mbq maintainers <mbq@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "keeps BigQuery tables in step with MySQL/MariaDB tables")
set(CPACK_PACKAGE_DESCRIPTION
    "mbq syncs MySQL/MariaDB tables into Google BigQuery incrementally (by cursor, MERGE\nby primary key) with a crash-safe local journal. Ships a systemd service and timer.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# mbq_<version>_<arch>.deb, Debian's own naming.
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
# Depends: from the shared libraries the binaries link (dpkg-shlibdeps, in
# dpkg-dev), so the list always matches what was built against.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: the postinst creates the system user the service runs as;
# ca-certificates: HTTPS to BigQuery and Google's token endpoint verifies
# against the system's CAs (no shared library says so).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, ca-certificates")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd | cron")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/dist/deb/postinst ${CMAKE_SOURCE_DIR}/dist/deb/prerm
    ${CMAKE_SOURCE_DIR}/dist/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
