#!/usr/bin/env bash
# Remove Frontdesk installed by install.sh; the owner's data and config stay unless --purge.
#
#   sudo image-build/uninstall.sh            # remove the program, unit and udev rules
#   sudo image-build/uninstall.sh --purge    # also the data, the config and the user
#   image-build/uninstall.sh --dry-run       # say what would be removed
#
# Same paths and --no-system as install.sh (FRONTDESK_PREFIX, FRONTDESK_ETC,
# FRONTDESK_UNIT_DIR, FRONTDESK_UDEV_DIR) plus FRONTDESK_DATA (/var/lib/frontdesk).
# ModemManager comes back if install.sh had disabled it.
set -euo pipefail

PREFIX=${FRONTDESK_PREFIX:-/opt/frontdesk}
ETC=${FRONTDESK_ETC:-/etc/frontdesk}
UNIT_DIR=${FRONTDESK_UNIT_DIR:-/etc/systemd/system}
UDEV_DIR=${FRONTDESK_UDEV_DIR:-/etc/udev/rules.d}
DATA=${FRONTDESK_DATA:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)

PURGE=0 DRY=0 SYSTEM=1
for arg in "$@"; do
  case "$arg" in
    --purge) PURGE=1 ;;
    --dry-run) DRY=1 ;;
    --no-system) SYSTEM=0 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$SYSTEM" -eq 1 ] && [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run me as root (sudo $0)" >&2
  exit 1
fi

CHANGES=0
remove() {
  local path
  for path in "$@"; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    CHANGES=$((CHANGES + 1))
    if [ "$DRY" -eq 1 ]; then echo "  would remove $path"; else echo "  remove $path"; rm -rf -- "$path"; fi
  done
}
run() { if [ "$DRY" -eq 0 ]; then "$@"; else echo "  would: $*"; fi; }

# The data folder: FRONTDESK_DATA, or the one the config names, or the default.
if [ -z "$DATA" ] && [ -f "$ETC/frontdesk.toml" ] && command -v python3 >/dev/null; then
  DATA=$(python3 -c 'import sys, tomllib
try:
    print(tomllib.load(open(sys.argv[1], "rb")).get("store", {}).get("data_dir") or sys.argv[2])
except Exception:
    print(sys.argv[2])' "$ETC/frontdesk.toml" /var/lib/frontdesk)
fi
DATA=${DATA:-/var/lib/frontdesk}
case "$DATA" in
  / | /var | /var/lib | /home | /etc | /opt) echo "uninstall.sh: refusing data_dir $DATA" >&2; exit 1 ;;
esac

if [ "$SYSTEM" -eq 1 ]; then
  if systemctl is-enabled --quiet frontdesk.service 2>/dev/null \
    || systemctl is-active --quiet frontdesk.service 2>/dev/null; then
    CHANGES=$((CHANGES + 1))
    if [ -d /run/systemd/system ]; then
      run systemctl disable --now --quiet frontdesk.service
    else
      run systemctl disable --quiet frontdesk.service
    fi
  fi
fi
remove "$UNIT_DIR/frontdesk.service" "$UNIT_DIR/frontdesk-firstboot.service"
for rules in "$SRC"/hw/udev/*.rules; do remove "$UDEV_DIR/$(basename "$rules")"; done
if [ "$SYSTEM" -eq 1 ] && [ "$DRY" -eq 0 ]; then
  systemctl daemon-reload 2>/dev/null || true
  udevadm control --reload-rules 2>/dev/null || true
  if [ -f "$PREFIX/.modemmanager-was-enabled" ]; then
    systemctl enable --now --quiet ModemManager.service 2>/dev/null || true
    echo "  ModemManager enabled again"
  fi
fi
remove "$PREFIX"

if [ "$PURGE" -eq 1 ]; then
  remove "$ETC" "$DATA"
  if [ "$SYSTEM" -eq 1 ] && id frontdesk >/dev/null 2>&1; then
    CHANGES=$((CHANGES + 1))
    run userdel frontdesk
  fi
else
  kept=""
  for path in "$ETC" "$DATA"; do [ -e "$path" ] && kept="$kept $path"; done
  [ -n "$kept" ] && echo "Kept:$kept (remove them too with --purge)"
fi

if [ "$CHANGES" -eq 0 ]; then
  echo "Frontdesk: nothing to remove."
elif [ "$DRY" -eq 1 ]; then
  echo "Frontdesk: dry run, nothing removed."
else
  echo "Frontdesk: removed."
fi
