"""Options, exit codes and helpers shared by the commands.

Cheap to import (every command loads it, `validate` too, and must start fast): no
python-on-whales, requests, redis or rich here; the two modules only `up` needs are
imported inside `prepare_files` (their measured cost is noted there).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

# exit codes and the -C type live in the package, so `stackctl --help` has them without this
from stackctl.cli import (  # noqa: F401  re-exported for the commands
    EXIT_CODES,
    FAILED,
    GATEWAY_DOWN,
    INTERRUPTED,
    NO_ENGINE,
    OK,
    UNRESTORED,
    USAGE,
    Folder,
    exit_codes,
)
from stackctl.cli.options import (  # noqa: F401  re-exported for the commands
    CONFIG_DIR_HELP,
    Failed,
    Say,
    config_dir_option,
    echo_json,
    json_errors,
    sub_config_dir_option,
    verbosity_options,
)
from stackctl.docker import adapter  # the module: tests replace adapter.Docker
from stackctl.errors import PlanError
from stackctl.registry.catalog import exclusive_groups, profiles
from stackctl.registry.checks import check
from stackctl.registry.load import Registry, load_registry
from stackctl.registry.problems import Problem, RegistryError
from stackctl.registry.vocabulary import CACHE, GATEWAY
from stackctl.render.compose import monitoring_services
from stackctl.store.generated import write_all
from stackctl.store.lock import Busy

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def ops_errors() -> Iterator[None]:
    """The engine's user-facing errors as Failed: no engine answers → 4, the rest → 1."""
    try:
        yield
    except adapter.EngineUnreachable as exc:
        raise Failed(str(exc), NO_ENGINE) from None
    except (adapter.DockerError, PlanError, Busy) as exc:
        raise Failed(str(exc)) from None


# -- -C/--config-dir ----------------------------------------------------------------------------

def config_dir_problem(path: Path) -> tuple[str, str | None] | None:
    """What is wrong with `path` as a registry folder, as (message, hint); None: nothing
    this can tell (a folder without providers.yaml is left to the loader's per-file report)."""
    if path.is_file():
        hint = (f"did you mean -C {path.parent}?" if path.suffix in (".yaml", ".yml")
                else "point -C/--config-dir at the folder holding providers.yaml")
        return "is a file, not a folder", hint
    if not path.exists():
        return "no such folder", ("point -C/--config-dir or $STACKCTL_CONFIG_DIR at the "
                                  "folder holding providers.yaml")
    nested = path / "config"
    if not (path / "providers.yaml").exists() and (nested / "providers.yaml").exists():
        return (f"holds no providers.yaml, but {nested} does",
                f"did you mean -C {nested}?")
    return None


def check_config_dir(path: Path) -> None:
    problem = config_dir_problem(path)
    if problem:
        message, hint = problem
        raise Failed(f"-C {path}: {message}" + (f" ({hint})" if hint else ""))


def load_or_fail(config_dir: Path) -> Registry:
    """Load and fully check the registry; a user mistake becomes a ClickException, not a traceback."""
    check_config_dir(config_dir)
    try:
        reg = load_registry(config_dir)
    except RegistryError as exc:
        raise Failed(_summary(exc.problems)) from None
    fail_on(check(reg))
    return reg


def fail_on(problems: list, then: str = "run `stackctl validate` for details") -> None:
    """Failed listing the errors among `problems`, if any."""
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise Failed(_summary(errors) + "\n" + then)


def _summary(problems: list) -> str:
    lines = [p.render() for p in problems]
    return f"the registry has {len(lines)} error(s):\n" + "\n".join(lines)


# -- output -----------------------------------------------------------------------------------

class Watched:
    """The Docker adapter, reporting (verbose) what each `containers()` poll shows: every
    change of a container's state or health, and every `every` seconds the services still
    awaited (`waiting()`). The engine's health gate polls through it, so the lines follow
    its own polls."""

    def __init__(self, docker: Any, detail: Callable[[str], None],
                 waiting: Callable[[], dict[str, str]] = dict, every: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        self._docker, self._detail, self._waiting = docker, detail, waiting
        self._every, self._clock = every, clock
        self._seen: dict[str, tuple[str, str]] = {}
        self._last = clock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._docker, name)

    def containers(self, **filters: Any) -> list:
        states = self._docker.containers(**filters)
        for st in states:
            key = (st.state, st.health)
            if self._seen.get(st.service) != key:
                self._seen[st.service] = key
                self._detail(f"{st.service}: {st.state}"
                             + (f", {st.health}" if st.health != "none" else ""))
        waiting = self._waiting()
        if waiting and self._clock() - self._last >= self._every:
            self._last = self._clock()
            by_service = {st.service: st for st in states}
            self._detail("waiting for " + ", ".join(
                f"{s} ({_state_of(by_service.get(s))})" for s in waiting))
        return states


def _state_of(st: Any) -> str:
    if st is None:
        return "no container yet"
    return st.state + (f", {st.health}" if st.health != "none" else "")


# -- files and Docker -------------------------------------------------------------------------

