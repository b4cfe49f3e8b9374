#!/usr/bin/env bash
# The programs' dispatch: --help and --version exit 0, an unknown command or
# none at all is a usage error (2), each subcommand answers --help.
set -u
pass=0; fail=0
t() { # name, expected exit code, command...
    local name="$1" want="$2"; shift 2
    "$@" >/tmp/mbq-cli-$$.out 2>&1; local got=$?
    if [ "$got" = "$want" ]; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name: exit $got, expected $want"; cat /tmp/mbq-cli-$$.out; fi
}
has() { # name, pattern, command...
    local name="$1" pat="$2"; shift 2
    if "$@" 2>&1 | grep -q -- "$pat"; then pass=$((pass + 1)); echo "ok   $name"
    else fail=$((fail + 1)); echo "FAIL $name: output lacks '$pat'"; fi
}
t mbq_help 0 "$MBQ_BIN" --help
t mbq_version 0 "$MBQ_BIN" --version
has mbq_version_text "mbq [0-9]" "$MBQ_BIN" --version
t mbq_no_command 2 "$MBQ_BIN"
t mbq_unknown_command 2 "$MBQ_BIN" frobnicate
has mbq_unknown_named "unknown command 'frobnicate'" "$MBQ_BIN" frobnicate
for c in sync check extract; do t "mbq_${c}_help" 0 "$MBQ_BIN" "$c" --help; done
t mbq_sync_bad_option 2 "$MBQ_BIN" sync --no-such-option
t state_help 0 "$MBQ_STATE_BIN" --help
t state_version 0 "$MBQ_STATE_BIN" --version
for c in inspect reset; do t "state_${c}_help" 0 "$MBQ_STATE_BIN" "$c" --help; done
t state_reset_needs_one_action 2 "$MBQ_STATE_BIN" reset t
t sync_missing_config 2 "$MBQ_BIN" sync --config /nonexistent/mbq.yml
has sync_missing_config_named "/nonexistent/mbq.yml" "$MBQ_BIN" sync --config /nonexistent/mbq.yml
rm -f /tmp/mbq-cli-$$.out
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]  # a run of no case proved nothing
