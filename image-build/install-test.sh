#!/usr/bin/env bash
# Install Frontdesk into a fresh Debian bookworm root filesystem and check it works there.
#
#   sudo image-build/install-test.sh                 # or: sudo make install-test
#   sudo image-build/install-test.sh --bootstrap-only
#
# Builds (once, cached as a tarball) a minimal bookworm with debootstrap, unpacks a fresh copy,
# copies this tree in, runs `install.sh --no-start` in a chroot, runs it again (it must change
# nothing), checks the unit (`systemd-analyze verify`) and the udev rules (`udevadm verify`
# where udev has it), then boots the root with systemd-nspawn and starts the installed unit on
# a simulated modem (the unit's sandbox around the real daemon; without systemd-nspawn, as
# the frontdesk user under setpriv, and it says so), reads /api/v1/status and /api/v1/lines
# with an API token (the simulated line must be up and idle; under the unit the clock-sync
# probe must answer) and stops it. Slow (minutes); not part of `make test`: run it before
# every release and after changing image-build/, systemd/ or hw/udev/.
# Needs root, debootstrap, systemd-container (for the unit) and the network (Debian's mirror
# and PyPI).
#
# Environment: FRONTDESK_TEST_DIR (default /var/tmp/frontdesk-install-test),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), KEEP=1 keeps the root afterwards,
# FROM=HEAD tests the last commit (git archive) instead of the working tree,
# FRONTDESK_NSPAWN=0 runs the daemon under setpriv instead of booting the root,
# FRONTDESK_TEST_PORT (default 18080) the loopback port the installed daemon's page uses.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FRONTDESK_TEST_DIR:-/var/tmp/frontdesk-install-test}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
BASE=$WORK/bookworm-$ARCH.tar
ROOT=$WORK/root
PORT=${FRONTDESK_TEST_PORT:-18080}
BOOTSTRAP_ONLY=0
[ "${1:-}" = "--bootstrap-only" ] && BOOTSTRAP_ONLY=1

say() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }
fail() { echo "install-test: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run me as root (sudo $0): debootstrap and chroot need it"
command -v debootstrap >/dev/null || fail "debootstrap is missing: apt-get install debootstrap"

mounted=()
cleanup() {
  local rc=$?
  if [ -n "${daemon_pid:-}" ]; then kill "$daemon_pid" 2>/dev/null || true; fi
  if [ -n "${container_pid:-}" ]; then
    kill -TERM "$container_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$container_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$container_pid" 2>/dev/null || true
  fi
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  if [ "${KEEP:-0}" != 1 ] && [ -d "$ROOT" ]; then rm -rf --one-file-system "$ROOT"; fi
  [ $rc -eq 0 ] || echo "install-test: failed after ${SECONDS}s (KEEP=1 keeps $ROOT)" >&2
}
trap cleanup EXIT

mkdir -p "$WORK"
if [ ! -f "$BASE" ]; then
  say "debootstrap bookworm ($ARCH) from $MIRROR"
  rm -rf "$WORK/base"
  debootstrap --variant=minbase --include=systemd,udev,dbus,ca-certificates,curl,iproute2 \
    bookworm "$WORK/base" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap (log: $WORK/debootstrap.log)"; }
  tar -C "$WORK/base" -cf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE"
  rm -rf "$WORK/base"
fi
[ "$BOOTSTRAP_ONLY" -eq 1 ] && { echo "base root filesystem: $BASE"; exit 0; }

say "fresh root filesystem in $ROOT"
if [ -d "$ROOT" ]; then rm -rf --one-file-system "$ROOT"; fi
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
# Networks with an intercepting proxy or a local package index: the root trusts the host's
# local certificate authorities and uses its pip configuration.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || true
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
for m in proc sys dev dev/pts; do
  mkdir -p "$ROOT/$m"
  mount --bind "/$m" "$ROOT/$m"
  mounted+=("$ROOT/$m")
done
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

say "copy the source tree${FROM:+ ($FROM)}"
mkdir -p "$ROOT/usr/src/frontdesk"
if [ -n "${FROM:-}" ]; then
  git -C "$SRC" archive --format=tar "$FROM" | tar -C "$ROOT/usr/src/frontdesk" -xf -
else
  tar -C "$SRC" --exclude=.git --exclude=.venv --exclude=demo-data --exclude=test-artifacts \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.ruff_cache \
    --exclude=.mypy_cache -cf - . | tar -C "$ROOT/usr/src/frontdesk" -xf -
fi

say "install.sh --no-start"
in_root apt-get update -qq
in_root /usr/src/frontdesk/image-build/install.sh --no-start >"$WORK/install-1.log" 2>&1 \
  || { tail -30 "$WORK/install-1.log"; fail "install.sh (log: $WORK/install-1.log)"; }
grep -E '^(==|  |Frontdesk|Not started)' "$WORK/install-1.log" | grep -v '^  *(Reading' || true
grep -q "frontdesk.service" "$ROOT/etc/systemd/system/multi-user.target.wants/frontdesk.service" 2>/dev/null \
  || [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/frontdesk.service" ] \
  || fail "the unit is not enabled"
id_line=$(in_root id frontdesk) || fail "no frontdesk user"
echo "$id_line"
for g in dialout audio gpio; do echo "$id_line" | grep -q "($g)" || fail "frontdesk is not in $g"; done

say "install.sh again: nothing to change"
in_root /usr/src/frontdesk/image-build/install.sh --no-start >"$WORK/install-2.log" 2>&1 \
  || { tail -30 "$WORK/install-2.log"; fail "install.sh, second run"; }
cat "$WORK/install-2.log"
grep -q "nothing to change" "$WORK/install-2.log" || fail "the second run changed something"
grep -qi "pip install" "$WORK/install-2.log" && fail "the second run reinstalled the program"

say "systemd-analyze verify"
# Its exit status also counts other units' problems in this minimal root (not ours): the
# output is checked for any line about frontdesk.service instead.
out=$(in_root systemd-analyze verify /etc/systemd/system/frontdesk.service 2>&1) || true
echo "${out:-(no output)}"
if echo "$out" | grep -q "frontdesk.service"; then fail "systemd-analyze verify complained"; fi
in_root systemd-analyze security --offline=yes /etc/systemd/system/frontdesk.service 2>/dev/null \
  | tail -1 || echo "(systemd-analyze security --offline needs systemd >= 253)"

say "udev rules"
if in_root udevadm verify --help >/dev/null 2>&1; then
  in_root udevadm verify /etc/udev/rules.d/70-frontdesk-modems.rules || fail "udevadm verify"
else
  echo "udevadm verify: not in this udev ($(in_root udevadm --version)); needs systemd >= 254"
fi
python3 "$SRC/tests/udev_lint.py" "$ROOT/etc/udev/rules.d/70-frontdesk-modems.rules" \
  || fail "udev rules lint"

say "frontdesk run on a simulated modem"
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
  fail "port $PORT is already in use (FRONTDESK_TEST_PORT=... picks another)"
fi
cat >"$ROOT/etc/frontdesk/install-test.toml" <<EOF
[modem]
devices = ["sim:usr5637"]
[web]
listen = "127.0.0.1:$PORT"
EOF
in_root install -d -o frontdesk -g frontdesk -m 0750 /var/lib/frontdesk
token=$(in_root runuser -u frontdesk -- /opt/frontdesk/venv/bin/python -c '
from pathlib import Path
from firmware_app.services.auth import AuthService
from firmware_app.store import Store
store = Store(Path("/var/lib/frontdesk"))
_listing, secret = AuthService(store).create_token("install-test")
print(secret)
store.close()
')
[ -n "$token" ] || fail "could not create an API token"
api() { curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/$1"; }

# The daemon answers /api/v1/status, its simulated line comes up (idle) in /api/v1/lines,
# and with $1 = 1 (under the unit) the clock-sync probe answers (its source is not "unknown").
check_daemon() {
  local status="" lines="" up=0
  for _ in $(seq 1 90); do
    if status=$(api status 2>/dev/null); then break; fi
    status=""
    sleep 1
  done
  [ -n "$status" ] || return 1
  echo "status: $status"
  echo "$status" | python3 -c 'import json, sys; sys.exit(0 if json.load(sys.stdin)["version"] else 1)' \
    || fail "/api/v1/status has no version"
  for _ in $(seq 1 60); do
    lines=$(api lines 2>/dev/null) || lines='{"lines": []}'
    if echo "$lines" | python3 -c '
import json, sys
lines = json.load(sys.stdin)["lines"]
sys.exit(0 if any(x["name"] == "line1" and x["state"] == "idle" for x in lines) else 1)'; then
      up=1
      break
    fi
    sleep 1
  done
  echo "lines: $lines"
  [ "$up" = 1 ] || fail "the simulated line did not come up (idle) in /api/v1/lines"
  if [ "$1" = 1 ]; then
    echo "$status" | python3 -c '
import json, sys
sys.exit(0 if json.load(sys.stdin)["clock"]["source"] != "unknown" else 1)' \
      || fail "under the unit the clock-sync probe cannot tell whether the clock is synchronised"
  fi
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || fail "/healthz does not answer"
}

# Under the installed unit, in the root booted by systemd-nspawn: the unit's sandbox
# (ProtectSystem, SystemCallFilter, DevicePolicy, ProtectClock...) around the real daemon.
run_under_unit() {
  local drop=$ROOT/etc/systemd/system/frontdesk.service.d init=""
  mkdir -p "$drop" "$ROOT/var/log/journal"
  # The only differences from the shipped unit: the test's config, and the pseudo-terminal
  # the simulated modem uses (DevicePolicy=closed lets in only real modems' device classes).
  printf '%s\n' "[Service]" "ExecStart=" \
    "ExecStart=/opt/frontdesk/venv/bin/frontdesk run --config /etc/frontdesk/install-test.toml" \
    "DeviceAllow=/dev/ptmx rw" "DeviceAllow=char-pts rw" >"$drop/install-test.conf"
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}"; done
  mounted=()
  systemd-nspawn --quiet --boot --register=no --keep-unit -D "$ROOT" --console=pipe \
    >"$WORK/container.log" 2>&1 </dev/null &
  container_pid=$!
  for _ in $(seq 1 30); do
    init=$(ps -o pid= --ppid "$container_pid" | head -1 | tr -d ' ')
    [ -n "$init" ] && break
    kill -0 "$container_pid" 2>/dev/null || break
    sleep 1
  done
  if [ -z "$init" ]; then
    container_pid=""
    NOT_UNIT="systemd-nspawn could not boot the root here ($(tail -2 "$WORK/container.log" | tr '\n' ' '))"
    rm -rf "$drop"
    for m in proc sys dev dev/pts; do mount --bind "/$m" "$ROOT/$m"; mounted+=("$ROOT/$m"); done
    return 1
  fi
  in_container() { nsenter -t "$init" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
  echo "booted the root with systemd-nspawn: $(in_container systemctl is-system-running --wait 2>&1)"
  in_container systemctl --no-pager --lines=0 status frontdesk.service | head -12
  if ! check_daemon 1; then
    in_container journalctl -u frontdesk.service --no-pager | tail -40
    fail "no answer from /api/v1/status under the unit"
  fi
  in_container systemctl stop frontdesk.service || fail "systemctl stop frontdesk"
  in_container journalctl -u frontdesk.service --no-pager -o cat >"$WORK/daemon.log"
  kill -TERM "$container_pid" # the container's systemd powers off
  for _ in $(seq 1 60); do kill -0 "$container_pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$container_pid" 2>/dev/null; then fail "the booted root did not power off"; fi
  container_pid=""
  rm -rf "$drop"
  for m in proc sys dev dev/pts; do mount --bind "/$m" "$ROOT/$m"; mounted+=("$ROOT/$m"); done
}

# Without systemd-nspawn: as the frontdesk user under setpriv (no sandbox), and said so.
run_as_user() {
  # exec all the way down (chroot, env, setpriv), so $! is the daemon and SIGTERM reaches it.
  chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    setpriv --reuid=frontdesk --regid=frontdesk --init-groups --inh-caps=-all \
    /opt/frontdesk/venv/bin/frontdesk run --config /etc/frontdesk/install-test.toml \
    >"$WORK/daemon.log" 2>&1 &
  daemon_pid=$!
  if ! check_daemon 0; then tail -30 "$WORK/daemon.log"; fail "no answer from /api/v1/status"; fi
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" || fail "the daemon did not exit with 0 after SIGTERM"
  daemon_pid=""
}

NOT_UNIT=""
if [ "${FRONTDESK_NSPAWN:-1}" = 0 ]; then
  NOT_UNIT="FRONTDESK_NSPAWN=0"
elif ! command -v systemd-nspawn >/dev/null; then
  NOT_UNIT="systemd-nspawn is missing (apt-get install systemd-container)"
fi
if [ -z "$NOT_UNIT" ] && run_under_unit; then
  echo "the daemon ran under the installed unit"
else
  echo "NOT under the unit's sandbox: $NOT_UNIT. Running as the frontdesk user instead."
  run_as_user
fi
grep "stopped in" "$WORK/daemon.log" || { tail -30 "$WORK/daemon.log"; fail "the daemon did not stop cleanly"; }

say "uninstall.sh keeps the data, --purge removes it"
in_root /usr/src/frontdesk/image-build/uninstall.sh
[ -d "$ROOT/var/lib/frontdesk" ] && [ -f "$ROOT/etc/frontdesk/frontdesk.toml" ] || fail "uninstall lost the data"
[ ! -e "$ROOT/opt/frontdesk" ] || fail "uninstall left /opt/frontdesk"
in_root /usr/src/frontdesk/image-build/uninstall.sh --purge
[ ! -e "$ROOT/var/lib/frontdesk" ] && [ ! -e "$ROOT/etc/frontdesk" ] || fail "--purge kept data"

say "install-test: PASSED"
