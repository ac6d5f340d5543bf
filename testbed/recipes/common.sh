# Sourced by every recipe's build.sh; runs inside a build container started
# from the debootstrap base image, recipe directory mounted at /tb-recipe.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Package names listed in /tb-recipe/packages (comments and blank lines ignored).
tb_packages() { sed -e 's/#.*//' /tb-recipe/packages | xargs; }

tb_apt_install() {
    apt-get update -qq
    apt-get install -y -qq \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Copy the recipe's rootfs/ overlay (if any) onto /.
tb_overlay() {
    if [ -d /tb-recipe/rootfs ]; then
        cp -a --no-preserve=ownership /tb-recipe/rootfs/. /
    fi
}

# Keep package maintainer scripts from starting services during the build.
tb_block_services() { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; }
tb_unblock_services() { rm -f /usr/sbin/policy-rc.d; }

tb_cleanup() {
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/tmp/* \
        /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log
}
