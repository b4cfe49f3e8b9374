#!/bin/bash
# The shipped systemd units verify, offline, as they are installed: the
# service with its ExecStart pointing at the built binary (systemd-analyze
# checks that the command exists and is executable), the timer next to it.
# Then the hardening exposure score (systemd-analyze security --offline),
# which must stay "OK" (at most 2.0 of 10). Any diagnostic fails the test,
# warnings included (an unknown key is only a warning to systemd and would
# silently do nothing).
set -euo pipefail
src=${MBQ_SOURCE_DIR:?}
bin=${MBQ_BIN:?}
if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze not installed (Debian package systemd)"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The unit as cmake --install writes it, for a prefix holding the built mbq.
sed -e "s|@MBQ_BINDIR@|$(dirname "$bin")|" -e "s|@MBQ_DOCDIR@|/usr/share/doc/mbq|" \
    "$src/dist/systemd/mbq.service.in" > "$work/mbq.service"
cp "$src/dist/systemd/mbq.timer" "$work/mbq.timer"

verify() { # file... ; prints diagnostics, fails on any
    # --man=no: no man pages in a container; --generators=no: no system
    # generators run (they need a booted systemd). Both make it offline.
    local out
    out=$(cd "$work" && systemd-analyze verify --man=no --generators=no "$@" 2>&1) || {
        echo "$out"; return 1; }
    if [ -n "$out" ]; then echo "$out"; return 1; fi
}

verify ./mbq.service ./mbq.timer
echo "ok   systemd-analyze verify mbq.service mbq.timer: no diagnostics"

# The check catches what it should: a unit with an unknown key.
sed 's/^NoNewPrivileges=yes/NoNewPrivilege=yes/' "$work/mbq.service" > "$work/bad.service"
if verify ./bad.service >/dev/null 2>&1; then
    echo "FAIL: verify did not flag an unknown key"; exit 1
fi
rm "$work/bad.service"
echo "ok   a misspelt key is flagged"

grep -q '^SuccessExitStatus=75$' "$work/mbq.service" || { echo "FAIL: 75 must not fail the unit"; exit 1; }
for key in '^User=mbq$' '^ProtectSystem=strict$' '^StateDirectory=mbq$' '^NoNewPrivileges=yes$' \
           '^PrivateTmp=yes$' '^ProtectHome=yes$' '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$'; do
    grep -q "$key" "$work/mbq.service" || { echo "FAIL: mbq.service lacks $key"; exit 1; }
done
echo "ok   exit 75 is success; the hardening keys are set"

out=$(cd "$work" && systemd-analyze security --offline=true --man=no --threshold=20 ./mbq.service 2>&1) || {
    echo "$out" | tail -20; echo "FAIL: exposure above 2.0"; exit 1; }
score=$(echo "$out" | sed -n 's/.*Overall exposure level for mbq.service: \([0-9.]*\).*/\1/p')
echo "ok   systemd-analyze security --offline: exposure $score (threshold 2.0)"
echo "FIGURE unit_exposure=$score"

# The binlog follower's unit: long-running, restarted on failure (but not
# for a config error), stopped with SIGTERM and time to finish a MERGE,
# hardened as mbq.service.
sed -e "s|@MBQ_BINDIR@|$(dirname "$bin")|" -e "s|@MBQ_DOCDIR@|/usr/share/doc/mbq|" \
    "$src/dist/systemd/mbq-cdc.service.in" > "$work/mbq-cdc.service"
verify ./mbq-cdc.service
echo "ok   systemd-analyze verify mbq-cdc.service: no diagnostics"
for key in '^Type=simple$' '^Restart=on-failure$' '^KillSignal=SIGTERM$' '^TimeoutStopSec=10min$' \
           '^RestartPreventExitStatus=2$' '^StartLimitIntervalSec=0$' '^ExecStart=.*/mbq cdc --config ' \
           '^User=mbq$' '^ProtectSystem=strict$' '^StateDirectory=mbq$' '^NoNewPrivileges=yes$' \
           '^PrivateTmp=yes$' '^ProtectHome=yes$' '^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$'; do
    grep -q "$key" "$work/mbq-cdc.service" || { echo "FAIL: mbq-cdc.service lacks $key"; exit 1; }
done
echo "ok   mbq-cdc.service: simple, restarted on failure, SIGTERM, hardened"
out=$(cd "$work" && systemd-analyze security --offline=true --man=no --threshold=20 ./mbq-cdc.service 2>&1) || {
    echo "$out" | tail -20; echo "FAIL: mbq-cdc.service exposure above 2.0"; exit 1; }
score=$(echo "$out" | sed -n 's/.*Overall exposure level for mbq-cdc.service: \([0-9.]*\).*/\1/p')
echo "ok   systemd-analyze security --offline mbq-cdc.service: exposure $score (threshold 2.0)"
echo "FIGURE cdc_unit_exposure=$score"
