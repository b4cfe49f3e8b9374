#!/usr/bin/env bash
# Start and stop the real local services that mbq's integration tests, the
# benchmarks and the demo run against, each on 127.0.0.1, on free ports, in its
# own directory under DIR:
#
#   DIR/mysql/  MariaDB (mariadb-install-db + mariadbd --no-defaults)
#   DIR/bq/     goccy/bigquery-emulator v0.8.1 (tools/build-emulator.sh)
#   DIR/smtp/   an aiosmtpd sink (tools/smtp-sink.py) writing DIR/smtp/mail/<n>.eml
#   DIR/env     `export` lines with every address (see `usage` below)
#
# Usage:
#   services.sh start DIR          start all three (stops and wipes old ones in DIR first)
#   services.sh stop DIR           stop all three, wait until their processes are gone
#   services.sh env DIR            print DIR/env (eval "$(services.sh env DIR)")
#   services.sh status DIR         which services run
#   services.sh restart-mysql DIR  restart MariaDB: same port, socket, data
#   services.sh restart-bq DIR     restart the emulator: same ports, same database file
#   services.sh stop-mysql|start-mysql|stop-bq|start-bq DIR
#                                  take one service down / bring it back (outage tests)
#
# Environment: MBQ_SERVICES="mysql bq smtp" (the default) picks what `start`
# starts (the extraction benchmark needs only mysql); MBQ_MYSQL_BUFFER_POOL
# (default 64M) sizes InnoDB's buffer pool (benchmarks keep their tables in it).
#
# Every daemon runs in its own session (setsid), so its pid is also its process
# group id: `stop` kills the whole group (the emulator and mariadbd start no
# children today, but a group kill cannot miss one that a later version adds).
# Daemons get stdin from /dev/null and stdout/stderr into log files: ctest
# waits until every holder of a test's output pipe has closed it, so a daemon
# that inherited the pipe of `services.start` would hang the suite.
set -euo pipefail

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY=/usr/bin/python3 # Debian's python has python3-aiosmtpd; a pyenv python on PATH does not

MYSQL_ROOT_PASSWORD='mbq-root-pw'
MYSQL_RO_USER='mbq_reader'
MYSQL_RO_PASSWORD='mbq-reader-pw'
BQ_PROJECT='mbq-test'

die() {
    echo "services: $*" >&2
    exit 1
}

note() { echo "services: $*" >&2; }

