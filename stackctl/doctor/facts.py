"""Gathering what the doctor judges (effects, injected through `Machine`): the registry,
the Docker adapter and the engine's `docker info`, GPU specs, the images the default
profiles need."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackctl.registry.checks import check
from stackctl.registry.load import Registry, load_registry
from stackctl.registry.problems import Problem, RegistryError, display_path
from stackctl.render.compose import render_compose
from stackctl.targets.compose_plan import services_of

CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
NVIDIA_HOOK = "nvidia-container-runtime-hook"  # on dockerd's PATH: `driver: nvidia` works


def _disk_free(path: str) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:  # not on this machine (a remote engine), or not ours to stat
        return None


@dataclass
class Machine:
    """The doctor's effects. `docker_for(reg or None)` makes the Docker adapter;
    `check_ports(reg, docker)` (None: stackctl.ports.check) lists the stack's ports."""

    docker_for: Callable[[Registry | None], Any]
    disk_free: Callable[[str], int | None] = _disk_free
    cdi_dirs: tuple[Path, ...] = CDI_DIRS
    which: Callable[[str], str | None] = shutil.which
    check_ports: Callable[[Registry, Any], list[Any]] | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)


@dataclass
class Facts:
    """What every check may read, gathered once before they run."""

    where: str
    reg: Registry | None
    problems: list[Problem]
    docker: Any = None
    docker_error: Exception | None = None
    engine: dict[str, Any] | None = None
    engine_error: Exception | None = None


def load(config_dir: Path, folder_problem: str | None = None
         ) -> tuple[Registry | None, list[Problem]]:
    """The registry and its problems; (None, why) when it does not load."""
    if folder_problem:
        return None, [Problem(severity="error", file=display_path(config_dir),
                              message=folder_problem)]
    try:
        reg = load_registry(config_dir)
    except RegistryError as exc:
        return None, exc.problems
    return reg, check(reg)


def gpu_users(reg: Registry) -> list[str]:
    """Enabled providers whose container reserves a GPU (needs the NVIDIA runtime)."""
    return [name for name, p in reg.providers.providers.items()
            if p.enabled and p.container and p.container.gpu and p.container.gpu.count > 0]


def cdi_gpu_specs(dirs: tuple[Path, ...]) -> list[str]:
    """CDI spec files (yaml/json) in `dirs` that declare nvidia.com/gpu devices."""
    out = []
    for d in dirs:
        try:
            files = sorted(d.iterdir())
        except OSError:
            continue
        for f in files:
            if f.suffix in (".yaml", ".yml", ".json"):
                try:
                    if "nvidia.com/gpu" in f.read_text(errors="replace"):
                        out.append(str(f))
                except OSError:
                    continue
    return out


def needed_images(reg: Registry) -> tuple[list[str], dict[str, str]]:
    """(default profiles, service → image) for the services `up` starts with no profile
    given, as the compose file `up` writes would name them (rendered in memory: neither a
    generated file nor .env is needed, and a stale file does not mislead)."""
    profiles = list(reg.stack.default_profiles)
    services = render_compose(reg)["services"]
    return profiles, {s: services[s]["image"] for s in services_of(reg, profiles)
                      if s in services and services[s].get("image")}


def gather(config_dir: Path, machine: Machine, folder_problem: str | None = None) -> Facts:
    """Load the registry, make the Docker adapter and ask the engine once (`docker info`)."""
    where = display_path(config_dir)
    try:
        reg, problems = load(config_dir, folder_problem)
    except Exception as exc:  # e.g. a file it may not read: still check the rest
        reg, problems = None, [Problem(severity="error", file=where,
                                       message=f"{type(exc).__name__}: {exc}")]
    facts = Facts(where=where, reg=reg, problems=problems)
    try:
        facts.docker = machine.docker_for(reg)
    except Exception as exc:
        facts.docker_error = exc
        return facts
    try:
        facts.engine = facts.docker.info()
    except Exception as exc:
        facts.engine_error = exc
    return facts
