#!/usr/bin/env bash
# Install Frontdesk on Raspberry Pi OS or Debian bookworm (arm64, armhf, amd64) from this tree.
#
#   sudo image-build/install.sh              # install or upgrade, then (re)start the service
#   sudo image-build/install.sh --no-start   # install only (image builds, chroots)
#   image-build/install.sh --dry-run         # say what would change; change nothing
#   image-build/install.sh --no-system       # files only: no apt, user, systemctl or udevadm
#
# Creates the `frontdesk` system user (groups dialout, audio, gpio), a virtualenv in
# $PREFIX/venv, $ETC/frontdesk.toml from the example (an existing one is kept), the systemd
# unit and the udev rules, and keeps ModemManager away from the modems. Running it again
# changes nothing when nothing changed: the virtualenv is rebuilt only when the source tree
# or the Python version differ from those it was built from.
#
# Paths, from the environment: FRONTDESK_PREFIX (/opt/frontdesk), FRONTDESK_ETC
# (/etc/frontdesk), FRONTDESK_UNIT_DIR (/etc/systemd/system), FRONTDESK_UDEV_DIR
# (/etc/udev/rules.d), FRONTDESK_PYTHON (python3).
set -euo pipefail

PREFIX=${FRONTDESK_PREFIX:-/opt/frontdesk}
ETC=${FRONTDESK_ETC:-/etc/frontdesk}
UNIT_DIR=${FRONTDESK_UNIT_DIR:-/etc/systemd/system}
UDEV_DIR=${FRONTDESK_UDEV_DIR:-/etc/udev/rules.d}
PYTHON=${FRONTDESK_PYTHON:-python3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
USER_NAME=frontdesk
GROUPS_WANTED=(dialout audio gpio)

START=1 DRY=0 SYSTEM=1
for arg in "$@"; do
  case "$arg" in
    --no-start) START=0 ;;
    --dry-run) DRY=1 ;;
    --no-system) SYSTEM=0 START=0 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$SYSTEM" -eq 1 ] && [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run me as root (sudo $0), or see --help for --dry-run and --no-system" >&2
  exit 1
fi

# systemd running (not a chroot or an image build): units can be reloaded and started.
LIVE=0
[ -d /run/systemd/system ] && LIVE=1

CHANGES=0
changed() { CHANGES=$((CHANGES + 1)); if [ "$DRY" -eq 1 ]; then echo "  would: $*"; else echo "  $*"; fi; }
ok() { echo "  ok: $*"; }
run() { if [ "$DRY" -eq 0 ]; then "$@"; fi; }

# Install a file when it differs (content or mode); true when it did (or would).
put_file() {
  local src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
    return 1
  fi
  changed "install $dst"
  run install -D -m "$mode" "$src" "$dst"
  return 0
}

# The tree as it would be copied, as one deterministic stream (for its checksum).
EXCLUDES=(--exclude=./.git --exclude=./.venv --exclude=./demo-data --exclude=./test-artifacts
  --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.ruff_cache
  --exclude=.mypy_cache --exclude='*.pyc' --exclude=./build)
source_tar() {
  tar -C "$SRC" "${EXCLUDES[@]}" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -cf - .
}

