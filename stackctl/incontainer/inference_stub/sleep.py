"""vLLM's sleep mode: the scheduler pause, the executor's sleeping tags, the weights."""

from __future__ import annotations

import threading
import time

from .log import log

SLEEP_TAGS = ("weights", "kv_cache")
SLEEP_MODES = ("abort", "wait", "keep")


class EngineDied(Exception):
    """The simulated engine core hit a CUDA out-of-memory error: the process must exit 1."""


class SleepEngine:
    """vLLM's sleep mode: scheduler pause (newer vLLM), executor sleeping tags, weights.

    Completions pass `enter()` (held while the scheduler is paused, i.e. asleep), call
    `step(epoch)` before each token (False: aborted; blocks while frozen by mode=keep)
    and `leave()` at the end.  An abort bumps `epoch`.  /sleep, /wake_up and
    collective_rpc run one at a time (`ops`).
    """

    def __init__(self, settings, gpu, metrics):
        self.settings = settings
        self.gpu = gpu
        self.metrics = metrics
        self.cond = threading.Condition()
        self.ops = threading.Lock()
        self.sleeping_tags = set()
        self.paused = False  # new requests are held
        self.frozen = False  # running requests are held too (mode=keep)
        self.epoch = 0
        self.active = 0
        self.garbage = False  # weights discarded (level 2) and not reloaded

    def is_sleeping(self):
        with self.cond:
            return self.paused or bool(self.sleeping_tags)

    # requests ------------------------------------------------------------
    def enter(self):
        """Wait while the engine sleeps; the request's epoch, or None if aborted meanwhile."""
        with self.cond:
            epoch = self.epoch
            if self.paused:
                self._held(1)
                try:
                    while self.paused and self.epoch == epoch:
                        self.cond.wait()
                finally:
                    self._held(-1)
            if self.epoch != epoch:
                return None
            self.active += 1
            return epoch

    def _held(self, delta):
        if self.metrics is not None:
            with self.metrics.cond:
                self.metrics.held += delta

    def step(self, epoch):
        with self.cond:
            while self.frozen and epoch is not None and self.epoch == epoch:
                self.cond.wait()
            return epoch is not None and self.epoch == epoch

    def leave(self):
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    # operations ----------------------------------------------------------
    def sleep(self, level, mode):
        with self.ops:
            with self.cond:
                self.paused = True
                self.frozen = self.frozen or mode == "keep"
                if mode == "abort":
                    self.epoch += 1
                self.cond.notify_all()
                already = bool(self.sleeping_tags)
            if already:
                log("Executor is already sleeping.")
                return
            if mode == "wait":
                log("Waiting for in-flight requests to complete before sleeping...")
                with self.cond:
                    while self.active:
                        self.cond.wait()
            t0 = time.monotonic()
            time.sleep(self.settings.sleep_seconds)
            gpu = self.gpu
            before = gpu.claim
            state = "weights_offloaded" if level == 1 else "discard_all"
            if self.settings.enable_sleep_mode:
                gpu.set_claim(gpu.residual, state)
                note = (f"weights ({gpu.weights:.2f} GiB) offloaded to CPU" if level == 1
                        else f"weights ({gpu.weights:.2f} GiB) discarded")  # fmt: skip
            else:
                gpu.set_claim(gpu.claim, state)
                note = "sleep mode not enabled (--enable-sleep-mode): nothing freed"
            log(f"Sleep mode freed {before - gpu.claim:.2f} GiB memory, {gpu.claim:.2f} GiB "
                f"memory is still in use. [stub: level {level}, {note}]")  # fmt: skip
            with self.cond:
                self.sleeping_tags = set(SLEEP_TAGS)
                if level == 2 and self.settings.enable_sleep_mode:
                    self.garbage = True
            if self.metrics is not None:
                self.metrics.set_sleep(level)
            log(f"It took {time.monotonic() - t0:.6f} seconds to fall asleep.")

    def wake_up(self, tags):
        """Wake `tags` (all if empty); raises EngineDied when the memory does not fit."""
        with self.ops:
            log(f"wake up the engine with tags: {list(tags) if tags else None}")
            with self.cond:
                sleeping = set(self.sleeping_tags)
            if not sleeping:
                log("Executor is not sleeping.")
                return
            waking = []
            for tag in tags or sorted(sleeping):
                if tag not in sleeping:
                    log(f"Tag {tag} is not in sleeping tags {sorted(sleeping)}")
                elif tag not in waking:
                    waking.append(tag)
            if not waking:
                return
            t0 = time.monotonic()
            time.sleep(self.settings.wake_seconds)
            remaining = sleeping - set(waking)
            gpu = self.gpu
            state = gpu.state if remaining else "awake"
            if self.settings.enable_sleep_mode:
                need = gpu.awake_claim(set(SLEEP_TAGS) - remaining)
                ok, free = gpu.set_claim(need, state, check=True)
                if not ok:
                    raise EngineDied(
                        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                        f"{need - gpu.claim:.2f} GiB. GPU 0 has a total capacity of "
                        f"{gpu.total:.2f} GiB of which {free - gpu.claim:.2f} GiB is free. "
                        f"Including non-PyTorch memory, this process has {gpu.claim:.2f} GiB "
                        f"memory in use. [stub: waking {waking} needs {need:.2f} GiB beside "
                        f"the other members' claims]"
                    )
            else:
                gpu.set_claim(gpu.claim, state)
            with self.cond:
                self.sleeping_tags = remaining
                if not remaining:
                    self.paused = self.frozen = False
                    self.cond.notify_all()
            if not remaining and self.metrics is not None:
                self.metrics.set_sleep(0)
            log(f"It took {time.monotonic() - t0:.6f} seconds to wake up tags {waking}.")

    def reload_weights(self):
        with self.ops:
            log("Reloading weights inplace...")
            t0 = time.monotonic()
            time.sleep(self.settings.reload_seconds)
            with self.cond:
                self.garbage = False
            log(f"Reloading and processing weights took {time.monotonic() - t0:.2f} seconds")

    def weights_garbage(self):
        with self.cond:
            return self.garbage
