#!/bin/bash
# Build the test-host image: systemd as PID 1, sshd (root, keys only), nginx,
# nftables/ufw, cron and a Docker engine (vfs storage driver) enabled at boot.
. /tb-common.sh

tb_block_services
tb_overlay
# shellcheck disable=SC2046
tb_apt_install $(tb_packages)
tb_unblock_services

# SSH: every started host generates its own host keys on first boot
# (ssh.service.d/testbed.conf runs `ssh-keygen -A`), so none are baked in.
rm -f /etc/ssh/ssh_host_*
mkdir -p -m 0700 /root/.ssh
# pam_loginuid cannot always write /proc/self/loginuid in a container.
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/sshd

# Units that fail or make no sense in a container.
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
systemctl enable ssh.service nginx.service cron.service containerd.service docker.service

# A fresh machine id per container (systemd creates a transient one when empty).
: >/etc/machine-id
rm -f /var/lib/dbus/machine-id

tb_cleanup