# -- Debian packages -------------------------------------------------------------------------
echo "== Debian packages"
if [ "$SYSTEM" -eq 1 ]; then
  missing=$("$SRC/scripts/system-deps.sh" missing)
  # avahi answers for <hostname>.local on the office network (Raspberry Pi OS has it).
  dpkg-query -W -f='${Status}' avahi-daemon 2>/dev/null | grep -q "ok installed" \
    || missing="${missing:+$missing }avahi-daemon"
  if [ -n "$missing" ]; then
    changed "apt-get install $missing"
    run "$SRC/scripts/system-deps.sh" run
    if [[ " $missing " == *" avahi-daemon "* ]] && [ "$DRY" -eq 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends avahi-daemon
    fi
  else
    ok "all installed"
  fi
else
  ok "skipped (--no-system)"
fi

# -- the service user ------------------------------------------------------------------------
echo "== user $USER_NAME"
before=$CHANGES
if [ "$SYSTEM" -eq 1 ]; then
  for group in "${GROUPS_WANTED[@]}"; do
    if ! getent group "$group" >/dev/null; then
      changed "add group $group"
      run groupadd --system "$group"
    fi
  done
  if ! id "$USER_NAME" >/dev/null 2>&1; then
    changed "add system user $USER_NAME"
    run useradd --system --user-group --home-dir /var/lib/frontdesk --no-create-home \
      --shell /usr/sbin/nologin --comment "Frontdesk daemon" "$USER_NAME"
  fi
  have=" $(id -nG "$USER_NAME" 2>/dev/null || true) "
  for group in "${GROUPS_WANTED[@]}"; do
    if [[ "$have" != *" $group "* ]]; then
      changed "add $USER_NAME to group $group"
      run usermod -a -G "$group" "$USER_NAME"
    fi
  done
  [ "$CHANGES" -eq "$before" ] && ok "$USER_NAME in ${GROUPS_WANTED[*]}"
else
  ok "skipped (--no-system)"
fi

# -- the program and its virtualenv ----------------------------------------------------------
echo "== program in $PREFIX"
extras=""
[ -f /usr/include/alsa/asoundlib.h ] && extras="[audio]"
py_version=$("$PYTHON" --version 2>&1)
wanted="source $(source_tar | sha256sum | cut -d' ' -f1)
python $py_version
extras $extras"
stamp="$PREFIX/venv/.frontdesk-build"
program_changed=0
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  ok "same source and Python as installed: virtualenv kept"
else
  program_changed=1
  changed "copy the source to $PREFIX/src"
  if [ "$DRY" -eq 0 ]; then
    install -d -m 0755 "$PREFIX"
    rm -rf "$PREFIX/src.new" "$PREFIX/src.old"
    mkdir "$PREFIX/src.new"
    source_tar | tar -C "$PREFIX/src.new" -xf -
    [ -d "$PREFIX/src" ] && mv "$PREFIX/src" "$PREFIX/src.old"
    mv "$PREFIX/src.new" "$PREFIX/src"
    rm -rf "$PREFIX/src.old"
  fi
  built_with=$(sed -n 's/^python //p' "$stamp" 2>/dev/null || true)
  if [ ! -x "$PREFIX/venv/bin/python" ] || [ "$built_with" != "$py_version" ]; then
    changed "create the virtualenv $PREFIX/venv ($py_version)"
    run rm -rf "$PREFIX/venv"
    run "$PYTHON" -m venv "$PREFIX/venv"
    run "$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
  fi
  changed "pip install frontdesk$extras into $PREFIX/venv"
  run "$PREFIX/venv/bin/python" -m pip install -q "$PREFIX/src$extras"
  # Same version number, new code: make sure the copy just made is the one installed.
  run "$PREFIX/venv/bin/python" -m pip install -q --no-deps --force-reinstall "$PREFIX/src"
  case "$(uname -m)" in
    aarch64 | armv7l | armv6l)
      # gpiozero's pin driver on Raspberry Pi OS bookworm (Pi 5 included); only the panel needs it.
      run "$PREFIX/venv/bin/python" -m pip install -q lgpio \
        || echo "  WARNING: lgpio did not install: the GPIO panel will not work" >&2 ;;
  esac
  if [ "$DRY" -eq 0 ]; then
    install -m 0644 "$PREFIX/src/README.md" "$PREFIX/README.md"
    printf '%s\n' "$wanted" >"$stamp"
  fi
fi

# -- the machine config ----------------------------------------------------------------------
echo "== config in $ETC"
example="$SRC/firmware_app/frontdesk.example.toml"
config_changed=0
if [ -f "$ETC/frontdesk.toml" ]; then
  ok "$ETC/frontdesk.toml kept as it is"
else
  config_changed=1
  changed "write $ETC/frontdesk.toml from the example"
  run install -D -m 0644 "$example" "$ETC/frontdesk.toml"
