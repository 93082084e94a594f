#!/bin/bash -e
# pi-gen, inside the image: install Frontdesk with the same installer as on a running Pi,
# without starting it; name the machine `frontdesk` (frontdesk.local through avahi); leave
# no secret in the image (the first boot makes the machine's own).
/usr/src/frontdesk/image-build/install.sh --no-start

echo frontdesk >/etc/hostname
if grep -q '^127\.0\.1\.1' /etc/hosts; then
  sed -i 's/^127\.0\.1\.1.*/127.0.1.1\tfrontdesk/' /etc/hosts
else
  printf '127.0.1.1\tfrontdesk\n' >>/etc/hosts
fi
systemctl enable avahi-daemon.service
systemctl enable frontdesk-firstboot.service

# Nothing secret or machine-specific leaves the build: no Frontdesk data (web session
# secret, password, tokens), no SSH host keys, no machine id, no random seed, no caches.
rm -rf /var/lib/frontdesk
rm -f /etc/ssh/ssh_host_*key*
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id /var/lib/systemd/random-seed /var/lib/frontdesk-firstboot.done
rm -rf /root/.cache/pip /root/.bash_history
