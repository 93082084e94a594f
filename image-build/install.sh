#!/usr/bin/env bash
# Install Frontdesk on Raspberry Pi OS / Debian bookworm from this source tree.
#
#   sudo image-build/install.sh            # install or upgrade, then start the service
#   sudo image-build/install.sh --no-start # install only (used when building an image)
#
# Creates the `frontdesk` system user (groups dialout, audio, gpio), a virtualenv in
# /opt/frontdesk/venv, /etc/frontdesk/frontdesk.toml (kept if it exists), the systemd unit,
# and stops ModemManager from grabbing the modem. Safe to run again.
set -euo pipefail

PREFIX=/opt/frontdesk
ETC=/etc/frontdesk
SRC=$(cd "$(dirname "$0")/.." && pwd)
START=1
[ "${1:-}" = "--no-start" ] && START=0

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run me as root (sudo $0)" >&2
  exit 1
fi

echo "== Debian packages"
"$SRC/scripts/system-deps.sh" run

echo "== user frontdesk"
if ! id frontdesk >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/frontdesk --no-create-home --shell /usr/sbin/nologin frontdesk
fi
for group in dialout audio gpio; do
  getent group "$group" >/dev/null || groupadd --system "$group"
  usermod -a -G "$group" frontdesk
done

echo "== program in $PREFIX"
install -d -m 0755 "$PREFIX"
rm -rf "$PREFIX/src.new"
mkdir "$PREFIX/src.new"
# Copy the source tree without local state (virtualenvs, demo data, caches).
tar -C "$SRC" --exclude=.git --exclude=.venv --exclude=demo-data --exclude=test-artifacts \
    --exclude=__pycache__ --exclude='*.egg-info' -cf - . | tar -C "$PREFIX/src.new" -xf -
rm -rf "$PREFIX/src.old"
[ -d "$PREFIX/src" ] && mv "$PREFIX/src" "$PREFIX/src.old"
mv "$PREFIX/src.new" "$PREFIX/src"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
extras=""
[ -f /usr/include/alsa/asoundlib.h ] && extras="[audio]"
"$PREFIX/venv/bin/pip" install -q "$PREFIX/src$extras"
install -m 0644 "$PREFIX/src/README.md" "$PREFIX/README.md"

echo "== config in $ETC"
install -d -m 0755 "$ETC"
if [ ! -f "$ETC/frontdesk.toml" ]; then
  install -m 0644 "$PREFIX/src/firmware_app/frontdesk.example.toml" "$ETC/frontdesk.toml"
fi
"$PREFIX/venv/bin/frontdesk" settings export --config "$ETC/frontdesk.toml" >/dev/null 2>&1 || true

echo "== systemd unit"
install -m 0644 "$PREFIX/src/systemd/frontdesk.service" /etc/systemd/system/frontdesk.service
# ModemManager probes every serial port it sees and grabs the modem: keep it away.
if [ -d "$PREFIX/src/hw/udev" ]; then
  install -m 0644 "$PREFIX/src/hw/udev/"*.rules /etc/udev/rules.d/
  udevadm control --reload-rules 2>/dev/null || true
fi
if systemctl list-unit-files ModemManager.service >/dev/null 2>&1; then
  systemctl disable --now ModemManager.service 2>/dev/null || true
fi
systemctl daemon-reload
systemctl enable frontdesk.service
if [ "$START" -eq 1 ]; then
  systemctl restart frontdesk.service
  echo "Frontdesk is running. Open http://$(hostname).local:8080/ to set it up."
fi
