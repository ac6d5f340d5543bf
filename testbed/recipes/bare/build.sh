#!/bin/bash
# Build the bare test-host image: a fresh Debian 12 server (systemd as PID 1,
# sshd with root key login, sudo, python3) with nothing deployed on it yet.
#
# Test-bed-only additions, none of which installs software:
#  - /etc/docker/daemon.json selects the vfs storage driver, because overlayfs
#    cannot stack on the container's own overlay root. Docker itself is not
#    installed; when a spec installs docker.io, dockerd reads this file on its
#    first start. A real host needs none of this.
#  - units that cannot work in a container are masked (as in the host image).
. /tb-common.sh

tb_block_services
tb_overlay
# shellcheck disable=SC2046
tb_apt_install $(tb_packages)
tb_unblock_services

rm -f /etc/ssh/ssh_host_*
mkdir -p -m 0700 /root/.ssh
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd

systemctl mask \
    getty@tty1.service serial-getty@.service console-getty.service getty.target \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-modules-load.service systemd-remount-fs.service systemd-firstboot.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-fs-fuse-connections.mount proc-sys-fs-binfmt_misc.automount \
    systemd-binfmt.service systemd-sysctl.service systemd-hwdb-update.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer
systemctl enable ssh.service

: >/etc/machine-id
rm -f /var/lib/dbus/machine-id

tb_cleanup
