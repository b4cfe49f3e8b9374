#!/bin/bash
# The Debian package as an operator gets it: a Release build packaged by
# CPack (mbq_<version>_amd64.deb), its Depends computed by dpkg-shlibdeps,
# installed with `dpkg -i` (as root, which CI is; otherwise extracted with
# dpkg-deb -x and run from there, and the output says so), then
# `mbq --version` and `mbq check` run from the installed files against the
# test services, the installed unit verified, and the package purged so the
# machine is left as it was.
set -euo pipefail
src=${MBQ_SOURCE_DIR:?}
build=${MBQ_BUILD_DIR:?}/pkg
: "${MBQ_TEST_MYSQL_PORT:?run under the services harness}"

for tool in cpack dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool missing (dpkg-dev, cmake)"; exit 77; }
done

echo "== configure and build (Release, prefix /usr) in $build"
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMBQ_TESTS=OFF \
    -DCMAKE_INSTALL_PREFIX=/usr >"$build.log" 2>&1 || { cat "$build.log"; exit 1; }
nice cmake --build "$build" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
(cd "$build" && rm -f ./*.deb && cpack -G DEB >>"$build.log" 2>&1) || { tail -50 "$build.log"; exit 1; }

version=$(sed -n 's/^project(mbq VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
arch=$(dpkg --print-architecture)
deb="$build/mbq_${version}_${arch}.deb"
[ -f "$deb" ] || { echo "FAIL: no $deb ($(ls "$build"/*.deb 2>/dev/null))"; exit 1; }
echo "ok   built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

depends=$(dpkg-deb -f "$deb" Depends)
echo "     Depends: $depends"
# Every package of tools/runtime-deps.txt (the shared libraries, found by
# dpkg-shlibdeps, and ca-certificates), and adduser for the postinst.
for lib in $(grep -v '^#' "$src/tools/runtime-deps.txt") adduser; do
    case ", $depends," in
        *", $lib "*|*", $lib,"*) ;;
        *) echo "FAIL: Depends lacks $lib"; exit 1 ;;
    esac
done
case "$depends" in *asan*|*ubsan*) echo "FAIL: a sanitizer runtime in Depends"; exit 1 ;; esac
echo "ok   Depends names every package of tools/runtime-deps.txt (shared libraries by dpkg-shlibdeps)"

contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/mbq ./usr/bin/mbq-state ./usr/lib/systemd/system/mbq.service \
         ./usr/lib/systemd/system/mbq.timer ./usr/share/doc/mbq/production.md \
         ./usr/share/doc/mbq/examples/mbq.production.yml ./usr/share/doc/mbq/examples/mbq.crontab; do
    grep -q " $f\$" <<<"$contents" || { echo "FAIL: $f not in the package"; exit 1; }
done
if grep -q '/usr/local\|/work/' <<<"$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/mbq.service)"; then
    echo "FAIL: the packaged unit names a build path"; exit 1
fi
echo "ok   binaries, units, docs and examples in the package"

# A database and config for `mbq check`, as a new user would write them.
work=$(mktemp -d)
db="pkg_check_$$"
cleanup() {
    if [ -n "${installed:-}" ]; then
        dpkg --purge mbq >/dev/null 2>&1 || true
        if [ -z "${had_user:-}" ] && getent passwd mbq >/dev/null; then
            deluser --system mbq >/dev/null 2>&1 || true
        fi
        getent group mbq >/dev/null && [ -z "${had_user:-}" ] && delgroup --system mbq >/dev/null 2>&1 || true
    fi
    mariadb -h "$MBQ_TEST_MYSQL_HOST" -P "$MBQ_TEST_MYSQL_PORT" -u root -p"$MBQ_TEST_MYSQL_PASSWORD" \
        -e "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
mariadb -h "$MBQ_TEST_MYSQL_HOST" -P "$MBQ_TEST_MYSQL_PORT" -u root -p"$MBQ_TEST_MYSQL_PASSWORD" -e "
    CREATE DATABASE $db; USE $db;
    CREATE TABLE orders (id INT PRIMARY KEY, updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
    CREATE TABLE nokey (x INT);"
cat >"$work/mbq.yml" <<EOF
tables:
  - discover: true
mysql:
  host: 127.0.0.1
  port: $MBQ_TEST_MYSQL_PORT
  user: $MBQ_TEST_MYSQL_RO_USER
  password: \${MBQ_PKG_PW}
  database: $db
bigquery:
  endpoint: $MBQ_TEST_BQ_ENDPOINT
  project_id: ${MBQ_TEST_BQ_PROJECT:-mbq-test}
  dataset: pkg_check
state:
  dir: $work/state
EOF
export MBQ_PKG_PW="$MBQ_TEST_MYSQL_RO_PASSWORD"

if [ "$(id -u)" = 0 ] && ! dpkg -s mbq >/dev/null 2>&1; then
    getent passwd mbq >/dev/null && had_user=1
    echo "== installing with dpkg -i (running as root)"
    installed=1
    dpkg -i "$deb"
    bin=/usr/bin
    getent passwd mbq >/dev/null || { echo "FAIL: postinst did not create the mbq user"; exit 1; }
    [ "$(stat -c '%U:%G %a' /etc/mbq)" = "root:mbq 750" ] || { echo "FAIL: /etc/mbq $(stat -c '%U:%G %a' /etc/mbq)"; exit 1; }
    echo "ok   installed; user mbq and /etc/mbq (root:mbq 750) created"
    out=$(systemd-analyze verify --man=no --generators=no /usr/lib/systemd/system/mbq.service \
          /usr/lib/systemd/system/mbq.timer 2>&1) || { echo "$out"; exit 1; }
    [ -z "$out" ] || { echo "$out"; echo "FAIL: installed units have diagnostics"; exit 1; }
    echo "ok   systemd-analyze verify of the installed units"
else
    echo "== not root (or an mbq package is installed already): extracting with dpkg-deb -x instead of installing"
    dpkg-deb -x "$deb" "$work/root"
    bin="$work/root/usr/bin"
fi

"$bin/mbq" --version | tee "$work/version.txt"
grep -q "^mbq $version (commit " "$work/version.txt" || { echo "FAIL: --version"; exit 1; }
echo "ok   mbq --version from the package"

set +e
"$bin/mbq" check --config "$work/mbq.yml" >"$work/check.txt" 2>&1
rc=$?
set -e
cat "$work/check.txt"
[ $rc = 0 ] || { echo "FAIL: mbq check exit $rc"; exit 1; }
grep -q '^table `orders` -> orders: key (`id`); cursor `updated_at`; mode incremental' "$work/check.txt" ||
    { echo "FAIL: the resolved list"; exit 1; }
grep -q '^skip `nokey`' "$work/check.txt" || { echo "FAIL: nokey not reported"; exit 1; }
echo "ok   mbq check from the package: connected, resolved list printed"

if [ -n "${installed:-}" ]; then
    dpkg --purge mbq
    installed=
    [ ! -e /usr/bin/mbq ] && [ ! -e /etc/mbq ] && [ ! -e /usr/lib/systemd/system/mbq.service ] ||
        { echo "FAIL: files left after dpkg --purge"; exit 1; }
    if [ -z "${had_user:-}" ]; then
        deluser --system mbq >/dev/null 2>&1 || true
        delgroup --system mbq >/dev/null 2>&1 || true
    fi
    echo "ok   removed with dpkg --purge; nothing left"
fi
echo "FIGURE package_deb_bytes=$(stat -c %s "$deb")"
