#!/bin/bash -e
# pi-gen, on the build host: copy this Frontdesk tree and the first-boot unit into the image.
# The tree is the one this stage lives in (image-build/stage-frontdesk/00-frontdesk/..),
# or FRONTDESK_SRC when the config exports it.
SRC=${FRONTDESK_SRC:-$(cd "$(dirname "$0")/../../.." && pwd)}
[ -f "${SRC}/image-build/install.sh" ] || { echo "no Frontdesk tree at ${SRC}" >&2; exit 1; }

rm -rf "${ROOTFS_DIR}/usr/src/frontdesk"
install -d "${ROOTFS_DIR}/usr/src/frontdesk"
tar -C "${SRC}" --exclude=./.git --exclude=./.venv --exclude=./demo-data \
  --exclude=./test-artifacts --exclude=__pycache__ --exclude='*.egg-info' \
  --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache -cf - . \
  | tar -C "${ROOTFS_DIR}/usr/src/frontdesk" -xf -

install -m 0755 "${SRC}/image-build/firstboot/frontdesk-firstboot" \
  "${ROOTFS_DIR}/usr/local/sbin/frontdesk-firstboot"
install -m 0644 "${SRC}/image-build/firstboot/frontdesk-firstboot.service" \
  "${ROOTFS_DIR}/etc/systemd/system/frontdesk-firstboot.service"
