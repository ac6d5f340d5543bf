#!/bin/bash
# Build the package cache image: Debian's apt-cacher-ng, run in the foreground
# as the container's main process (see testbed/aptcache.py).
. /tb-common.sh

tb_block_services
# shellcheck disable=SC2046
tb_apt_install $(tb_packages)
tb_unblock_services
mkdir -p /var/cache/apt-cacher-ng /var/log/apt-cacher-ng
test -x /usr/sbin/apt-cacher-ng

tb_cleanup
