"""What `switch` needs to know about a stack, as plain data remembered per registry.

Every millisecond before `switch` stops the active member is overhead its user waits for.
Loading the registry imports pydantic and ruamel.yaml and checks three files (~0.3 s on a
small machine) for a handful of facts: the GPU groups, each member's profile, stop grace,
readiness check and model, and where the compose file and the gateway are. Those facts are
derived from a fully checked registry and kept as JSON in the state folder, keyed by the
registry files' bytes and stackctl's own code: any edit is a miss, loaded and checked in full.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import stackctl

from .lock import state_dir

if TYPE_CHECKING:
    from ..registry.load import Registry

KEEP = 16  # indexes remembered; the oldest are dropped
FILES = ("providers.yaml", "model-mappings.yaml", "stack.yaml")


@dataclass(frozen=True)
class Member:
    name: str
    group: str
    profile: str
    stop_grace: float
    ready_url: str | None  # the container's readiness check seen from the host; None: no port
    ready_expect: str | None
    model: str | None  # a public model it serves: asked through the gateway after a switch


@dataclass(frozen=True)
class SwitchIndex:
    project: str
    compose_file: Path
    env_file: Path
    gateway_port: int
    master_key_env: str
    members: dict[str, Member]  # every member of every exclusive GPU group, registry order

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for m in self.members.values():
            out.setdefault(m.group, []).append(m.name)
        return out


def index_of(reg: Registry) -> SwitchIndex:
    """The switch facts of a checked registry (pure)."""
    from ..registry.catalog import exclusive_groups, models_of_provider, profile_of
    from ..render.litellm import served_backend
    from ..render.probes import host_check

    providers = reg.providers.providers
    members = {}
    for group, names in exclusive_groups(reg).items():
        for name in names:
            prov = providers[name]
            assert prov.container is not None  # a group member has a container
            url, expect = host_check(prov, served_backend(reg, name)) if prov.host_port \
                else (None, None)
            members[name] = Member(name, group, profile_of(name, prov),
                                   prov.container.stop_grace_period, url, expect,
                                   next(iter(models_of_provider(reg, name)), None))
    return SwitchIndex(reg.stack.project, reg.output_dir / "compose.yaml", reg.env_file,
                       reg.stack.gateway.host_port, reg.stack.gateway.master_key_env, members)


def index_for(config_dir: Path, load: Callable[[Path], Registry]) -> SwitchIndex:
    """The remembered index for these exact files, else `load` them (with every check) and
    remember the result."""
    path = state_dir() / "switch-index" / f"{_key(config_dir)}.json"
    try:
        return _decode(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, unreadable or from other code: load in full
    index = index_of(load(config_dir))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(index), default=str), encoding="utf-8")
        os.replace(tmp, path)
        for old in sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only state folder only costs speed
    return index


def _key(config_dir: Path) -> str:
    h = hashlib.sha256(f"{stackctl.__version__}\0{config_dir.resolve()}".encode())
    for name in FILES:
        try:
            h.update(b"\0" + (config_dir / name).read_bytes())
        except OSError:
            h.update(b"\0-")
    for code in sorted(Path(stackctl.__file__).parent.rglob("*.py")):
        st = code.stat()
        h.update(f"\0{code}:{st.st_mtime_ns}:{st.st_size}".encode())
    return h.hexdigest()[:32]


def _decode(data: dict) -> SwitchIndex:
    members = {name: Member(**m) for name, m in data.pop("members").items()}
    return SwitchIndex(**{**data, "compose_file": Path(data["compose_file"]),
                          "env_file": Path(data["env_file"])}, members=members)