fi
put_file "$example" "$ETC/frontdesk.example.toml" 0644 || true
if [ "$DRY" -eq 0 ] && [ -x "$PREFIX/venv/bin/python" ]; then
  if ! problem=$("$PREFIX/venv/bin/python" -c 'import sys
from firmware_app.config import load_config
load_config(sys.argv[1])' "$ETC/frontdesk.toml" 2>&1); then
    echo "  WARNING: $ETC/frontdesk.toml has a problem; the service will not start:" >&2
    echo "$problem" | tail -5 | sed 's/^/    /' >&2
  fi
fi

# -- systemd unit and udev rules -------------------------------------------------------------
echo "== systemd unit and udev rules"
unit_changed=0
put_file "$SRC/systemd/frontdesk.service" "$UNIT_DIR/frontdesk.service" 0644 && unit_changed=1
udev_changed=0
for rules in "$SRC"/hw/udev/*.rules; do
  put_file "$rules" "$UDEV_DIR/$(basename "$rules")" 0644 && udev_changed=1
done
[ "$unit_changed$udev_changed" = 00 ] && ok "unit and rules up to date"

if [ "$SYSTEM" -eq 1 ]; then
  if [ "$udev_changed" -eq 1 ] && [ "$DRY" -eq 0 ]; then
    udevadm control --reload-rules 2>/dev/null || true
    udevadm trigger --action=add --subsystem-match=tty 2>/dev/null || true
  fi
  if [ "$unit_changed" -eq 1 ] && [ "$LIVE" -eq 1 ]; then run systemctl daemon-reload; fi
  if [ "$(systemctl is-enabled frontdesk.service 2>/dev/null || true)" != enabled ]; then
    changed "enable frontdesk.service"
    run systemctl enable --quiet frontdesk.service
  fi
  # ModemManager probes every serial port it sees and grabs the modem: keep it away.
  if [ "$(systemctl is-enabled ModemManager.service 2>/dev/null || true)" = enabled ]; then
    changed "disable ModemManager (it would grab the modem)"
    if [ "$LIVE" -eq 1 ]; then
      run systemctl disable --now --quiet ModemManager.service
    else
      run systemctl disable --quiet ModemManager.service
    fi
    [ "$DRY" -eq 0 ] && touch "$PREFIX/.modemmanager-was-enabled"
  fi
fi

# -- start -----------------------------------------------------------------------------------
port=8080
if [ -x "$PREFIX/venv/bin/python" ] && [ "$DRY" -eq 0 ]; then
  port=$("$PREFIX/venv/bin/python" -c 'import sys
from firmware_app.config import load_config
print(load_config(sys.argv[1]).listen_host_port[1])' "$ETC/frontdesk.toml" 2>/dev/null || echo 8080)
fi
if [ "$START" -eq 1 ] && [ "$LIVE" -eq 0 ]; then
  echo "== service: systemd is not running here (a chroot?): not started"
  START=0
fi
if [ "$START" -eq 1 ]; then
  echo "== service"
  if [ $((program_changed + config_changed + unit_changed)) -gt 0 ] \
    || ! systemctl is-active --quiet frontdesk.service; then
    changed "restart frontdesk.service"
    run systemctl restart frontdesk.service
  else
    ok "frontdesk.service running"
  fi
fi

echo
if [ "$CHANGES" -eq 0 ]; then
  echo "Frontdesk: nothing to change."
elif [ "$DRY" -eq 1 ]; then
  echo "Frontdesk: $CHANGES changes would be made (dry run: nothing changed)."
else
  echo "Frontdesk: installed ($CHANGES changes)."
fi
if [ "$START" -eq 1 ] && [ "$DRY" -eq 0 ]; then
  address=$(hostname -I 2>/dev/null | awk '{print $1}')
  echo "Open http://$(hostname).local:$port/${address:+ (or http://$address:$port/)} to set it up."
  echo "Its log: journalctl -u frontdesk -f"
elif [ "$SYSTEM" -eq 1 ] && [ "$DRY" -eq 0 ]; then
  echo "Not started (--no-start). It starts at the next boot, or now with:"
  echo "  sudo systemctl start frontdesk    # then open http://$(hostname).local:$port/"
fi
