#!/usr/bin/env bash
# Install Frontdesk into a fresh Debian bookworm root filesystem and check it works there.
#
#   sudo image-build/install-test.sh                 # or: sudo make install-test
#   sudo image-build/install-test.sh --bootstrap-only
#
# Builds (once, cached as a tarball) a minimal bookworm with debootstrap, unpacks a fresh copy,
# copies this tree in, runs `install.sh --no-start` in a chroot, runs it again (it must change
# nothing), checks the unit (`systemd-analyze verify`) and the udev rules (`udevadm verify`
# where udev has it), then starts `frontdesk run` on a simulated modem as the frontdesk user
# and reads /api/v1/status with an API token. Slow (minutes); not part of `make test`.
# Needs root, debootstrap and the network (Debian's mirror and PyPI).
#
# Environment: FRONTDESK_TEST_DIR (default /var/tmp/frontdesk-install-test),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), KEEP=1 keeps the root afterwards,
# FROM=HEAD tests the last commit (git archive) instead of the working tree.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${FRONTDESK_TEST_DIR:-/var/tmp/frontdesk-install-test}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
BASE=$WORK/bookworm-$ARCH.tar
ROOT=$WORK/root
PORT=18080
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

say "frontdesk run on a simulated modem, as the frontdesk user"
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then fail "port $PORT is already in use"; fi
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
# exec all the way down (chroot, env, setpriv), so $! is the daemon and SIGTERM reaches it.
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  setpriv --reuid=frontdesk --regid=frontdesk --init-groups --inh-caps=-all \
  /opt/frontdesk/venv/bin/frontdesk run --config /etc/frontdesk/install-test.toml \
  >"$WORK/daemon.log" 2>&1 &
daemon_pid=$!
status=""
for _ in $(seq 1 60); do
  if status=$(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/v1/status" 2>/dev/null); then
    break
  fi
  sleep 1
done
[ -n "$status" ] || { tail -30 "$WORK/daemon.log"; fail "no answer from /api/v1/status"; }
echo "$status"
echo "$status" | grep -q '"version"' || fail "unexpected status: $status"
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && echo "/healthz answers"
lines=$(in_root runuser -u frontdesk -- /opt/frontdesk/venv/bin/python -c '
from firmware_app.control import ControlClient
for line in ControlClient("/var/lib/frontdesk", timeout=10).call("lines.status"):
    print(line.get("name"), line.get("state"), line.get("port"))
' 2>&1 || true)
echo "lines: ${lines:-(control socket not asked)}"
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=""
grep -q "stopped in" "$WORK/daemon.log" || { tail -30 "$WORK/daemon.log"; fail "the daemon did not stop cleanly"; }

say "uninstall.sh keeps the data, --purge removes it"
in_root /usr/src/frontdesk/image-build/uninstall.sh
[ -d "$ROOT/var/lib/frontdesk" ] && [ -f "$ROOT/etc/frontdesk/frontdesk.toml" ] || fail "uninstall lost the data"
[ ! -e "$ROOT/opt/frontdesk" ] || fail "uninstall left /opt/frontdesk"
in_root /usr/src/frontdesk/image-build/uninstall.sh --purge
[ ! -e "$ROOT/var/lib/frontdesk" ] && [ ! -e "$ROOT/etc/frontdesk" ] || fail "--purge kept data"

say "install-test: PASSED"
