"""`reload`: apply registry edits to the running gateway without failing a request.

The gateway runs LiteLLM under gunicorn. On SIGHUP gunicorn starts new workers, which read
the config folder again, and lets the old ones finish their requests; connections that
arrive meanwhile wait in the listen queue instead of being refused, and a request already
on its way to a worker that shuts down is still answered by it (stackctl's gateway image
patches uvicorn for that: stackctl.incontainer.graceful_shutdown). So a reload is:
render → check with the real LiteLLM inside the gateway image → back up what is on disk →
write atomically → HUP → wait for the new workers → verify the model list. Any failure
after the write puts the backup back the same way (restart instead of HUP if the gateway
died) and verifies it.

Backups are folders `<output_dir>/backups/<ID>/` holding the gateway's config files; ID is
the UTC time of the backup. Retention keeps the 10 most recent, the newest of each of the
last 7 days and the newest of each of the last 4 weeks.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from ruamel.yaml import YAML

from stackctl.docker.adapter import Docker, DockerError, EngineUnreachable
from stackctl.errors import PlanError
from stackctl.gateway.client import Gateway
from stackctl.incontainer import GATEWAY_CHECK
from stackctl.registry.load import Registry
from stackctl.registry.vocabulary import GATEWAY
from stackctl.render.compose import render_compose
from stackctl.render.files import Generated, render_all
from stackctl.store.envfile import compose_value
from stackctl.store.generated import write_all
from stackctl.store.lock import stack_lock
from stackctl.store.retention import new_id, parse_id, retained

GATEWAY_DIR = "litellm"  # the gateway's config folder inside output_dir (mounted whole)


class ReloadFailed(Exception):
    """The new config did not serve; `restored`: the previous one serves again."""

    def __init__(self, message: str, restored: bool):
        super().__init__(message)
        self.restored = restored


class Backup(BaseModel):
    id: str = Field(description="UTC time of the backup, e.g. 20261129T041503Z")
    path: Path
    files: list[str] = Field(description="file names, relative to the gateway's config folder")
    current: bool = Field(description="identical to the config on disk now")


class ReloadResult(BaseModel):
    changed: list[str] = Field(description="gateway files to apply: those that differ from "
                               "disk, and those on disk the gateway's workers have not read")
    unloaded: list[str] = Field(default_factory=list, description="files on disk as the "
                                "registry renders them, written after the gateway's workers "
                                "started (e.g. by `stackctl generate`)")
    diff: str = Field(description="unified diff, disk → new")
    backup: str | None = Field(None, description="ID of the backup taken before writing")
    applied: bool = False
    models: list[str] = Field(default_factory=list, description="models the gateway lists after")
    seconds: float = 0.0


# -- backups on disk --------------------------------------------------------------------------------

def backups_dir(reg: Registry) -> Path:
    return reg.output_dir / "backups"


def gateway_files(files: list[Generated], reg: Registry) -> list[Generated]:
    folder = reg.output_dir / GATEWAY_DIR
    return [f for f in files if f.path.parent == folder]


def list_backups(reg: Registry) -> list[Backup]:
    root = backups_dir(reg)
    folder = reg.output_dir / GATEWAY_DIR
    out = []
    for path in sorted(root.iterdir() if root.is_dir() else [], reverse=True):
        try:
            parse_id(path.name)
        except ValueError:
            continue  # not ours
        names = sorted(p.name for p in path.iterdir() if p.is_file())
        current = all((folder / n).is_file() and (folder / n).read_bytes() == (path / n).read_bytes()
                      for n in names)
        out.append(Backup(id=path.name, path=path, files=names, current=current))
    return out


def take_backup(reg: Registry, now: datetime) -> str | None:
    """Copy the gateway's config folder as it is on disk into a new backup; prune by the
    retention rule. None when there is nothing on disk yet."""
    folder = reg.output_dir / GATEWAY_DIR
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    root = backups_dir(reg)
    backup_id = new_id(now, {p.name for p in root.iterdir()} if root.is_dir() else set())
    staging = root / f".{backup_id}.tmp"
    try:
        shutil.copytree(folder, staging)
        staging.rename(root / backup_id)  # a backup is whole or absent
    except OSError as exc:  # a full disk: no half-copied staging left, older backups kept
        shutil.rmtree(staging, ignore_errors=True)
        raise PlanError(f"could not take a backup in {root}: {exc.strerror or exc}; nothing "
                        "was changed") from None
    ids = [b.id for b in list_backups(reg)]
    for old in set(ids) - retained(ids, now):
        shutil.rmtree(root / old, ignore_errors=True)
    return backup_id


def backup_files(reg: Registry, backup_id: str) -> list[Generated]:
    """The files of a backup as the set to write back (the folder's other files stay)."""
    source = backups_dir(reg) / backup_id
    if not source.is_dir():
        known = ", ".join(b.id for b in list_backups(reg)) or "none"
        raise PlanError(f"no backup {backup_id!r} (backups: {known}; `stackctl backups` lists them)")
    folder = reg.output_dir / GATEWAY_DIR
    return [Generated(folder / p.name, p.read_text(encoding="utf-8"))
            for p in sorted(source.iterdir()) if p.is_file()]


# -- the gateway ---------------------------------------------------------------------------------------

def check_in_image(docker: Docker, image: str, files: list[Generated]) -> list[str]:
    """Errors the real LiteLLM finds in `files` (as they would be mounted), [] when none."""
    with tempfile.TemporaryDirectory(prefix="stackctl-check-") as tmp:
        for f in files:
            (Path(tmp) / f.path.name).write_text(f.text, encoding="utf-8")
        try:
            out = docker.run_python(image, GATEWAY_CHECK, ["/check"], [(Path(tmp), "/check")])
            report = json.loads(out.strip().splitlines()[-1])
        except EngineUnreachable:
            raise
        except (DockerError, ValueError, IndexError) as exc:
            return [f"could not run the check in {image}: {exc}"]
    return list(report["errors"])


# Run by python3 in the gateway's container: the time (epoch seconds) its oldest worker
# started. gunicorn is PID 1 there and its workers are its children; without children, PID 1
# serves itself. /proc/PID/stat field 22 is the start in clock ticks after boot.
WORKERS_STARTED = """
import os
def stat(pid):
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
pids = [p for p in os.listdir("/proc") if p.isdigit() and p != "1"]
workers = []
for pid in pids:
    try:
        fields = stat(pid)
    except OSError:
        continue
    if fields[1] == "1":
        workers.append(int(fields[19]))
print(boot + min(workers or [int(stat(1)[19])]) / os.sysconf("SC_CLK_TCK"))
"""


def workers_started(docker: Docker, container: str) -> float | None:
    """When the gateway's oldest worker started (epoch seconds): a config file written after
    it is not what the gateway runs. None when the container cannot tell."""
    try:
        return float(docker.exec(container, ["python3", "-c", WORKERS_STARTED]).strip())
    except EngineUnreachable:
        raise
    except (DockerError, ValueError):
        return None


def unloaded_files(files: list[Generated], started: float | None) -> list[Generated]:
    """The files that are on disk as rendered but newer than the workers (pure but for the
    files' mtimes). /proc counts in clock ticks: a file written in the tick a worker started
    counts as not read, which costs a needless reload at worst."""
    if started is None:
        return []
    return [f for f in files if not f.is_stale() and f.path.stat().st_mtime > started]


BOOT_FAILED = "Application startup failed"  # uvicorn's line; the worker exits with code 3


class BootFailed(RuntimeError):
    """A new worker could not start. gunicorn then stops the whole gateway, old workers
    included (a worker exiting with code 3 halts the arbiter): nothing is left to signal."""


def boot_error(log: str) -> str:
    """The exception line of the failed start (the last `…Error: …` line before uvicorn's)."""
    head = log.split(BOOT_FAILED, 1)[0]
    found = re.findall(r"^\w[\w.]*(?:Error|Exception): (.+)$", head, re.M)
    return found[-1].strip() if found else "see `stackctl logs litellm`"


def wait_reloaded(docker: Docker, container: str, since: datetime, workers: int,
                  timeout: float, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until `workers` workers have started since `since` (their log says so). Raises
    TimeoutError, or RuntimeError when the gateway stopped."""
    deadline = clock() + timeout
    started = 0
    while started < workers:
        if not any(s.running for s in docker.containers(service="litellm")):
            raise RuntimeError("the gateway stopped: " + docker.logs(container, tail=15))
        log = docker.logs_since(container, since)
        if BOOT_FAILED in log:
            raise BootFailed("a new worker could not start: " + boot_error(log))
        started = log.count("Application startup complete")
        if clock() >= deadline:
            raise TimeoutError(f"after {timeout:g}s {started} of {workers} new worker(s) had "
                               "started")
        sleep(0.2)


# -- the operation -------------------------------------------------------------------------------------

class ReloadOptions(BaseModel):
    restore: str | None = Field(None, description="backup ID to put back instead of the "
                                "registry's config")
    dry_run: bool = Field(False, description="check and show the diff; change nothing")
    timeout: float = Field(120, gt=0, description="seconds the new workers may take to serve")
    lock_wait: float | None = Field(None, description="seconds to wait for a concurrent "
                                    "up/switch/reload; None: fail at once")


def models_in(files: list[Generated]) -> list[str]:
    """Public model names of a gateway config (what /v1/models must list)."""
    config = next((f for f in files if f.path.name == "config.yaml"), None)
    data = (YAML(typ="safe").load(config.text) if config else None) or {}
    aliases = (data.get("router_settings") or {}).get("model_group_alias") or {}
    return sorted({m["model_name"] for m in data.get("model_list") or []} | set(aliases))


def reload_gateway(reg: Registry, docker: Docker, opts: ReloadOptions,
                   confirm: Callable[[str], bool] = lambda diff: True,
                   say: Callable[[str], None] = lambda s: None,
                   models: Callable[[], list[str]] | None = None,
                   now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ReloadResult:
    """Check, back up, write and apply the gateway's config; roll back if it does not serve.

    `confirm(diff)` decides after the check (the CLI asks unless --yes); `models()` lists
    what the gateway serves (default: GET /v1/models with the master key)."""
    start = time.monotonic()
    if models is None:
        gw = Gateway(f"http://127.0.0.1:{reg.stack.gateway.host_port}",
                     compose_value(reg.env_file, reg.stack.gateway.master_key_env))
        models = gw.models
    # a dry run changes nothing: it neither waits for a running operation nor blocks one
    with nullcontext() if opts.dry_run else stack_lock(reg.stack.project, "reload",
                                                       opts.lock_wait):
        new = backup_files(reg, opts.restore) if opts.restore else \
            gateway_files(render_all(reg), reg)
        stale = [f for f in new if f.is_stale()]
        # compared with what the gateway runs, not only with the disk: `generate` writes the
        # files without telling the gateway
        gateway = next((s for s in docker.containers(service=GATEWAY) if s.running), None)
        unloaded = unloaded_files(new, workers_started(docker, gateway.name)) if gateway else []
        result = ReloadResult(
            changed=[f.path.name for f in stale + unloaded],
            unloaded=[f.path.name for f in unloaded],
            diff="".join(f.diff(f"{GATEWAY_DIR}/{f.path.name}") for f in stale)
            + "".join(f"# {GATEWAY_DIR}/{f.path.name}: on disk as rendered, written after the "
                      "gateway's workers started: they run an older one\n" for f in unloaded))
        if not result.changed:
            return result
        image = render_compose(reg)["services"][GATEWAY]["image"]
        say(f"checking the new config with LiteLLM in {image}")
        errors = check_in_image(docker, image, new)
        if errors:
            raise PlanError("the new gateway config is refused; nothing was changed:\n"
                            + "\n".join(f"  {e}" for e in errors))
        if opts.dry_run or not confirm(result.diff):
            return result
        previous = [Generated(f.path, f.current() or "") for f in stale if f.current() is not None]
        if stale:
            result.backup = take_backup(reg, now())
            write_all(stale, reg.output_dir)
            say(f"wrote {', '.join(f.path.name for f in stale)}"
                + (f" (backup {result.backup})" if result.backup else ""))
        if gateway is None:
            say("the gateway is not running: the new config applies when it starts")
            result.applied = True
            return result
        workers = reg.stack.gateway.workers
        try:
            result.models = replace_workers(docker, gateway.name, workers, models_in(new),
                                          models, opts.timeout, say)
        except (RuntimeError, TimeoutError, DockerError) as failure:
            say(f"the new config does not serve ({failure}); putting the previous one back")
            write_all(previous, reg.output_dir)
            try:
                _restore(docker, gateway.name, workers, models_in(previous) if previous else [],
                         models, opts.timeout, say, isinstance(failure, BootFailed))
            except (RuntimeError, TimeoutError, DockerError) as again:
                raise ReloadFailed(f"the new config did not serve: {failure}; putting the "
                                   f"previous one back ALSO failed: {again}", restored=False) \
                    from None
            if unloaded:  # what the workers ran before was overwritten before this reload
                raise ReloadFailed(f"the new config did not serve: {failure}; the gateway "
                                   "runs the config on disk again, but "
                                   f"{', '.join(result.unloaded)} had been written before "
                                   "(`stackctl backups` lists older ones, `reload --restore "
                                   "ID` puts one back)", restored=False) from None
            raise ReloadFailed(f"the new config did not serve: {failure}; the previous config "
                               "serves again" + (f" (backup {result.backup} holds it)"
                                                 if result.backup else ""), restored=True) \
                from None
        result.applied = True
        result.seconds = round(time.monotonic() - start, 2)
        return result


def replace_workers(docker: Docker, container: str, workers: int, expected: list[str],
                  models: Callable[[], list[str]], timeout: float,
                  say: Callable[[str], None]) -> list[str]:
    """Replace every worker with one that has read the config folder again, the new ones
    serving before the old ones go: one SIGTTIN per worker makes gunicorn start an extra
    worker; once they all serve, as many SIGTTOU make it stop the oldest, which finish their
    requests first. (SIGHUP would stop the old workers at once, and requests would wait
    seconds for the new ones to start.)"""
    since = datetime.now(UTC)
    say(f"starting {workers} new gateway worker(s) beside the running ones")
    try:
        signal_each(docker, container, "TTIN", workers)
        wait_reloaded(docker, container, since, workers, timeout)
    except BootFailed:
        raise  # the arbiter halts: no TTOU would be handled
    except BaseException:  # never leave the gateway with twice its workers
        signal_each(docker, container, "TTOU", workers)
        raise
    say("stopping the old workers once their requests are done")
    signal_each(docker, container, "TTOU", workers)
    return wait_models(expected, models, timeout)


def signal_each(docker: Docker, container: str, signal: str, times: int,
                timeout: float = 15, clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> None:
    """Send `signal` `times` times, each once gunicorn has handled the one before: a
    signal sent while the same one is still pending is merged with it by the kernel."""
    marker = f"Handling signal: {signal.lower()}"
    for _ in range(times):
        since = datetime.now(UTC)
        docker.signal(container, signal)
        deadline = clock() + timeout
        while marker not in docker.logs_since(container, since):
            if clock() >= deadline:
                raise TimeoutError(f"the gateway did not handle SIG{signal} in {timeout:g}s")
            sleep(0.05)


def wait_models(expected: list[str], models: Callable[[], list[str]], timeout: float,
                clock: Callable[[], float] = time.monotonic,
                sleep: Callable[[float], None] = time.sleep) -> list[str]:
    deadline = clock() + timeout
    listed: list[str] = []
    while True:
        try:
            listed = models()
        except Exception:  # noqa: BLE001 - not answering yet
            listed = []
        if set(expected) <= set(listed):
            return listed
        if clock() >= deadline:
            raise TimeoutError("the gateway does not list "
                               + ", ".join(sorted(set(expected) - set(listed))))
        sleep(0.2)


def _restore(docker: Docker, container: str, workers: int, expected: list[str],
             models: Callable[[], list[str]], timeout: float,
             say: Callable[[str], None], boot_failed: bool = False) -> None:
    if boot_failed:
        # the arbiter is about to stop the gateway (once the failed worker has exited, which
        # LiteLLM's threads can delay by half a minute), and its restart policy may wait
        # longer still: restart it now, on the previous files
        say("restarting the gateway on the previous config")
        docker.stop(container, timeout=10)
        since = datetime.now(UTC)  # after the old workers' last words
        docker.start(container)
    elif any(s.running for s in docker.containers(service="litellm")):
        replace_workers(docker, container, workers, expected, models, timeout, say)
        return
    else:
        since = datetime.now(UTC)
        say("starting the gateway again")
        try:
            docker.start(container)
        except DockerError:
            pass  # its restart policy may have started it already
    wait_reloaded(docker, container, since, workers, timeout)
    wait_models(expected, models, timeout)
