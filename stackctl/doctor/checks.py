"""The doctor's checks, one function each (facts → `judge`), run side by side by `diagnose`:
one that fails or raises does not stop the others; an exception becomes a fail line naming
the check, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stackctl.docker.adapter import DockerError, EngineUnreachable
from stackctl.doctor.facts import NVIDIA_HOOK, Facts, Machine, cdi_gpu_specs, gather, gpu_users, needed_images
from stackctl.doctor.judge import (
    BUG_FIX,
    Check,
    Report,
    fail,
    judge_compose,
    judge_disk,
    judge_engine,
    judge_env,
    judge_images,
    judge_models,
    judge_nvidia,
    judge_ports,
    judge_registry,
    ok,
    warn,
)
from stackctl.ports import check as ports
from stackctl.registry.model_checks import model_files
from stackctl.registry.problems import display_path
from stackctl.store.envfile import EnvFileError, read_env
from stackctl.targets.compose_up import missing_images


def check_engine(facts: Facts, machine: Machine) -> Check:
    return judge_engine(facts.engine, facts.engine_error or facts.docker_error,
                        machine.environ.get("DOCKER_HOST"))


def check_compose(facts: Facts, machine: Machine) -> Check:
    if facts.docker is None:
        return judge_compose(None, facts.docker_error)
    try:
        return judge_compose(facts.docker.compose_version(), None)
    except DockerError as exc:
        return judge_compose(None, exc)


def check_nvidia(facts: Facts, machine: Machine) -> Check:
    runtimes = facts.engine["runtimes"] if facts.engine else None
    users = gpu_users(facts.reg) if facts.reg else None
    return judge_nvidia(runtimes, cdi_gpu_specs(machine.cdi_dirs), machine.which(NVIDIA_HOOK),
                        users)


def check_disk(facts: Facts, machine: Machine) -> Check:
    root = facts.engine["root_dir"] if facts.engine else None
    return judge_disk(root, machine.disk_free(root) if root else None)


def check_registry(facts: Facts, machine: Machine) -> Check:
    return judge_registry(facts.where, facts.reg, facts.problems)


def _not_checked(name: str, facts: Facts, engine: bool = True) -> Check | None:
    if facts.reg is None:
        return warn(name, "not checked: the registry does not load", "see the registry check")
    if engine and facts.engine is None:
        return warn(name, "not checked: no Docker engine answers", "see the engine check")
    return None


def check_ports(facts: Facts, machine: Machine) -> Check:
    if facts.reg is None:
        return warn("ports", "not checked: the registry does not load", "see the registry check")
    if facts.docker is None:
        return warn("ports", "not checked: no Docker engine answers", "see the engine check")
    checker, explain = machine.check_ports, None
    if checker is None:
        checker = ports.check_ports

        def explain(st: Any) -> tuple[str, str]:
            who = ports.describe(st.holder, st.address) if st.holder else "another program"
            return who, ports.advice(st)
    return judge_ports(checker(facts.reg, facts.docker), explain)


def check_images(facts: Facts, machine: Machine) -> Check:
    skipped = _not_checked("images", facts)
    if skipped:
        return skipped
    assert facts.reg is not None
    profiles, images = needed_images(facts.reg)
    return judge_images(profiles, images, missing_images(images, facts.docker.image_exists))


def check_models(facts: Facts, machine: Machine) -> Check:
    """A llama.cpp model file in a named volume is looked for there (`validate` checks those
    on host paths): missing, the server exits after its start period."""
    skipped = _not_checked("models", facts)
    if skipped:
        return skipped
    assert facts.reg is not None
    target = facts.reg.stack.deploy.target
    if target != "compose":  # the volumes are the nodes', not this engine's
        return ok("models", f"not looked for: on {target} the volumes live on its nodes")
    providers = facts.reg.providers.providers
    found: list[tuple[str, str, str, bool | None | str]] = []
    for f in model_files(facts.reg):
        if not f.in_volume:
            continue
        image = facts.reg.stack.images.get(f.provider) or providers[f.provider].container.image  # type: ignore[union-attr]
        there: bool | None | str
        if not facts.docker.image_exists(image):
            there = f"its image {image} is not here"
        else:
            there = facts.docker.volume_file(f.source, f.relative, image)
        found.append((f.provider, f.path, str(f.source), there))
    return judge_models(found)


def check_env(facts: Facts, machine: Machine) -> Check:
    skipped = _not_checked("env", facts, engine=False)
    if skipped:
        return skipped
    reg = facts.reg
    assert reg is not None
    names = [reg.stack.gateway.master_key_env]
    if reg.stack.cache.enabled:
        names.append(reg.stack.cache.password_env)
    path = reg.env_file
    shown = display_path(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return judge_env(shown, None, dict.fromkeys(names))
    try:
        values = read_env(path, machine.environ)
    except EnvFileError as exc:
        return judge_env(shown, mode, dict.fromkeys(names), str(exc))
    # as Compose reads it: a host variable (even an empty one) wins over the file
    defined = {n: ("environment" if machine.environ[n] else None) if n in machine.environ
               else ("file" if values.get(n) else None) for n in names}
    return judge_env(shown, mode, defined)


CHECKS: list[tuple[str, Callable[[Facts, Machine], Check]]] = [
    ("engine", check_engine), ("compose", check_compose), ("nvidia", check_nvidia),
    ("disk", check_disk), ("registry", check_registry), ("ports", check_ports),
    ("images", check_images), ("models", check_models), ("env", check_env),
]


def guarded(name: str, fn: Callable[[Facts, Machine], Check], facts: Facts,
            machine: Machine) -> Check:
    """The check's own line; whatever it raises becomes a fail line naming it."""
    try:
        return fn(facts, machine)
    except EngineUnreachable:
        return warn(name, "not checked: no Docker engine answers", "see the engine check")
    except DockerError as exc:
        return fail(name, str(exc), "Docker refused (its message above); `docker info` and "
                    "the dockerd log say more")
    except OSError as exc:
        return fail(name, str(exc), "check that the path exists and that you may read it")
    except Exception as exc:
        return fail(name, f"the check could not run: {type(exc).__name__}: {exc}", BUG_FIX)


def diagnose(config_dir: Path, machine: Machine, folder_problem: str | None = None,
             checks: list[tuple[str, Callable[[Facts, Machine], Check]]] | None = None) -> Report:
    """Every check, side by side, in `CHECKS` order. `folder_problem`: why `config_dir` is
    not a registry folder (the CLI's -C check), reported by the registry check."""
    facts = gather(config_dir, machine, folder_problem)
    todo = CHECKS if checks is None else checks
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: guarded(c[0], c[1], facts, machine), todo))
    return Report(checks=results)