# A port that is free on 127.0.0.1 now. Another process may take it before the
# daemon binds it; callers retry with a new port when the daemon then fails.
free_port() {
    "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# port_in_use PORT: is something listening on 127.0.0.1:PORT?
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive PID: the process exists and is not a zombie.
pid_alive() {
    local st
    [ -n "${1:-}" ] || return 1
    st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# group_alive PGID: some process of the group still exists (not a zombie).
group_alive() {
    local p
    for p in $(pgrep -g "$1" 2>/dev/null); do
        pid_alive "$p" && return 0
    done
    return 1
}

# kill_group NAME PIDFILE MARK: stop the process group whose leader's pid is in
# PIDFILE, but only if that leader's command line still names MARK (our
# directory), so that a stale pid file never kills an unrelated process that
# reused the pid. TERM first (mariadbd shuts down cleanly on it), KILL after
# 30 s; returns once no process of the group is left.
kill_group() {
    local name="$1" pidfile="$2" mark="$3" pid i
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] || { rm -f "$pidfile"; return 0; }
    if pid_alive "$pid"; then
        if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$mark"; then
            note "$name: pid $pid is no longer ours (stale pid file), not killing it"
            rm -f "$pidfile"
            return 0
        fi
    elif ! group_alive "$pid"; then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        group_alive "$pid" || break
        sleep 0.1
    done
    if group_alive "$pid"; then
        note "$name: still running 30 s after SIGTERM, sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            group_alive "$pid" || break
            sleep 0.1
        done
    fi
    # Reap it if it is our own child (start's cleanup path), quietly.
    wait "$pid" 2>/dev/null || true
    group_alive "$pid" && die "$name: process group $pid would not die"
    rm -f "$pidfile"
}

# spawn LOG PIDFILE CMD...: run CMD detached in its own session, stdin from
# /dev/null, output to LOG; writes its pid (= its process group id).
spawn() {
    local log="$1" pidfile="$2"
    shift 2
    # In a non-interactive shell a background child is not a group leader, so
    # setsid(1) calls setsid() itself without forking: $! is the daemon's pid.
    setsid "$@" </dev/null >>"$log" 2>&1 &
    echo "$!" >"$pidfile"
}

# ---------------------------------------------------------------- MariaDB --

mysql_init() {
    local d="$1/mysql"
    mkdir -p "$d/data" "$d/tmp"
    local user_opt=()
    [ "$(id -u)" = 0 ] && user_opt=(--user=root)
    # normal auth: root@localhost gets a password we set below (not unix_socket,
    # which would tie tests to the OS user); no test db, no anonymous users
    # (an anonymous ''@localhost would shadow mbq_reader@'%' for local logins;
    # 10.11's install-db has no switch for them, so they are dropped below).
    if ! mariadb-install-db --no-defaults --datadir="$d/data" "${user_opt[@]}" \
        --auth-root-authentication-method=normal --skip-test-db --skip-name-resolve \
        >"$d/install.log" 2>&1; then
        tail -n 30 "$d/install.log" >&2
        die "mysql: mariadb-install-db failed (log: $d/install.log)"
    fi
}

# mysql_spawn DIR PORT: start mariadbd and wait until it answers.
mysql_spawn() {
    local d="$1/mysql" port="$2" i
    local user_opt=()
    [ "$(id -u)" = 0 ] && user_opt=(--user=root)
    # Small buffers: many engineers and CI run this on 2-core machines.
    # utf8mb4 as server default, as most production servers are configured.
    # The binlog as change data capture needs it (ROW, full images, full
    # metadata), as production servers with replicas run; MBQ_MYSQL_BINLOG=0
    # turns it off. MBQ_MYSQL_BINLOG_SIZE makes files rotate sooner (tests).
    # No performance schema: tests do not need it and start faster.
    local binlog_opt=(--skip-log-bin)
    if [ "${MBQ_MYSQL_BINLOG:-1}" != 0 ]; then
        binlog_opt=(--log-bin="$d/data/mysql-bin" --server-id=1 --binlog-format=ROW
            --binlog-row-image=FULL --binlog-row-metadata=FULL --sync-binlog=0
            --max-binlog-size="${MBQ_MYSQL_BINLOG_SIZE:-1073741824}")
    fi
    spawn "$d/mariadbd.out" "$d/pid" mariadbd --no-defaults "${user_opt[@]}" \
        --datadir="$d/data" --tmpdir="$d/tmp" \
        --socket="$d/mysql.sock" --port="$port" --bind-address=127.0.0.1 \
        --pid-file="$d/mariadbd.pid" --log-error="$d/error.log" \
        --skip-name-resolve --performance-schema=OFF "${binlog_opt[@]}" \
        --innodb-buffer-pool-size="${MBQ_MYSQL_BUFFER_POOL:-64M}" --innodb-log-file-size=32M \
        --innodb-flush-log-at-trx-commit=2 --max-connections=200 \
        --key-buffer-size=4M --table-open-cache=400 \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
    local pid
    pid="$(cat "$d/pid")"
    for ((i = 0; i < 600; i++)); do
        if ! pid_alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            return 1
        fi
        if mariadb-admin --no-defaults --socket="$d/mysql.sock" --connect-timeout=2 \
            -uroot ${MYSQL_PW_SET:+-p"$MYSQL_ROOT_PASSWORD"} ping >/dev/null 2>&1; then
            echo "$port" >"$d/port"
            return 0
        fi
        sleep 0.1
    done
    note "mysql: mariadbd did not answer within 60 s"
    return 1
}

mysql_sql() {
    mariadb --no-defaults --socket="$1/mysql/mysql.sock" -uroot -p"$MYSQL_ROOT_PASSWORD" \
        --batch --skip-column-names -e "$2"
}

mysql_start() {
    local dir="$1" port attempt
    mysql_init "$dir"
    MYSQL_PW_SET=
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        if mysql_spawn "$dir" "$port"; then
            break
        fi
        kill_group mysql "$dir/mysql/pid" "$dir/mysql"
        if grep -qiE 'address already in use|Do you already have another' "$dir/mysql/error.log" 2>/dev/null; then
            note "mysql: port $port was taken, retrying (attempt $attempt)"
            : >"$dir/mysql/error.log"
            continue
        fi
        tail -n 30 "$dir/mysql/error.log" >&2 || true
        die "mysql: mariadbd failed to start (log: $dir/mysql/error.log)"
    done
    [ -f "$dir/mysql/port" ] || die "mysql: no free port after 5 attempts"
    # Root gets a password on every host it is defined for (the socket's
    # localhost and TCP's 127.0.0.1/::1, as --skip-name-resolve sees them).
    # mbq_reader may only SELECT: the tests use it to prove mbq needs no more,
    # and PROCESS (information_schema.INNODB_TRX) is deliberately not granted.
    mariadb --no-defaults --socket="$dir/mysql/mysql.sock" -uroot --batch <<SQL \
        || die "mysql: cannot set up users (log: $dir/mysql/error.log)"
DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'));
FLUSH PRIVILEGES;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'root'@'::1';
ALTER USER 'root'@'localhost' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
ALTER USER 'root'@'::1' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS '$MYSQL_RO_USER'@'%' IDENTIFIED BY '$MYSQL_RO_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_RO_USER'@'localhost' IDENTIFIED BY '$MYSQL_RO_PASSWORD';
GRANT SELECT ON *.* TO '$MYSQL_RO_USER'@'%';
GRANT SELECT ON *.* TO '$MYSQL_RO_USER'@'localhost';
FLUSH PRIVILEGES;
SQL
    MYSQL_PW_SET=1
    note "mysql: mariadbd pid $(cat "$dir/mysql/pid") on 127.0.0.1:$(cat "$dir/mysql/port")"
}

# Bring mariadbd back on its old port and data (after stop-mysql or a kill).
mysql_start_again() {
    local dir="$1" port
    [ -f "$dir/mysql/port" ] || die "mysql: $dir/mysql/port missing: run 'start' first"
    port="$(cat "$dir/mysql/port")"
    MYSQL_PW_SET=1
    mysql_spawn "$dir" "$port" || {
        kill_group mysql "$dir/mysql/pid" "$dir/mysql"
        tail -n 30 "$dir/mysql/error.log" >&2 || true
        die "mysql: mariadbd failed to restart on port $port"
    }
    note "mysql: mariadbd pid $(cat "$dir/mysql/pid") on 127.0.0.1:$port"
}

# ------------------------------------------------------- BigQuery emulator --

bq_spawn() {
    local d="$1/bq" port="$2" grpc="$3" bin="$4" i pid
    # MERGE jobs report numDmlAffectedRows / dmlStats as BigQuery's do (the
    # patch series makes that opt-in: counting costs the emulator about a
    # second MERGE; tools/emulator/README.md).
    BIGQUERY_EMULATOR_COUNT_MERGE=1 \
        spawn "$d/emulator.log" "$d/pid" "$bin" --project="$BQ_PROJECT" --host=127.0.0.1 \
        --port="$port" --grpc-port="$grpc" --database="$d/emulator.db" --log-level=info
    pid="$(cat "$d/pid")"
    for ((i = 0; i < 600; i++)); do
        if ! pid_alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            return 1
        fi
        if curl -fsS -o /dev/null --max-time 2 \
            "http://127.0.0.1:$port/bigquery/v2/projects/$BQ_PROJECT/datasets" 2>/dev/null; then
            # Someone else on the port would answer too; ours must still live.
            pid_alive "$pid" || return 1
            echo "$port" >"$d/port"
            echo "$grpc" >"$d/grpc_port"
            return 0
        fi
        sleep 0.1
    done
    note "bq: the emulator did not answer within 60 s"
    return 1
}

bq_binary() {
    local bin
    bin="$(bash "$SELF_DIR/build-emulator.sh")" || die "bq: tools/build-emulator.sh failed"
    [ -x "$bin" ] || die "bq: emulator binary '$bin' is not executable"
    echo "$bin"
}

bq_start() {
    local dir="$1" bin port grpc attempt
    bin="$(bq_binary)"
    mkdir -p "$dir/bq"
    echo "$bin" >"$dir/bq/binary"
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        grpc="$(free_port)"
        [ "$port" != "$grpc" ] || continue
        if bq_spawn "$dir" "$port" "$grpc" "$bin"; then
            note "bq: emulator pid $(cat "$dir/bq/pid") on 127.0.0.1:$port (grpc $grpc)"
            return 0
        fi
        kill_group bq "$dir/bq/pid" "$dir/bq"
        if grep -qiE 'address already in use' "$dir/bq/emulator.log" 2>/dev/null; then
            note "bq: port $port or $grpc was taken, retrying (attempt $attempt)"
            continue
        fi
        tail -n 30 "$dir/bq/emulator.log" >&2 || true
        die "bq: the emulator failed to start (log: $dir/bq/emulator.log)"
    done
    die "bq: no free port after 5 attempts"
}

bq_start_again() {
    local dir="$1"
    [ -f "$dir/bq/port" ] || die "bq: $dir/bq/port missing: run 'start' first"
    bq_spawn "$dir" "$(cat "$dir/bq/port")" "$(cat "$dir/bq/grpc_port")" "$(cat "$dir/bq/binary")" || {
        kill_group bq "$dir/bq/pid" "$dir/bq"
        tail -n 30 "$dir/bq/emulator.log" >&2 || true
        die "bq: the emulator failed to restart"
    }
    note "bq: emulator pid $(cat "$dir/bq/pid") on 127.0.0.1:$(cat "$dir/bq/port")"
}

# ------------------------------------------------------------------- SMTP --

smtp_start() {
    local dir="$1" d="$1/smtp" port attempt i pid
    mkdir -p "$d/mail"
    "$PY" -c 'import aiosmtpd' 2>/dev/null ||
        die "smtp: $PY cannot import aiosmtpd (apt-get install python3-aiosmtpd, or run tools/install-deps.sh)"
    # A self-signed certificate so that STARTTLS can be tested; the tests
    # trust it through MBQ_TEST_SMTP_CA. Cheap: well under a second.
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=localhost \
        -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
        -keyout "$d/key.pem" -out "$d/cert.pem" >"$d/openssl.log" 2>&1 ||
        die "smtp: openssl could not make a test certificate (log: $d/openssl.log)"
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        spawn "$d/smtp.log" "$d/pid" "$PY" "$SELF_DIR/smtp-sink.py" --host 127.0.0.1 \
            --port "$port" --maildir "$d/mail" --cert "$d/cert.pem" --key "$d/key.pem" \
            --ready-file "$d/ready"
        pid="$(cat "$d/pid")"
        for ((i = 0; i < 300; i++)); do
            [ -f "$d/ready" ] && break
            pid_alive "$pid" || break
            sleep 0.1
        done
        if [ -f "$d/ready" ] && pid_alive "$pid"; then
            echo "$port" >"$d/port"
            note "smtp: sink pid $pid on 127.0.0.1:$port, mail in $d/mail"
            return 0
        fi
        kill_group smtp "$d/pid" "$d"
        if grep -qiE 'address already in use' "$d/smtp.log" 2>/dev/null; then
            note "smtp: port $port was taken, retrying (attempt $attempt)"
            continue
        fi
        tail -n 30 "$d/smtp.log" >&2 || true
        die "smtp: the sink failed to start (log: $d/smtp.log)"
    done
    die "smtp: no free port after 5 attempts"
}

# -------------------------------------------------------------------- env --

# val FILE: its content, or nothing when a service is down (stop-mysql).
val() { cat "$1" 2>/dev/null || true; }

write_env() {
    local dir="$1"
    # Written to a temp name and renamed: a test never reads half a file.
    cat >"$dir/env.tmp" <<EOF
# Written by tools/services.sh start; source it (tests/with-services.sh does).
export MBQ_TEST_SERVICES_DIR='$dir'
export MBQ_TEST_MYSQL_HOST=127.0.0.1
export MBQ_TEST_MYSQL_PORT=$(val "$dir/mysql/port")
export MBQ_TEST_MYSQL_SOCKET='$dir/mysql/mysql.sock'
export MBQ_TEST_MYSQL_USER=root
export MBQ_TEST_MYSQL_PASSWORD='$MYSQL_ROOT_PASSWORD'
export MBQ_TEST_MYSQL_RO_USER='$MYSQL_RO_USER'
export MBQ_TEST_MYSQL_RO_PASSWORD='$MYSQL_RO_PASSWORD'
export MBQ_TEST_MYSQL_PID=$(val "$dir/mysql/pid")
export BIGQUERY_EMULATOR_HOST=127.0.0.1:$(val "$dir/bq/port")
export MBQ_TEST_BQ_ENDPOINT=http://127.0.0.1:$(val "$dir/bq/port")
export MBQ_TEST_BQ_PROJECT=$BQ_PROJECT
export MBQ_TEST_BQ_GRPC_PORT=$(val "$dir/bq/grpc_port")
export MBQ_TEST_BQ_PID=$(val "$dir/bq/pid")
export MBQ_TEST_SMTP_HOST=127.0.0.1
export MBQ_TEST_SMTP_PORT=$(val "$dir/smtp/port")
export MBQ_TEST_SMTP_MAILDIR='$dir/smtp/mail'
export MBQ_TEST_SMTP_CA='$dir/smtp/cert.pem'
export MBQ_TEST_SMTP_PID=$(val "$dir/smtp/pid")
EOF
    mv -f "$dir/env.tmp" "$dir/env"
}

# ------------------------------------------------------------- commands --

stop_all() {
    local dir="$1"
    # Reverse order of start; each is independent, so stop all even if one fails.
    local rc=0
    kill_group smtp "$dir/smtp/pid" "$dir/smtp" || rc=1
    kill_group bq "$dir/bq/pid" "$dir/bq" || rc=1
    kill_group mysql "$dir/mysql/pid" "$dir/mysql" || rc=1
    return $rc
}

cmd_start() {
    local dir="$1"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # A previous run's services in this DIR are stopped and their data wiped:
    # each suite gets fresh servers (the emulator slows as it accumulates data).
    stop_all "$dir"
    rm -rf "$dir/mysql" "$dir/bq" "$dir/smtp" "$dir/env" "$dir/env.tmp"

    # Whatever fails or interrupts us from here on, stop what we started:
    # the caller must never be left with half a set of orphan daemons.
    START_DIR="$dir"
    trap 'trap - EXIT; note "interrupted, stopping what was started"; stop_all "$START_DIR" || true; exit 130' INT TERM
    trap 'rc=$?; if [ $rc -ne 0 ]; then note "start failed, stopping what was started"; stop_all "$START_DIR" || true; fi' EXIT

    local want=" ${MBQ_SERVICES:-mysql bq smtp} "
    [[ $want == *" mysql "* ]] && mysql_start "$dir"
    [[ $want == *" bq "* ]] && bq_start "$dir"
    [[ $want == *" smtp "* ]] && smtp_start "$dir"
    write_env "$dir"
    trap - INT TERM EXIT
    note "ready: source $dir/env"
}

cmd_stop() {
    local dir="$1"
    [ -d "$dir" ] || return 0
    dir="$(cd "$dir" && pwd)"
    stop_all "$dir"
    rm -f "$dir/env"
    note "stopped"
}

cmd_status() {
    local dir s pid rc=0
    dir="$(cd "$1" && pwd)"
    for s in mysql bq smtp; do
        pid="$(cat "$dir/$s/pid" 2>/dev/null || true)"
        if [ -n "$pid" ] && pid_alive "$pid"; then
            echo "$s: running (pid $pid, port $(cat "$dir/$s/port" 2>/dev/null))"
        else
            echo "$s: stopped"
            rc=3
        fi
    done
    return $rc
}

# After a single-service restart the pids in DIR/env change.
refresh_env() { [ -f "$1/env" ] && write_env "$1" || true; }

main() {
    local cmd="${1:-}" dir="${2:-}"
    case "$cmd" in
    start | stop | env | status | restart-mysql | restart-bq | stop-mysql | start-mysql | stop-bq | start-bq) ;;
    -h | --help | help)
        sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        return 0
        ;;
    *) die "usage: services.sh start|stop|env|status|restart-mysql|restart-bq|stop-mysql|start-mysql|stop-bq|start-bq DIR" ;;
    esac
    [ -n "$dir" ] || die "$cmd: missing DIR"
    case "$cmd" in
    start) cmd_start "$dir" ;;
    stop) cmd_stop "$dir" ;;
    env)
        [ -f "$dir/env" ] || die "env: '$dir/env' not found: run 'services.sh start $dir' first"
        cat "$dir/env"
        ;;
    status) cmd_status "$dir" ;;
    *)
        [ -d "$dir" ] || die "$cmd: '$dir' not found: run 'services.sh start $dir' first"
        dir="$(cd "$dir" && pwd)"
        case "$cmd" in
        restart-mysql)
            kill_group mysql "$dir/mysql/pid" "$dir/mysql"
            mysql_start_again "$dir"
            ;;
        stop-mysql) kill_group mysql "$dir/mysql/pid" "$dir/mysql" ;;
        start-mysql) mysql_start_again "$dir" ;;
        restart-bq)
            kill_group bq "$dir/bq/pid" "$dir/bq"
            bq_start_again "$dir"
            ;;
        stop-bq) kill_group bq "$dir/bq/pid" "$dir/bq" ;;
        start-bq) bq_start_again "$dir" ;;
        esac
        refresh_env "$dir"
        ;;
    esac
}

main "$@"
