#!/usr/bin/env bash
# Install Debian packages for `make` (promtool, kubectl, wrk), as root or through sudo.
#
#   scripts/apt-install.sh PACKAGE...
#
# Services the packages bring are not started: Debian's prometheus (installed for promtool
# only) would otherwise hold port 9090, the stack's own Prometheus port. While apt runs, a
# policy-rc.d forbids starting services (invoke-rc.d and deb-systemd-invoke both ask it);
# afterwards the prometheus service is disabled and stopped where one runs (systemd, or a
# SysV init script in a container without systemd).
#
# Environment:
#   DPKG_LOCK_WAIT   seconds to wait for another apt/dpkg to finish (default 600)
#   APT_DRY_RUN      1: print the privileged commands instead of running them (tests)
#   APT_POLICY_RC    where the policy-rc.d goes (default /usr/sbin/policy-rc.d; tests)
set -euo pipefail

DPKG_LOCK_WAIT="${DPKG_LOCK_WAIT:-600}"
POLICY="${APT_POLICY_RC:-/usr/sbin/policy-rc.d}"

die() {
    printf '[apt-install] ERROR: %s\n' "$*" >&2
    exit 1
}

[ "$#" -gt 0 ] || die "usage: $0 PACKAGE..."

# as root: run; as another user: through sudo, or say what to do instead
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 \
        || die "installing $* needs root and there is no sudo: run as root, or install them yourself (apt-get install $*)"
    SUDO=(sudo)
fi
as_root() {
    if [ "${APT_DRY_RUN:-}" = 1 ]; then
        printf 'run: %s\n' "${SUDO[*]:+${SUDO[*]} }$*"
    else
        "${SUDO[@]}" "$@"
    fi
}

# A policy-rc.d already there (container images often ship one) is left as it is.
own_policy=0
if [ ! -e "$POLICY" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $POLICY && chmod 755 $POLICY"
    own_policy=1
fi
cleanup() {
    if [ "$own_policy" = 1 ]; then as_root rm -f "$POLICY"; fi
}
trap cleanup EXIT

as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$DPKG_LOCK_WAIT" update
as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$DPKG_LOCK_WAIT" \
    install -y --no-install-recommends "$@"

for pkg in "$@"; do
    [ "$pkg" = prometheus ] || continue
    # a prometheus.service enabled at install would start at the next boot
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now prometheus || true
    elif [ -x /etc/init.d/prometheus ] || [ "${APT_DRY_RUN:-}" = 1 ]; then
        as_root /etc/init.d/prometheus stop || true
        if command -v update-rc.d >/dev/null 2>&1; then
            as_root update-rc.d prometheus disable || true
        fi
    fi
done
