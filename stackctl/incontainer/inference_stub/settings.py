"""The stub's configuration: environment variables and vLLM ``serve`` arguments."""

from __future__ import annotations

import math

MAX_MODEL_LEN = 4096
KV_BLOCK_SIZE = 16  # vLLM's default --block-size
TRUTHY = {"1", "true", "yes", "on"}
FLAVORS = ("vllm", "ollama")


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

