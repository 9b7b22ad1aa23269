"""`python -m stackctl.resident CONFIG_DIR`: the resident scheduler of one stack, as `up`
starts it (process.py). Without --worker it is the supervisor: it holds the pid file's lock
for as long as it lives and runs the worker, restarting it when it dies (its restart
policy: at once, then backing off to 30 s); with --worker it is the scheduler itself."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CONFIG_ERROR = 78  # the registry cannot be read: restarting would not help


def worker(config_dir: Path) -> int:
    from stackctl.errors import PlanError
    from stackctl.registry.load import load_registry
    from stackctl.registry.problems import RegistryError
    from stackctl.resident.daemon import Daemon, log
    from stackctl.resident.paths import control_socket, gateway_socket
    from stackctl.targets.factory import local_docker

    try:
        reg = load_registry(config_dir)
        docker = local_docker(reg)
    except (RegistryError, PlanError) as exc:
        log(f"cannot start: {exc}")
        return CONFIG_ERROR

    supervisor = os.getppid()

    async def orphaned(stop: asyncio.Event) -> None:
        """A worker whose supervisor died exits: `up` starts a new pair, and two schedulers
        must never act on one stack."""
        while os.getppid() == supervisor:
            await asyncio.sleep(1.0)
        log("the supervisor is gone: stopping")
        stop.set()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watch = asyncio.ensure_future(orphaned(stop))
        daemon = Daemon(reg, lambda: docker)
        await daemon.run(gateway_socket(reg.output_dir), control_socket(config_dir), stop)
        watch.cancel()

    asyncio.run(main())
    return 0


def supervise(config_dir: Path, pid_path: Path) -> int:
    from stackctl.resident.daemon import log

    with open(pid_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # one runs already
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        stopping = False
        child: subprocess.Popen | None = None

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True
            if child is not None and child.poll() is None:
                child.terminate()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        backoff = 0.0
        while not stopping:
            started = time.monotonic()
            child = subprocess.Popen([sys.executable, "-m", "stackctl.resident",
                                      str(config_dir), "--worker"])
            code = child.wait()
            if stopping or code in (0, CONFIG_ERROR):
                return 0 if stopping else code
            backoff = 0.0 if time.monotonic() - started > 60 else min(30.0, backoff * 2 or 0.5)
            log(f"scheduler exited with {code}; restarting it in {backoff:g}s")
            deadline = time.monotonic() + backoff
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stackctl.resident")
    ap.add_argument("config_dir", type=Path)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--pid-file", type=Path)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.config_dir)
    return supervise(args.config_dir, args.pid_file)


if __name__ == "__main__":
    sys.exit(main())
