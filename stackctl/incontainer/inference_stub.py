#!/usr/bin/env python3
"""Stub inference server used by stackctl tests in place of vLLM / Ollama.

It answers with canned text that always says "stub" and names the instance, so a
test can tell which backend served a request.  It never runs a model.

Standard library only (runs on Debian bookworm's python3 3.11 with no pip
packages).  Start it with ``python3 inference_stub.py [vLLM serve arguments]``; as a
Docker healthcheck use ``python3 inference_stub.py --healthcheck`` (exit 0 when ready,
else 1).  The image's ENTRYPOINT is ``python3 /stub/inference_stub.py``, so a compose
``command:`` list becomes these arguments.

Command-line arguments (vllm flavor only; any other argument exits 2)
-------------------------------------------------------------------
``--enable-sleep-mode``           as vLLM: /sleep really frees (simulated) GPU memory.
``--gpu-memory-utilization F``    0 < F <= 1, default 0.9: the share of the (simulated)
                                  GPU this instance claims while awake.

Environment variables
---------------------
==================== ============== ================================================
Variable             Default        Meaning
==================== ============== ================================================
STUB_FLAVOR          vllm           ``vllm`` (OpenAI API as served by vLLM) or
                                    ``ollama`` (Ollama API + its OpenAI /v1 routes).
STUB_MODELS          stub-model     Comma-separated served model names (vLLM
                                    ``--served-model-name``; Ollama tags such as
                                    ``qwen2.5-coder:7b``; a bare Ollama name gets
                                    ``:latest``, as in Ollama).  vLLM requests
                                    without ``model`` use the first one.
STUB_NAME            <flavor>-stub  Instance name put in every completion:
                                    ``[stub NAME] reply to: <first 40 chars>``.
STUB_PORT            8000           TCP port (0 = any free port; the log says which).
STUB_HOST            0.0.0.0        Bind address.
STUB_STARTUP_DELAY   0              Seconds (float) of simulated model loading.  The
                                    HTTP server is up at once but answers 503 (JSON
                                    error, ``Retry-After: 1``) on every route except
                                    /stub/* until loading is over.
STUB_NEVER_READY     (unset)        ``1``/``true``/``yes``/``on``: stay loading forever.
STUB_LATENCY_MS      0              Extra delay per request on model/completion
                                    routes (not on /health, /api/version, / or
                                    /stub/*).
STUB_ERROR_RATE      0              Probability 0..1 of answering 500 on completion
                                    routes (after the model name was validated).
STUB_TOKEN_DELAY_MS  5              Delay between streamed chunks.
STUB_SHUTDOWN_GRACE  10             Seconds in-flight requests (streams included)
                                    may still run after SIGTERM/SIGINT.
STUB_MAX_NUM_SEQS    256            vllm flavor: completions running at once (vLLM
                                    ``--max-num-seqs``); later ones wait in FCFS order.
STUB_KV_CACHE_TOKENS 65536          vllm flavor: simulated KV cache size in tokens
                                    (blocks of 16).  A request holds the blocks of its
                                    prompt and generated tokens while it runs, and
                                    waits while its prompt's blocks do not fit.
VLLM_SERVER_DEV_MODE 0              vllm flavor: ``1`` exposes vLLM's dev routes
                                    (/sleep, /wake_up, /is_sleeping, /collective_rpc);
                                    otherwise they answer 404 like FastAPI.
STUB_SLEEP_SECONDS   1.0            Time a /sleep takes (falling asleep).
STUB_WAKE_SECONDS    0.3            Time a /wake_up takes.
STUB_RELOAD_SECONDS  1.0            Time collective_rpc ``reload_weights`` takes.
STUB_GPU_DIR         (unset)        Simulated GPU shared by every stub that mounts the
                                    same directory (e.g. a named volume at /gpu): each
                                    records its claim there (see "Simulated GPU").
STUB_GPU_MEMORY_GIB  24             Total memory of the simulated GPU.
STUB_GPU_SLEEP_RESIDUAL_GIB 1.5     What a member sleeping with --enable-sleep-mode
                                    still holds (CUDA context, buffers).
STUB_WEIGHTS_GIB     4              Size of the weights, reported when sleep frees them.
==================== ============== ================================================

Invalid values make the process exit 2 with a "configuration error" log line.

Routes
------
vllm flavor:   GET /health (200, empty body), GET /v1/models,
               POST /v1/chat/completions, POST /v1/completions, GET /metrics
               (Prometheus text format: vLLM 0.11.0's metric names, types, HELP,
               labels and buckets, with values from the requests served; see
               "vLLM metrics" below).  Ollama has no /metrics (404).
               With VLLM_SERVER_DEV_MODE=1 (else 404 {"detail":"Not Found"}):
               POST /sleep?level=1|2&mode=abort|wait|keep (200, empty body, after
               STUB_SLEEP_SECONDS), POST /wake_up[?tags=weights&tags=kv_cache] (200,
               empty), GET /is_sleeping ({"is_sleeping": bool}), POST /collective_rpc
               {"method": "reload_weights"} (200, empty).  See "Sleep mode" below.
ollama flavor: GET|HEAD / ("Ollama is running"), GET /api/version, GET /api/tags,
               POST /api/chat, POST /api/generate (``stream`` defaults to true:
               NDJSON), GET /v1/models, POST /v1/chat/completions,
               POST /v1/completions.
both:          GET /stub/config, POST /stub/config (JSON with any of latency_ms,
               error_rate, token_delay_ms, ready), GET /stub/stats (request counts
               per route, model and status), DELETE /stub/stats (reset), GET /stub/gpu
               ({"total_gib", "free_gib", "claims": {name: {"gib", "state"}}}).
               /stub/* answers even while loading and is not counted in the stats.

OpenAI routes stream as ``text/event-stream`` (role chunk, one chunk per word,
final chunk with finish_reason, optional usage chunk when
``stream_options.include_usage``, then ``data: [DONE]``).  ``max_tokens`` /
``max_completion_tokens`` (Ollama: ``options.num_predict``) caps the number of
words; a capped answer ends with finish_reason / done_reason ``length``.

Sleep mode (vllm flavor, as vLLM's sleep mode with newer vLLM's scheduler pause)
------------------------------------------------------------------------------------
/sleep pauses the scheduler (mode abort: running and queued completions end with
finish_reason "abort", streams included; wait: /sleep returns once they are done; keep:
they freeze and go on after the wake), then "falls asleep".  While asleep, completion
requests are accepted and held (the HTTP request hangs) until a full wake; /health,
/v1/models and /metrics answer as usual.  /wake_up?tags=weights wakes part of the engine:
/is_sleeping stays true and serving resumes only when every tag is awake.  After a level-2
sleep with --enable-sleep-mode the weights are garbage until collective_rpc
reload_weights: completions then answer "[stub NAME] garbage ..." instead of the usual text.
A second /sleep (mode abort still aborts) or /wake_up while awake is a logged no-op.
Gauge vllm:engine_sleep_state{sleep_state=awake|weights_offloaded|discard_all}: 1/0/0
awake, 0/1/0 level 1, 0/0/1 level 2.  Without --enable-sleep-mode /sleep still answers
200 and /is_sleeping turns true, but nothing is freed ("Sleep mode freed 0.00 GiB").

Simulated GPU (STUB_GPU_DIR set)
--------------------------------
Each member claims gpu_memory_utilization x STUB_GPU_MEMORY_GIB while awake,
STUB_GPU_SLEEP_RESIDUAL_GIB while asleep with --enable-sleep-mode (the full claim when
asleep without it).  It writes its claim to STUB_GPU_DIR/<STUB_NAME>.claim and holds an
exclusive flock on STUB_GPU_DIR/<STUB_NAME>.lock for its whole life: a claim whose lock
can be taken belongs to a dead (e.g. SIGKILLed) member and is ignored.  Claim changes are
serialized by a flock on STUB_GPU_DIR/.gpu.lock.  At startup, before binding the port,
a claim larger than the free memory fails as vLLM does (``ValueError: Free memory on
device cuda:0 ...`` then ``RuntimeError: Engine core initialization failed ...``, exit
1).  A /wake_up whose memory does not fit beside the others logs
``torch.OutOfMemoryError: CUDA out of memory ...``, answers 500 and exits 1: the stub's
choice for "the engine dies" (a real vLLM's engine core dies on such an error).

Shutdown: on SIGTERM or SIGINT the listening socket is closed at once, requests
already being served run to completion (up to STUB_SHUTDOWN_GRACE seconds), then
the process exits 0.  A second signal exits immediately with status 1.

Every request is logged to stderr as one line: method, path, status, duration.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from bisect import bisect_left
from collections import Counter, deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OLLAMA_VERSION = "0.12.6"
MAX_MODEL_LEN = 4096
MAX_BODY_BYTES = 16 * 1024 * 1024
SNIPPET_CHARS = 40
TRUTHY = {"1", "true", "yes", "on"}
FLAVORS = ("vllm", "ollama")


# --------------------------------------------------------------------------- config


class ConfigError(Exception):
    """An environment variable has an unusable value."""


def _env_number(env, name, default, *, lo=0.0, hi=None, integer=False):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < lo or (hi is not None and value > hi):
        bounds = f"a finite number >= {lo:g}" if hi is None else f"between {lo:g} and {hi:g}"
        raise ConfigError(f"{name}={raw!r} must be {bounds}")
    return value


def ollama_canonical(name):
    """Ollama treats ``llama3`` and ``llama3:latest`` as the same model."""
    name = name.strip()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


SLEEP_TAGS = ("weights", "kv_cache")
SLEEP_MODES = ("abort", "wait", "keep")
VLLM_ARGS = "--enable-sleep-mode, --gpu-memory-utilization F"


def parse_vllm_args(argv):
    """(enable_sleep_mode, gpu_memory_utilization) from vLLM ``serve``-style arguments."""
    enable_sleep_mode, utilization = False, 0.9
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--enable-sleep-mode":
            enable_sleep_mode = True
            continue
        if arg == "--gpu-memory-utilization" or arg.startswith("--gpu-memory-utilization="):
            if "=" in arg:
                raw = arg.split("=", 1)[1]
            elif args:
                raw = args.pop(0)
            else:
                raise ConfigError("--gpu-memory-utilization needs a value")
            try:
                utilization = float(raw)
            except ValueError:
                raise ConfigError(f"--gpu-memory-utilization {raw!r} is not a number") from None
            if not (math.isfinite(utilization) and 0 < utilization <= 1):
                raise ConfigError(f"--gpu-memory-utilization {raw!r} must be > 0 and <= 1")
            continue
        raise ConfigError(f"unknown argument {arg!r} (the stub accepts {VLLM_ARGS})")
    return enable_sleep_mode, utilization


class Settings:
    def __init__(self, env, argv=()):
        self.flavor = env.get("STUB_FLAVOR", "vllm").strip().lower() or "vllm"
        if self.flavor not in FLAVORS:
            raise ConfigError(f"STUB_FLAVOR={self.flavor!r} must be one of {', '.join(FLAVORS)}")
        models = []
        for raw in env.get("STUB_MODELS", "").split(","):
            raw = raw.strip()
            if not raw:
                continue
            name = ollama_canonical(raw) if self.flavor == "ollama" else raw
            if name not in models:
                models.append(name)
        if not models:
            models = [ollama_canonical("stub-model") if self.flavor == "ollama" else "stub-model"]
        self.models = tuple(models)
        self.name = env.get("STUB_NAME", "").strip() or f"{self.flavor}-stub"
        self.host = env.get("STUB_HOST", "").strip() or "0.0.0.0"
        self.port = _env_number(env, "STUB_PORT", 8000, hi=65535, integer=True)
        self.startup_delay = _env_number(env, "STUB_STARTUP_DELAY", 0.0)
        self.never_ready = env.get("STUB_NEVER_READY", "").strip().lower() in TRUTHY
        self.latency_ms = _env_number(env, "STUB_LATENCY_MS", 0.0)
        self.error_rate = _env_number(env, "STUB_ERROR_RATE", 0.0, hi=1.0)
        self.token_delay_ms = _env_number(env, "STUB_TOKEN_DELAY_MS", 5.0)
        self.shutdown_grace = _env_number(env, "STUB_SHUTDOWN_GRACE", 10.0)
        self.max_num_seqs = _env_number(env, "STUB_MAX_NUM_SEQS", 256, lo=1, integer=True)
        self.kv_cache_tokens = _env_number(
            env, "STUB_KV_CACHE_TOKENS", 65536, lo=KV_BLOCK_SIZE, integer=True
        )
        if argv and self.flavor != "vllm":
            raise ConfigError(f"arguments {list(argv)} are vLLM arguments: need STUB_FLAVOR=vllm")
        self.enable_sleep_mode, self.gpu_memory_utilization = parse_vllm_args(argv)
        dev = env.get("VLLM_SERVER_DEV_MODE", "").strip() or "0"
        try:  # vLLM: bool(int(os.getenv("VLLM_SERVER_DEV_MODE", "0")))
            self.dev_mode = self.flavor == "vllm" and bool(int(dev))
        except ValueError:
            raise ConfigError(f"VLLM_SERVER_DEV_MODE={dev!r} must be an integer (0 or 1)") from None
        self.sleep_seconds = _env_number(env, "STUB_SLEEP_SECONDS", 1.0)
        self.wake_seconds = _env_number(env, "STUB_WAKE_SECONDS", 0.3)
        self.reload_seconds = _env_number(env, "STUB_RELOAD_SECONDS", 1.0)
        self.gpu_dir = env.get("STUB_GPU_DIR", "").strip() or None
        self.gpu_memory_gib = _env_number(env, "STUB_GPU_MEMORY_GIB", 24.0)
        if self.gpu_memory_gib <= 0:
            raise ConfigError("STUB_GPU_MEMORY_GIB must be > 0")
        self.sleep_residual_gib = _env_number(env, "STUB_GPU_SLEEP_RESIDUAL_GIB", 1.5)
        self.weights_gib = _env_number(env, "STUB_WEIGHTS_GIB", 4.0)


# --------------------------------------------------------------------------- logging

_log_lock = threading.Lock()
_log_name = "stub"


def log(message):
    now = datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    line = f"{stamp} stub[{_log_name}] {message}\n"
    with _log_lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


# --------------------------------------------------------------------------- runtime state


class Runtime:
    """Mutable state shared by all request threads."""

    CONFIG_KEYS = ("latency_ms", "error_rate", "token_delay_ms", "ready")

    def __init__(self, settings):
        self.settings = settings
        self.lock = threading.Lock()
        self.latency_ms = settings.latency_ms
        self.error_rate = settings.error_rate
        self.token_delay_ms = settings.token_delay_ms
        self.ready = threading.Event()
        self.started = time.time()
        self._timer = None
        self.metrics = (
            VllmMetrics(settings.models[0], settings.max_num_seqs, settings.kv_cache_tokens)
            if settings.flavor == "vllm"
            else None
        )
        self.gpu = SimulatedGpu(settings)
        self.engine = (
            SleepEngine(settings, self.gpu, self.metrics) if settings.flavor == "vllm" else None
        )
        self.route_table = dict(ROUTES[settings.flavor])
        if settings.dev_mode:
            self.route_table.update(DEV_ROUTES)
        self.reset_stats()

    # loading -------------------------------------------------------------
    def begin_loading(self):
        s = self.settings
        if s.never_ready:
            log("loading... never ready (STUB_NEVER_READY=1): every route answers 503")
            return
        if s.startup_delay <= 0:
            self._mark_ready()
            return
        log(f"loading... (STUB_STARTUP_DELAY={s.startup_delay:g}s): answering 503 until ready")
        self._timer = threading.Timer(s.startup_delay, self._mark_ready)
        self._timer.daemon = True
        self._timer.start()

    def _mark_ready(self):
        self.ready.set()
        log(f"ready: flavor={self.settings.flavor} models={','.join(self.settings.models)}")

    def cancel_loading(self):
        if self._timer is not None:
            self._timer.cancel()

    # runtime config ------------------------------------------------------
    def config(self):
        with self.lock:
            return {
                "latency_ms": self.latency_ms,
                "error_rate": self.error_rate,
                "token_delay_ms": self.token_delay_ms,
                "ready": self.ready.is_set(),
            }

    def update_config(self, data):
        """Apply a /stub/config body; returns an error message or None."""
        if not isinstance(data, dict):
            return "body must be a JSON object"
        unknown = sorted(set(data) - set(self.CONFIG_KEYS))
        if unknown:
            return f"unknown key(s) {unknown}; allowed: {list(self.CONFIG_KEYS)}"
        numbers = {}
        for key in ("latency_ms", "error_rate", "token_delay_ms"):
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                return f"{key} must be a number >= 0"
            if key == "error_rate" and value > 1:
                return "error_rate must be between 0 and 1"
            numbers[key] = float(value)
        if "ready" in data and not isinstance(data["ready"], bool):
            return "ready must be true or false"
        with self.lock:
            for key, value in numbers.items():
                setattr(self, key, value)
        if data.get("ready") is True and not self.ready.is_set():
            self.cancel_loading()
            self._mark_ready()
        elif data.get("ready") is False and self.ready.is_set():
            self.ready.clear()
            log("not ready (set via /stub/config): answering 503")
        return None

    def latency(self):
        with self.lock:
            return self.latency_ms / 1000.0

    def token_delay(self):
        with self.lock:
            return self.token_delay_ms / 1000.0

    def should_fail(self):
        with self.lock:
            rate = self.error_rate
        return rate > 0 and random.random() < rate

    # stats ---------------------------------------------------------------
    def reset_stats(self):
        with self.lock:
            self.total = 0
            self.routes = Counter()
            self.models = Counter()
            self.statuses = Counter()

    def record(self, route, model, status):
        with self.lock:
            self.total += 1
            self.routes[route] += 1
            if model is not None:
                self.models[model] += 1
            self.statuses[str(status)] += 1

    def stats(self, in_flight):
        with self.lock:
            return {
                "name": self.settings.name,
                "flavor": self.settings.flavor,
                "ready": self.ready.is_set(),
                "uptime_s": round(time.time() - self.started, 3),
                "in_flight": in_flight,
                "requests_total": self.total,
                "routes": dict(self.routes),
                "models": dict(self.models),
                "statuses": dict(self.statuses),
            }


# --------------------------------------------------------------------------- simulated GPU


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


# --------------------------------------------------------------------------- sleep mode


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


# --------------------------------------------------------------------------- vLLM metrics
#
# GET /metrics of the vllm flavor.  Names, types, HELP texts, labels and buckets are those
# of vLLM 0.11.0 (the tag config/providers.yaml pins), vllm/v1/metrics/loggers.py,
# PrometheusStatLogger, restricted to the default series the stub can give real values;
# the text is laid out as prometheus_client's generate_latest() writes it (vLLM serves
# /metrics with it): counters as <name>_total plus a <name>_created gauge, labels sorted.
# Like vLLM, every series carries model_name (the first served name) and engine ("0": one
# engine, no data parallelism); vLLM 0.11.0 no longer exports vllm:gpu_cache_usage_perc
# unless started with --show-hidden-metrics-for-version=0.10.

KV_BLOCK_SIZE = 16  # vLLM's default --block-size
FINISH_REASONS = ("stop", "length", "abort")  # vllm.v1.engine.FinishReason at 0.11.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
                           40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


def buckets_1_2_5(max_value):
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max_value."""
    exponent, buckets = 0, []
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * 10**exponent > max_value:
                return tuple(buckets)
            buckets.append(mantissa * 10**exponent)
        exponent += 1


