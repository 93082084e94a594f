#!/usr/bin/env bash
# Install the Debian packages Frontdesk needs (as root), or print the exact apt-get line.
# Usage: scripts/system-deps.sh run|test|missing  (missing: print the missing run packages)
set -euo pipefail
need_run=(python3 python3-venv python3-dev gcc pkg-config libasound2-dev libsndfile1 espeak-ng sox alsa-utils)
need_test=(chromium gammu iaxmodem efax netpbm libtiff-tools poppler-utils mosquitto openssl)
pkgs=("${need_run[@]}")
[ "${1:-run}" = test ] && pkgs+=("${need_test[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${1:-run}" = missing ]; then
  echo "${missing[*]}"
  exit 0
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "system-deps: not a Debian system; please install the equivalents of: ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: these Debian packages are missing. Install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  echo "system-deps: continuing; tests that need them are skipped." >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}"
