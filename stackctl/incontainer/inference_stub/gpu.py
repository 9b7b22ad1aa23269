"""The simulated GPU: the memory each member claims, shared through STUB_GPU_DIR."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time


def _file_name(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


class SimulatedGpu:
    """The GPU memory this member claims, shared through STUB_GPU_DIR with the others.

    Without STUB_GPU_DIR the member is alone on its GPU (nothing is written).  With it,
    each member keeps <name>.claim (JSON: name, gib, state, pid) and holds an exclusive
    flock on <name>.lock while it lives; a claim whose lock is free is a dead member's
    and is ignored (a SIGKILLed container cleans nothing up).  Every read-modify-write of
    the claims holds the flock of .gpu.lock.
    """

    COMMON_LOCK = ".gpu.lock"

    def __init__(self, settings):
        self.dir = settings.gpu_dir
        self.name = settings.name
        self.total = settings.gpu_memory_gib
        self.utilization = settings.gpu_memory_utilization
        self.full = settings.gpu_memory_utilization * settings.gpu_memory_gib
        self.residual = min(settings.sleep_residual_gib, self.full)
        self.weights = min(settings.weights_gib, self.full - self.residual)
        self.claim = self.full
        self.state = "awake"
        self._own_lock = None
        self._lock = threading.Lock()

    def _path(self, suffix, name=None):
        return os.path.join(self.dir, _file_name(name or self.name) + suffix)

    @staticmethod
    def _open_lock(path):
        """A lock file, created readable by all (flock needs no write access)."""
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        with contextlib.suppress(OSError):  # members may run as different users
            os.fchmod(fd, 0o666)
        return fd

    @contextlib.contextmanager
    def _common(self):
        fd = self._open_lock(os.path.join(self.dir, self.COMMON_LOCK))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _others(self):
        """{name: {"gib", "state"}} of the live members other than this one."""
        found = {}
        for entry in sorted(os.listdir(self.dir)):
            if not entry.endswith(".claim") or entry == _file_name(self.name) + ".claim":
                continue
            try:
                with open(os.path.join(self.dir, entry)) as fh:
                    claim = json.load(fh)
                gib = float(claim["gib"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not self._alive(entry[: -len(".claim")]):
                continue
            found[str(claim.get("name", entry))] = {"gib": gib, "state": claim.get("state")}
        return found

    def _alive(self, file_stem):
        try:
            fd = os.open(os.path.join(self.dir, file_stem + ".lock"), os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # its owner holds it: alive
        finally:
            os.close(fd)
        return False

    def _write(self):
        data = {"name": self.name, "gib": round(self.claim, 6), "state": self.state,
                "pid": os.getpid()}  # fmt: skip
        tmp = self._path(f".claim.{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self._path(".claim"))

    def start(self):
        """Claim the full share; returns None, or the error lines of vLLM's startup check."""
        if self.dir is None:
            return None
        os.makedirs(self.dir, exist_ok=True)
        fd = self._open_lock(self._path(".lock"))
        deadline = time.monotonic() + 2.0  # another member may be probing it right now
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    return [f"RuntimeError: another live member named {self.name!r} holds "
                            f"{self._path('.lock')}"]  # fmt: skip
                time.sleep(0.05)
        self._own_lock = fd  # held (never closed) until the process dies
        with self._common():
            free = self.total - sum(c["gib"] for c in self._others().values())
            if free < self.full:
                return [
                    f"ValueError: Free memory on device cuda:0 ({free:.2f}/{self.total:.2f} GiB) "
                    f"on startup is less than desired GPU memory utilization "
                    f"({self.utilization}, {self.full:.2f} GiB). Decrease GPU memory utilization "
                    f"or reduce GPU memory used by other processes.",
                    "RuntimeError: Engine core initialization failed. See root cause above. "
                    "Failed core proc(s): {}",
                ]
            self._write()
        return None

    def set_claim(self, gib, state, check=False):
        """Claim `gib`; with `check`, only if it fits beside the others.
        Returns (ok, free GiB beside the others)."""
        with self._lock:
            if self.dir is None:
                free = self.total
            else:
                with self._common():
                    free = self.total - sum(c["gib"] for c in self._others().values())
                    if check and gib > free + 1e-9:
                        return False, free
                    self.claim, self.state = gib, state
                    self._write()
                    return True, free
            if check and gib > free + 1e-9:
                return False, free
            self.claim, self.state = gib, state
            return True, free

    def awake_claim(self, awake_tags):
        """Memory held with these tags awake (the rest asleep, sleep mode enabled)."""
        gib = self.residual
        if "weights" in awake_tags:
            gib += self.weights
        if "kv_cache" in awake_tags:
            gib += self.full - self.residual - self.weights
        return gib

    def snapshot(self):
        with self._lock:
            claims = {self.name: {"gib": round(self.claim, 6), "state": self.state}}
            if self.dir is not None:
                with self._common():
                    others = self._others()
                for name, claim in others.items():
                    claims[name] = {"gib": round(claim["gib"], 6), "state": claim["state"]}
        used = sum(c["gib"] for c in claims.values())
        return {"total_gib": self.total, "free_gib": round(self.total - used, 6), "claims": claims}