TOKEN_BUCKETS = buckets_1_2_5(MAX_MODEL_LEN)  # vLLM: max_model_len

GAUGES = (
    ("vllm:num_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
)
SLEEP_STATE = (  # registered right after the two gauges above, labelled sleep_state
    "vllm:engine_sleep_state",
    "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
    "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
)
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")  # index = sleep level
KV_USAGE = ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
COUNTERS = (
    ("vllm:prompt_tokens", "Number of prefill tokens processed."),
    ("vllm:generation_tokens", "Number of generation tokens processed."),
)
SUCCESS = ("vllm:request_success", "Count of successfully processed requests.")
HISTOGRAMS = (  # (attribute, name, HELP, buckets), in vLLM's registration order
    ("prompt_len", "vllm:request_prompt_tokens", "Number of prefill tokens processed.",
     TOKEN_BUCKETS),
    ("generation_len", "vllm:request_generation_tokens", "Number of generation tokens processed.",
     TOKEN_BUCKETS),
    ("ttft", "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
     TTFT_BUCKETS),
    ("tpot", "vllm:time_per_output_token_seconds",  # deprecated alias of the ITL, still on in 0.11
     "Histogram of time per output token in seconds."
     "DEPRECATED: Use vllm:inter_token_latency_seconds instead.", ITL_BUCKETS),
    ("itl", "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
     ITL_BUCKETS),
    ("e2e", "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
     REQUEST_LATENCY_BUCKETS),
    ("queue_time", "vllm:request_queue_time_seconds",
     "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS),
    ("inference", "vllm:request_inference_time_seconds",
     "Histogram of time spent in RUNNING phase for request.", REQUEST_LATENCY_BUCKETS),
    ("prefill", "vllm:request_prefill_time_seconds",
     "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS),
    ("decode", "vllm:request_decode_time_seconds",
     "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS),
)  # fmt: skip


def go_float(value):
    """A sample value as prometheus_client writes it (floatToGoString)."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def kv_blocks(tokens):
    return -(-tokens // KV_BLOCK_SIZE)


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one counts values above every bound
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.sum += value


class VllmMetrics:
    """One vLLM engine's scheduler (running / waiting, KV blocks) and its Prometheus series.

    A completion is admitted FCFS while a sequence slot is free and its prompt's KV blocks
    fit (as vLLM's scheduler does; a lone request always runs), holds blocks for its prompt
    and generated tokens while it runs, and releases them when it finishes.  Usage above
    the cache (vLLM would preempt) is reported as 1.  One lock guards it all: a few
    additions per token, nine histogram observations per request.
    """

    def __init__(self, model_name, max_num_seqs, kv_cache_tokens):
        escaped = model_name.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        self.labels = {"engine": "0", "model_name": escaped}
        self.max_num_seqs = max_num_seqs
        self.total_blocks = kv_blocks(kv_cache_tokens)
        self.created = time.time()
        self.cond = threading.Condition()
        self.queue = deque()  # tickets of waiting requests, oldest first
        self.running = 0
        self.held = 0  # requests held while the engine sleeps (waiting, in vLLM's terms)
        self.sleep_level = 0  # 0 awake, 1 weights offloaded, 2 discard all
        self.used_blocks = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = dict.fromkeys(FINISH_REASONS, 0)
        for attr, _name, _help, bounds in HISTOGRAMS:
            setattr(self, attr, Histogram(bounds))

    def _fits(self, blocks):
        return self.running == 0 or (
            self.running < self.max_num_seqs and self.used_blocks + blocks <= self.total_blocks
        )

    def admit(self, arrival, prompt_tokens):
        """Wait for the scheduler to take the request; returns its RequestTrace."""
        blocks = kv_blocks(prompt_tokens)
        with self.cond:
            queued = time.monotonic()
            if self.queue or not self._fits(blocks):
                ticket = object()
                self.queue.append(ticket)
                while self.queue[0] is not ticket or not self._fits(blocks):
                    self.cond.wait()
                self.queue.popleft()
                self.cond.notify_all()  # the next in line may fit as well
            self.running += 1
            self.used_blocks += blocks
        return RequestTrace(self, arrival, queued, prompt_tokens, blocks)

    def set_sleep(self, level):
        with self.cond:
            self.sleep_level = level

    def exposition(self):
        """The series as vLLM's /metrics writes them (prometheus_client's text format)."""
        with self.cond:
            gauges = (self.running, len(self.queue) + self.held)
            kv_usage = min(1.0, self.used_blocks / self.total_blocks)
            sleep_level = self.sleep_level
            counters = (self.prompt_tokens, self.generation_tokens)
            success = dict(self.success)
            histograms = [(h.counts.copy(), h.sum) for h in (getattr(self, a) for a, *_ in HISTOGRAMS)]
        created = go_float(self.created)
        out = []

        def family(name, kind, doc):
            out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")

        def sample(name, value, **extra):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted({**self.labels, **extra}.items()))
            out.append(f"{name}{{{labels}}} {value}\n")

        def counter(name, doc, values):  # values: [(extra labels, count)]
            family(f"{name}_total", "counter", doc)
            for extra, value in values:
                sample(f"{name}_total", go_float(value), **extra)
            family(f"{name}_created", "gauge", doc)
            for extra, _ in values:
                sample(f"{name}_created", created, **extra)

        for (name, doc), value in zip(GAUGES, gauges, strict=True):
            family(name, "gauge", doc)
            sample(name, go_float(value))
        family(SLEEP_STATE[0], "gauge", SLEEP_STATE[1])
        for level, state in enumerate(SLEEP_STATES):
            sample(SLEEP_STATE[0], go_float(1 if level == sleep_level else 0), sleep_state=state)
        family(KV_USAGE[0], "gauge", KV_USAGE[1])
        sample(KV_USAGE[0], go_float(kv_usage))
        for (name, doc), value in zip(COUNTERS, counters, strict=True):
            counter(name, doc, [({}, value)])
        counter(*SUCCESS, [({"finished_reason": r}, n) for r, n in success.items()])
        for (_, name, doc, bounds), (counts, total) in zip(HISTOGRAMS, histograms, strict=True):
            family(name, "histogram", doc)
            cumulative = 0
            for bound, count in zip((*bounds, math.inf), counts, strict=True):
                cumulative += count
                sample(f"{name}_bucket", go_float(cumulative), le=go_float(bound))
            sample(f"{name}_count", go_float(cumulative))
            sample(f"{name}_sum", go_float(total))
            family(f"{name}_created", "gauge", doc)
            sample(f"{name}_created", created)
        return "".join(out).encode()


class RequestTrace:
    """One admitted request: the timestamps vLLM's RequestStateStats keep, fed to the series."""

    __slots__ = ("metrics", "arrival", "queued", "scheduled", "first", "last", "prompt_tokens",
                 "generated", "blocks")  # fmt: skip

    def __init__(self, metrics, arrival, queued, prompt_tokens, blocks):
        self.metrics = metrics
        self.arrival = arrival  # monotonic time the HTTP request arrived
        self.queued = queued
        self.scheduled = time.monotonic()
        self.first = self.last = None
        self.prompt_tokens = prompt_tokens
        self.generated = 0
        self.blocks = blocks

    def tokens(self, count=1):
        """`count` tokens were generated just now (one engine step)."""
        now = time.monotonic()
        m = self.metrics
        with m.cond:
            if self.first is None:  # vLLM counts the prompt when prefill yields the first token
                self.first = now
                m.prompt_tokens += self.prompt_tokens
                m.ttft.observe(now - self.arrival)
            else:
                m.itl.observe(now - self.last)
                m.tpot.observe(now - self.last)
            self.last = now
            self.generated += count
            m.generation_tokens += count
            blocks = kv_blocks(self.prompt_tokens + self.generated)
            m.used_blocks += blocks - self.blocks
            self.blocks = blocks

    def finish(self, reason):
        now = time.monotonic()
        m = self.metrics
        first = self.first if self.first is not None else now
        last = self.last if self.last is not None else now
        with m.cond:
            m.running -= 1
            m.used_blocks -= self.blocks
            m.success[reason] += 1
            m.prompt_len.observe(self.prompt_tokens)
            m.generation_len.observe(self.generated)
            m.e2e.observe(now - self.arrival)
            m.queue_time.observe(self.scheduled - self.queued)
            m.inference.observe(last - self.scheduled)
            m.prefill.observe(first - self.scheduled)
            m.decode.observe(last - first)
            m.cond.notify_all()  # a slot and blocks are free for the next waiting request


# --------------------------------------------------------------------------- text generation


GARBAGE_TOKENS = ("\u2047", "<unk>", "\u0120\u0120", "\ufffd", "ilerin", "\u00e3\u0123",
                  "PostalCodesNL", "\u2581\u2581")  # fmt: skip


class Generation:
    """The canned answer for one request, split into word-sized tokens."""

    def __init__(self, name, last_user, prompt_text, limit):
        snippet = " ".join(last_user.split())[:SNIPPET_CHARS].rstrip()
        self.name = name
        self.limit = limit
        self.prompt_tokens = max(1, len(prompt_text.split()))
        self._set(f"[stub {name}] reply to: {snippet or '(no user message)'}")

    def _set(self, text):
        pieces = re.findall(r"\s*\S+", text)
        self.finish_reason = "stop"
        if self.limit is not None and len(pieces) > self.limit:
            pieces = pieces[: self.limit]
            self.finish_reason = "length"
        self.pieces = pieces
        self.text = "".join(pieces)
        self.completion_tokens = len(pieces)

    def garble(self):
        """The weights were discarded by a level-2 sleep and never reloaded."""
        digest = hashlib.sha256(self.text.encode()).digest()
        junk = " ".join(GARBAGE_TOKENS[b % len(GARBAGE_TOKENS)] for b in digest[:8])
        self._set(f"[stub {self.name}] garbage (weights not reloaded after sleep level 2): {junk}")

    def abort(self, generated):
        """Aborted after `generated` tokens (finish_reason "abort")."""
        self.pieces = self.pieces[:generated]
        self.text = "".join(self.pieces)
        self.completion_tokens = len(self.pieces)
        self.finish_reason = "abort"

    def usage(self):
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def content_text(content):
    """Text of an OpenAI/Ollama message content (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return ""


def chat_texts(messages):
    """(last user message text, all message text) of a chat request."""
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = content_text(message.get("content"))
            break
    everything = " ".join(content_text(m.get("content")) for m in messages if isinstance(m, dict))
    return last_user, everything


def iso_now():
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def sse(obj):
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def ndjson(obj):
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class RequestError(Exception):
    """Abort handling with an HTTP error (already formatted per route style)."""

    def __init__(self, status, message, etype=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.etype = etype


# --------------------------------------------------------------------------- server


class StubHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows which connections are serving a request.

    A connection counts as busy from accept() until its first request is
    answered, and again while any later (keep-alive) request is handled; idle
    keep-alive connections do not hold up shutdown.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, runtime):
        self.runtime = runtime
        self.draining = False
        self._cond = threading.Condition()
        self._busy = {}
        super().__init__(address, StubHandler)

    def process_request(self, request, client_address):
        with self._cond:
            self._busy[request] = True
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._cond:
            self._busy.pop(request, None)
            self._cond.notify_all()
        super().shutdown_request(request)

    def set_busy(self, request, busy):
        with self._cond:
            if request in self._busy:
                self._busy[request] = busy
            self._cond.notify_all()

    def in_flight(self):
        with self._cond:
            return sum(1 for busy in self._busy.values() if busy)

    def wait_idle(self, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._busy.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "inference-stub/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this

    def version_string(self):
        return self.server_version

    # ----------------------------------------------------------------- plumbing
    def handle_one_request(self):
        self._t0 = None
        self._status = None
        self._note = ""
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
            self._note = " (client disconnected)"
        finally:
            if self._t0 is not None and self._status is not None:
                ms = (time.monotonic() - self._t0) * 1000
                log(f"{self.command} {self.path} {self._status} {ms:.1f}ms{self._note}")
            self.server.set_busy(self.request, False)

    def parse_request(self):
        self.server.set_busy(self.request, True)
        self._t0 = time.monotonic()
        self._route = None
        self._model = None
        self._head = False
        return super().parse_request()

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by handle_one_request

    def log_message(self, format, *args):
        message = format % args
        if not message.startswith("Request timed out"):
            log(f"{self.address_string()} {message}")

    @property
    def settings(self):
        return self.server.runtime.settings

    @property
    def runtime(self):
        return self.server.runtime

    def _start(self, status, ctype, length=None, headers=()):
        """Send status line and headers; length None means a streamed body."""
        self._status = status
        if self._route is not None:
            self.runtime.record(self._route, self._model, status)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self._chunked = False
        if length is not None:
            self.send_header("Content-Length", str(length))
        elif self.request_version == "HTTP/1.1":
            self.send_header("Transfer-Encoding", "chunked")
            self._chunked = not self._head
        else:
            self.close_connection = True
        for key, value in headers:
            self.send_header(key, value)
        if self.server.draining or self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, status, body, ctype, headers=()):
        self._start(status, ctype, len(body), headers)
        if not self._head:
            self.wfile.write(body)

    def _send_json(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self._send(status, body, "application/json", headers)

    def _write(self, data):
        if self._head:
            return
        if self._chunked:
            data = f"{len(data):X}\r\n".encode() + data + b"\r\n"
        self.wfile.write(data)

    def _end_stream(self):
        if self._chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _pause(self, seconds):
        if seconds > 0:
            time.sleep(seconds)

    # ----------------------------------------------------------------- errors
    def _error_style(self):
        if self.settings.flavor == "vllm":
            return "openai"
        return "ollama-openai" if self._path.startswith("/v1/") else "ollama"

    def _send_error(self, status, message, etype=None, headers=()):
        style = self._error_style()
        if style == "ollama":
            body = {"error": message}
        elif style == "ollama-openai":
            kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
            body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        else:
            default = {
                400: "BadRequestError",
                404: "NotFoundError",
                413: "RequestEntityTooLarge",
                500: "InternalServerError",
                503: "ServiceUnavailableError",
            }.get(status, "Error")
            body = {
                "error": {
                    "message": message,
                    "type": etype or default,
                    "param": None,
                    "code": status,
                }
            }
        self._send_json(status, body, headers)

    def _no_route(self, allowed):
        if allowed:
            if self.settings.flavor == "vllm":
                return self._send_json(
                    405, {"detail": "Method Not Allowed"}, [("Allow", ", ".join(allowed))]
                )
            return self._send(
                405, b"405 method not allowed", "text/plain", [("Allow", ", ".join(allowed))]
            )
        if self.settings.flavor == "vllm":
            return self._send_json(404, {"detail": "Not Found"})
        return self._send(404, b"404 page not found", "text/plain")

    # ----------------------------------------------------------------- dispatch
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def _dispatch(self, method):
        path = urlsplit(self.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        self._path = path
        self._head = method == "HEAD"
        lookup = "GET" if self._head else method
        try:
            self._body = self._read_body()
        except RequestError as exc:
            self.close_connection = True
            return self._send_error(exc.status, exc.message)

        if path.startswith("/stub/"):
            handler = CONTROL_ROUTES.get(path, {}).get(lookup)
            if handler is None:
                return self._no_route(sorted(CONTROL_ROUTES.get(path, {})))
            return handler(self)

        table = self.runtime.route_table
        entry = table.get(path, {})
        handler, kind = entry.get(lookup, (None, None))
        self._route = f"{lookup} {path}" if handler else "unmatched"

        if not self.runtime.ready.is_set():
            return self._send_error(
                503,
                "Loading model: the stub inference server is not ready yet",
                headers=[("Retry-After", "1")],
            )
        if handler is None:
            return self._no_route(sorted(entry))
        if kind == "api":
            self._pause(self.runtime.latency())
        try:
            handler(self)
        except RequestError as exc:
            self._send_error(exc.status, exc.message, exc.etype)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            raise
        except Exception as exc:  # a bug in the stub: answer 500 rather than hang up
            log(f"internal error in {method} {path}: {exc!r}")
            if self._status is not None:  # already streaming: just drop the connection
                raise
            self._send_error(500, f"stub internal error: {exc!r}")

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise RequestError(400, "malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise RequestError(413, "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise RequestError(400, "invalid Content-Length") from None
        if size < 0:
            raise RequestError(400, "invalid Content-Length")
        if size > MAX_BODY_BYTES:
            raise RequestError(413, "request body too large")
        return self.rfile.read(size)

    def _json_body(self):
        try:
            data = json.loads(self._body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"invalid JSON body: {exc}") from None
        if not isinstance(data, dict):
            raise RequestError(400, "request body must be a JSON object")
        return data

    # ----------------------------------------------------------------- model helpers
    def _resolve_model(self, req):
        """Served model name for the request, or RequestError 400/404."""
        requested = req.get("model")
        if self.settings.flavor == "vllm":
            if requested is None:  # vLLM falls back to its (first) served model
                requested = self.settings.models[0]
            if not isinstance(requested, str):
                raise RequestError(400, "model must be a string")
            self._model = requested
            if requested not in self.settings.models:
                raise RequestError(404, f"The model `{requested}` does not exist.")
            return requested
        if not isinstance(requested, str) or not requested.strip():
            raise RequestError(400, "model is required")
        canonical = ollama_canonical(requested)
        self._model = canonical
        if canonical not in self.settings.models:
            raise RequestError(404, f'model "{requested}" not found, try pulling it first')
        return canonical

    def _maybe_fail(self):
        if self.runtime.should_fail():
            raise RequestError(500, "stub: injected error (STUB_ERROR_RATE / /stub/config)")

    @staticmethod
    def _limit_openai(req):
        for key in ("max_completion_tokens", "max_tokens"):
            value = req.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RequestError(400, f"{key} must be at least 1, got {value!r}.")
            return value
        return None

    @staticmethod
    def _limit_ollama(req):
        options = req.get("options") or {}
        if not isinstance(options, dict):
            raise RequestError(400, "options must be an object")
        value = options.get("num_predict")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(400, "num_predict must be an integer")
        return value if value > 0 else None  # -1 / -2 mean "no limit" in Ollama

    # ----------------------------------------------------------------- liveness routes
    def h_health(self):
        self._send(200, b"", None)  # vLLM: 200, empty body

    def h_ollama_root(self):
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def h_ollama_version(self):
        self._send_json(200, {"version": OLLAMA_VERSION})

    def h_metrics(self):
        self._send(200, self.runtime.metrics.exposition(), PROMETHEUS_CONTENT_TYPE)

    # ----------------------------------------------------------------- model lists
    def h_openai_models(self):
        created = int(self.runtime.started)
        data = []
        for model in self.settings.models:
            if self.settings.flavor == "vllm":
                data.append(
                    {
                        "id": model,
                        "object": "model",
                        "created": created,
                        "owned_by": "vllm",
                        "root": model,
                        "parent": None,
                        "max_model_len": MAX_MODEL_LEN,
                        "permission": [
                            {
                                "id": f"modelperm-{uuid.uuid4().hex}",
                                "object": "model_permission",
                                "created": created,
                                "allow_create_engine": False,
                                "allow_sampling": True,
                                "allow_logprobs": True,
                                "allow_search_indices": False,
                                "allow_view": True,
                                "allow_fine_tuning": False,
                                "organization": "*",
                                "group": None,
                                "is_blocking": False,
                            }
                        ],
                    }
                )
            else:
                owner = model.split("/")[-2] if "/" in model else "library"
                data.append({"id": model, "object": "model", "created": created, "owned_by": owner})
        self._send_json(200, {"object": "list", "data": data})

    def h_ollama_tags(self):
        modified = datetime.fromtimestamp(self.runtime.started, UTC)
        modified_at = modified.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        models = []
        for model in self.settings.models:
            digest = hashlib.sha256(model.encode()).hexdigest()
            match = re.search(r"(\d+(?:\.\d+)?)([bm])\b", model.rsplit(":", 1)[-1], re.IGNORECASE)
            size_label = f"{match.group(1)}{match.group(2).upper()}" if match else "unknown"
            models.append(
                {
                    "name": model,
                    "model": model,
                    "modified_at": modified_at,
                    "size": 100_000_000 + int(digest[:8], 16) % 4_000_000_000,
                    "digest": digest,
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "stub",
                        "families": ["stub"],
                        "parameter_size": size_label,
                        "quantization_level": "Q4_K_M",
                    },
                }
            )
        self._send_json(200, {"models": models})

    # ----------------------------------------------------------------- OpenAI completions
    def h_openai_chat(self):
        req = self._json_body()
        model = self._resolve_model(req)
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "messages must be a non-empty list")
        limit = self._limit_openai(req)
        self._maybe_fail()
        last_user, everything = chat_texts(messages)
        gen = Generation(self.settings.name, last_user, everything, limit)
        self._openai_respond(req, model, gen, chat=True)

    def h_openai_completions(self):
        req = self._json_body()
        model = self._resolve_model(req)
        prompt = req.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompt = prompt[0]
        elif isinstance(prompt, list) and prompt:
            prompt = "(token ids)"
        if not isinstance(prompt, str):
            raise RequestError(400, "prompt must be a string or a list of strings")
        limit = self._limit_openai(req)
        self._maybe_fail()
        gen = Generation(self.settings.name, prompt, prompt, limit)
        self._openai_respond(req, model, gen, chat=False)

    def _openai_respond(self, req, model, gen, chat):
        metrics = self.runtime.metrics
        self._epoch = None
        if metrics is None:
            return self._openai_write(req, model, gen, chat, None)
        engine = self.runtime.engine
        self._epoch = epoch = engine.enter()  # held here while the engine sleeps
        try:
            if epoch is None:  # aborted by a /sleep while it was held
                gen.abort(0)
            elif engine.weights_garbage():
                gen.garble()
            trace = metrics.admit(self._t0, gen.prompt_tokens)
            reason = "abort"  # unless the whole answer was written (a client that hung up)
            try:
                self._openai_write(req, model, gen, chat, trace)
                reason = gen.finish_reason
            finally:
                trace.finish(reason)
        finally:
            if epoch is not None:
                engine.leave()

    def _running(self):
        """False once the request was aborted by /sleep; waits while frozen (mode=keep)."""
        engine = self.runtime.engine
        return engine is None or engine.step(self._epoch)

    def _openai_write(self, req, model, gen, chat, trace):
        vllm = self.settings.flavor == "vllm"
        if vllm:
            rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        else:
            rid = ("chatcmpl-" if chat else "cmpl-") + str(random.randint(0, 999))
        created = int(time.time())
        base = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": model,
        }
        if not vllm:
            base["system_fingerprint"] = "fp_ollama"

        def choice(**fields):
            out = {"index": 0}
            out.update(fields)
            if vllm:
                out.setdefault("logprobs", None)
            return out

        stream = bool(req.get("stream", False))
        if not stream:
            if gen.finish_reason != "abort" and not self._running():
                gen.abort(0)
            if trace is not None and gen.completion_tokens:  # the whole answer in one step
                trace.tokens(gen.completion_tokens)
            if chat:
                message = {"role": "assistant", "content": gen.text}
                if vllm:
                    message.update({"reasoning_content": None, "tool_calls": []})
                ch = choice(message=message, finish_reason=gen.finish_reason)
            else:
                ch = choice(text=gen.text, finish_reason=gen.finish_reason)
            if vllm:
                ch["stop_reason"] = None
            body = dict(base, choices=[ch], usage=gen.usage())
            if vllm:
                body["prompt_logprobs"] = None
            return self._send_json(200, body)

        options = req.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        if chat:
            base["object"] = "chat.completion.chunk"
        self._start(
            200, "text/event-stream; charset=utf-8", headers=[("Cache-Control", "no-cache")]
        )
        delay = self.runtime.token_delay()
        first = True

        def emit(obj):
            nonlocal first
            if not first:
                self._pause(delay)
            first = False
            self._write(sse(obj))

        if chat:
            emit(
                dict(
                    base,
                    choices=[
                        choice(delta={"role": "assistant", "content": ""}, finish_reason=None)
                    ],
                )
            )
        for index, piece in enumerate(list(gen.pieces)):
            if not self._running():
                gen.abort(index)
                break
            if chat:
                ch = choice(delta={"content": piece}, finish_reason=None)
            else:
                ch = choice(text=piece, finish_reason=None)
            emit(dict(base, choices=[ch]))
            if trace is not None:
                trace.tokens()
        final = (
            choice(delta={}, finish_reason=gen.finish_reason)
            if chat
            else choice(text="", finish_reason=gen.finish_reason)
        )
        if vllm:
            final["stop_reason"] = None
        emit(dict(base, choices=[final]))
        if include_usage:
            emit(dict(base, choices=[], usage=gen.usage()))
        self._write(b"data: [DONE]\n\n")
        self._end_stream()

    # ----------------------------------------------------------------- Ollama native
    def h_ollama_chat(self):
        req = self._json_body()
        model = self._resolve_model(req)
        messages = req.get("messages")
        if messages is not None and not isinstance(messages, list):
            raise RequestError(400, "messages must be a list")
        limit = self._limit_ollama(req)
        if not messages:  # Ollama: chat without messages just loads the model
            return self._send_json(
                200,
                {
                    "model": model,
                    "created_at": iso_now(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "load",
                    "done": True,
                },
            )
        self._maybe_fail()
        last_user, everything = chat_texts(messages)
        gen = Generation(self.settings.name, last_user, everything, limit)
        self._ollama_respond(req, model, gen, chat=True)

    def h_ollama_generate(self):
        req = self._json_body()
        model = self._resolve_model(req)
        prompt = req.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise RequestError(400, "prompt must be a string")
        limit = self._limit_ollama(req)
        if not prompt:  # Ollama: generate without prompt just loads the model
            return self._send_json(
                200,
                {
                    "model": model,
                    "created_at": iso_now(),
                    "response": "",
                    "done": True,
                    "done_reason": "load",
                },
            )
        self._maybe_fail()
        system = req.get("system") if isinstance(req.get("system"), str) else ""
        gen = Generation(self.settings.name, prompt, f"{system} {prompt}", limit)
        self._ollama_respond(req, model, gen, chat=False)

    def _ollama_respond(self, req, model, gen, chat):
        t0 = time.monotonic_ns()
        stream = req.get("stream", True)  # Ollama streams unless told otherwise
        stream = True if stream is None else bool(stream)

        def partial(text):
            out = {"model": model, "created_at": iso_now()}
            if chat:
                out["message"] = {"role": "assistant", "content": text}
            else:
                out["response"] = text
            return out

        def final(text):
            out = partial(text)
            total = max(time.monotonic_ns() - t0, 1000)
            out.update(
                {
                    "done": True,
                    "done_reason": gen.finish_reason,
                    "total_duration": total,
                    "load_duration": min(total, 250_000),
                    "prompt_eval_count": gen.prompt_tokens,
                    "prompt_eval_duration": min(total, 1_000_000),
                    "eval_count": gen.completion_tokens,
                    "eval_duration": total,
                }
            )
            if not chat:
                out["context"] = list(range(1, gen.prompt_tokens + gen.completion_tokens + 1))
            return out

        if not stream:
            return self._send_json(200, final(gen.text))
        self._start(200, "application/x-ndjson")
        delay = self.runtime.token_delay()
        for index, piece in enumerate(gen.pieces):
            if index:
                self._pause(delay)
            chunk = partial(piece)
            chunk["done"] = False
            self._write(ndjson(chunk))
        self._pause(delay)
        self._write(ndjson(final("")))
        self._end_stream()

    # ----------------------------------------------------------------- vLLM dev routes
    def _query(self):
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def h_sleep(self):
        query = self._query()
        raw_level = query.get("level", ["1"])[-1]
        mode = query.get("mode", ["abort"])[-1]
        try:
            level = int(raw_level)
        except ValueError:
            raise RequestError(400, f"level must be 1 or 2, got {raw_level!r}") from None
        if level not in (1, 2):
            raise RequestError(400, f"level must be 1 or 2, got {raw_level!r}")
        if mode not in SLEEP_MODES:
            raise RequestError(400, f"mode must be one of {', '.join(SLEEP_MODES)}, got {mode!r}")
        self.runtime.engine.sleep(level, mode)
        self._send(200, b"", None)  # vLLM 0.11: 200, empty body

    def h_wake_up(self):
        tags = self._query().get("tags", [])
        try:
            self.runtime.engine.wake_up(tags)
        except EngineDied as exc:
            for line in str(exc).splitlines():
                log(line)
            log("EngineCore died (stub: CUDA out of memory on wake_up); exiting with status 1")
            self._send_error(500, str(exc), "InternalServerError")
            with contextlib.suppress(OSError):
                self.wfile.flush()
            sys.stderr.flush()
            os._exit(1)
        self._send(200, b"", None)

    def h_is_sleeping(self):
        self._send_json(200, {"is_sleeping": self.runtime.engine.is_sleeping()})

    def h_collective_rpc(self):
        try:
            body = json.loads(self._body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"JSON decode error: {exc}") from None
        method = body.get("method") if isinstance(body, dict) else None
        if method is None:
            raise RequestError(400, "Missing 'method' in request body")
        if method != "reload_weights":
            raise RequestError(500, f"stub: collective_rpc method {method!r} is not simulated "
                                    "(only reload_weights)")  # fmt: skip
        self.runtime.engine.reload_weights()
        self._send(200, b"", None)

    # ----------------------------------------------------------------- /stub control
    def h_stub_gpu(self):
        self._send_json(200, self.runtime.gpu.snapshot())

    def h_stub_config_get(self):
        self._send_json(200, self.runtime.config())

    def h_stub_config_post(self):
        try:
            data = self._json_body()
        except RequestError as exc:
            return self._send_json(400, {"error": exc.message})
        problem = self.runtime.update_config(data)
        if problem:
            return self._send_json(400, {"error": problem})
        config = self.runtime.config()
        log(f"config updated: {json.dumps(config, sort_keys=True)}")
        self._send_json(200, config)

    def h_stub_stats(self):
        self._send_json(200, self.runtime.stats(self.server.in_flight()))

    def h_stub_stats_reset(self):
        self.runtime.reset_stats()
        self._send_json(200, self.runtime.stats(self.server.in_flight()))


H = StubHandler
ROUTES = {
    "vllm": {
        "/health": {"GET": (H.h_health, "liveness")},
        "/v1/models": {"GET": (H.h_openai_models, "api")},
        "/v1/chat/completions": {"POST": (H.h_openai_chat, "api")},
        "/v1/completions": {"POST": (H.h_openai_completions, "api")},
        "/metrics": {"GET": (H.h_metrics, "metrics")},
    },
    "ollama": {
        "/": {"GET": (H.h_ollama_root, "liveness")},
        "/api/version": {"GET": (H.h_ollama_version, "liveness")},
        "/api/tags": {"GET": (H.h_ollama_tags, "api")},
        "/api/chat": {"POST": (H.h_ollama_chat, "api")},
        "/api/generate": {"POST": (H.h_ollama_generate, "api")},
        "/v1/models": {"GET": (H.h_openai_models, "api")},
        "/v1/chat/completions": {"POST": (H.h_openai_chat, "api")},
        "/v1/completions": {"POST": (H.h_openai_completions, "api")},
    },
}
DEV_ROUTES = {  # vllm flavor with VLLM_SERVER_DEV_MODE=1 only
    "/sleep": {"POST": (H.h_sleep, "dev")},
    "/wake_up": {"POST": (H.h_wake_up, "dev")},
    "/is_sleeping": {"GET": (H.h_is_sleeping, "dev")},
    "/collective_rpc": {"POST": (H.h_collective_rpc, "dev")},
}
CONTROL_ROUTES = {
    "/stub/gpu": {"GET": H.h_stub_gpu},
    "/stub/config": {"GET": H.h_stub_config_get, "POST": H.h_stub_config_post},
    "/stub/stats": {"GET": H.h_stub_stats, "DELETE": H.h_stub_stats_reset},
}
LIVENESS_PATH = {"vllm": "/health", "ollama": "/api/version"}


# --------------------------------------------------------------------------- entry points


def healthcheck(env):
    """Probe the local server; 0 if it answers 200, else 1 (Docker HEALTHCHECK)."""
    try:
        flavor = env.get("STUB_FLAVOR", "vllm").strip().lower() or "vllm"
        port = _env_number(env, "STUB_PORT", 8000, lo=1, hi=65535, integer=True)
    except ConfigError as exc:
        print(f"unhealthy: {exc}")
        return 1
    url = f"http://127.0.0.1:{port}{LIVENESS_PATH.get(flavor, '/health')}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=3) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    print(f"{'healthy' if status == 200 else 'unhealthy'}: {url} -> {status}")
    return 0 if status == 200 else 1


def serve(settings):
    global _log_name
    _log_name = settings.name
    runtime = Runtime(settings)
    problem = runtime.gpu.start()  # vLLM's memory check comes before the port is served
    if problem:
        sys.stderr.write("".join(f"{line}\n" for line in problem))
        sys.stderr.flush()
        return 1
    stop = threading.Event()
    received = []

    def on_signal(signum, _frame):
        if stop.is_set():
            log(f"{signal.Signals(signum).name} again: exiting without waiting")
            os._exit(1)
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = StubHTTPServer((settings.host, settings.port), runtime)
    except OSError as exc:
        log(f"cannot listen on {settings.host}:{settings.port}: {exc}")
        return 1
    port = server.server_address[1]
    log(
        f"listening on {settings.host}:{port} flavor={settings.flavor} "
        f"models={','.join(settings.models)} (stub inference server, not a real model)"
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http-accept", daemon=True
    )
    thread.start()
    runtime.begin_loading()

    while not stop.wait(0.5):
        pass

    server.draining = True
    busy = server.in_flight()
    log(
        f"{received[0] if received else 'signal'} received: not accepting new connections; "
        f"waiting for {busy} in-flight request(s) (up to {settings.shutdown_grace:g}s)"
    )
    try:  # wakes the accept loop now rather than at its next poll
        server.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    server.shutdown()
    server.server_close()
    runtime.cancel_loading()
    if server.wait_idle(settings.shutdown_grace):
        log("shutdown complete")
        return 0
    log(f"shutdown grace expired with {server.in_flight()} request(s) in flight; exiting")
    sys.stderr.flush()
    os._exit(0)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if argv == ["--healthcheck"]:
        return healthcheck(os.environ)
    try:
        settings = Settings(os.environ, argv)
    except ConfigError as exc:
        log(f"configuration error: {exc}")
        return 2
    return serve(settings)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # nothing is left to clean up; interpreter teardown alone took ~60 ms