def secret_names(reg: Registry) -> list[str]:
    """The variables of the stack's own secrets that `up` creates in .env when missing."""
    names = [reg.stack.gateway.master_key_env, reg.stack.monitoring.grafana_password_env]
    if reg.stack.cache.enabled:
        names.append(reg.stack.cache.password_env)
    return names


def env_problems(reg: Registry) -> list[Problem]:
    """The .env as Compose reads it: a line it cannot read, or a stack secret set to a
    guessable value; located by line and variable, never showing a value."""
    path = reg.env_file
    if not path.is_file():
        return []
    from stackctl.store.envfile import EnvFileError, weak_secrets  # python-dotenv: ~11 ms

    name = display(path)
    try:
        weak = weak_secrets(path, secret_names(reg))
    except EnvFileError as exc:
        text = str(exc).removeprefix(f"{path}:")
        line, _, message = text.partition(": ")
        if not line.isdigit():
            line, message = "", str(exc).removeprefix(f"{path}: ")
        var, _, rest = message.partition(": ")  # "NAME: what is wrong" names the variable
        key = var if rest and var.isidentifier() else ""
        return [Problem(severity="error", file=name, line=int(line) if line else None,
                        path=key, message=rest if key else message,
                        hint="write KEY=value lines, as Compose reads them")]
    return [Problem(severity="error", file=name, line=line, path=var,
                    message=f"{var} is {why}: whoever guesses it holds that secret",
                    hint=f"delete the line and `stackctl up` writes a random {var}, or set "
                         "a long random value (e.g. `openssl rand -hex 32`)")
            for var, line, why in weak]


def prepare_files(reg: Registry, say: Callable[[str], None]) -> dict[str, list[str]]:
    """Create missing secrets in .env and regenerate stale files before touching Docker.
    Returns {"secrets_created": names, "files_written": paths} (never a secret's value)."""
    # here: `validate` and every other command import this module; these two cost it
    # ~8 ms (the renderers) and ~11 ms (python-dotenv) measured, and only `up` needs them
    from stackctl.render.files import render_all
    from stackctl.store.envfile import ensure_secrets

    fail_on(env_problems(reg), "nothing was written or started")
    try:
        created = list(ensure_secrets(reg.env_file, secret_names(reg)))
    except OSError as exc:  # a full disk, a read-only folder: the old .env is untouched
        raise Failed(f"could not write {reg.env_file}: {exc.strerror or exc}; it is unchanged "
                     "and nothing was started") from None
    for name in created:
        say(f"created {name} in {reg.env_file.name} (random; not shown)")
    files = render_all(reg, tuple(dict.fromkeys(("compose", reg.stack.deploy.target))))
    existed = {f.path for f in files if f.path.exists()}
    written = write_all(files, reg.output_dir)
    for path in written:
        why = "the registry had changed" if path in existed else "first run"
        say(f"wrote {path.name} ({why})")
    return {"secrets_created": created, "files_written": [display(p) for p in written]}


def display(path: Path) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def docker_for(reg: Registry):  # type: ignore[no-untyped-def]
    """The Docker adapter for this stack."""
    return docker_on(reg.output_dir / "compose.yaml", reg.stack.project, reg.env_file)


def docker_on(compose: Path, project: str, env_file: Path):  # type: ignore[no-untyped-def]
    if not compose.exists():
        raise Failed(f"{compose} is missing: run `stackctl generate`")
    with ops_errors():
        return adapter.Docker(compose, project, env_file)


# -- shell completion -------------------------------------------------------------------------
# Called by the shell on every <TAB>: never raise, never print; a broken registry completes
# nothing.

def _registry_quietly(ctx: click.Context) -> Registry | None:
    try:
        path = ctx.params.get("config_dir")
        if path is None:
            root = ctx.find_root()
            path = root.params.get("config_dir") or Path("config")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return load_registry(Path(path))
    except Exception:
        return None


def _matching(names: list[str], incomplete: str) -> list[str]:
    """Prefix matches; else substring matches (`switch dol<TAB>` → vllm-dolphin, as
    `switch` itself accepts a unique part of a member's name)."""
    names = list(dict.fromkeys(names))
    hits = [n for n in names if n.startswith(incomplete)]
    return hits or [n for n in names if incomplete.lower() in n.lower()]


def _completer(names_of: Callable[[Registry], list[str]]):  # type: ignore[no-untyped-def]
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        reg = _registry_quietly(ctx)
        if reg is None:
            return []
        try:
            return _matching(names_of(reg), incomplete)
        except Exception:
            return []
    return complete


def _members(reg: Registry) -> list[str]:
    return [m for members in exclusive_groups(reg).values() for m in members]


def _profiles(reg: Registry) -> list[str]:
    return profiles(reg)


def _services(reg: Registry) -> list[str]:
    providers = [n for n, p in reg.providers.providers.items() if p.enabled and p.container]
    return [GATEWAY] + ([CACHE] if reg.stack.cache.enabled else []) + providers + list(
        monitoring_services(reg))


complete_members = _completer(_members)
complete_profiles = _completer(_profiles)
complete_services = _completer(_services)
