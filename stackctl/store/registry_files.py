"""Writing the registry's own files (`stackctl add`): the edited texts are checked as
`validate` checks the files, the files as they were are backed up, and the new texts
replace them as one set (store.writer: a crash leaves the old set or the new one).

Backups are folders `<config dir>/.backups/<ID>/` (ID: the UTC time) holding the files as
they were before the edit (or before `init --force`), pruned like the gateway's
(store.retention)."""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from stackctl.errors import PlanError
from stackctl.registry.checks import check
from stackctl.registry.load import FILES, MAPPINGS, Registry, load_registry
from stackctl.registry.problems import Problem, RegistryError
from stackctl.store.lock import Busy, stack_lock
from stackctl.store.retention import new_id, parse_id, retained
from stackctl.store.writer import WriteError, write_set

BACKUPS = ".backups"


class EditRefused(Exception):
    """The edited registry would not validate: nothing was written."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


class RegistryBroken(Exception):
    """The registry does not load as it is: no edit is made to it."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


LOCK_WAIT = 30.0  # seconds an edit waits for another one of the same folder


class EditResult(BaseModel):
    changed: list[str] = Field(description="registry files the edit changes")
    diff: str = Field(description="unified diff, on disk → edited")
    warnings: list[Problem] = Field(default_factory=list,
                                    description="what `validate` warns about after the edit "
                                    "(edit_registry: only the warnings the edit brings)")
    backup: str | None = Field(None, description="folder holding the files as they were")
    written: bool = False


def read_texts(config_dir: Path) -> dict[str, str]:
    """The registry files' texts as they are ("" for one that does not exist)."""
    out = {}
    for name in FILES:
        path = config_dir / name
        # bytes, decoded: read_text would turn CRLF into LF, changing lines the edit keeps
        out[name] = path.read_bytes().decode("utf-8") if path.is_file() else ""
    return out


Edit = Callable[[dict[str, str], Registry], dict[str, str]]


def edit_registry(config_dir: Path, edit: Edit, now: datetime, dry_run: bool = False
                  ) -> EditResult:
    """Read the registry, apply `edit` (texts, registry → new texts), check and write the
    result, holding the folder's edit lock from the read to the write: two edits at once
    never lose one another's lines. A dry run takes no lock (it writes nothing).
    RegistryBroken, EditRefused, EditError (from `edit`), PlanError."""
    with nullcontext() if dry_run else edit_lock(config_dir):
        texts = read_texts(config_dir)
        try:  # a missing model-mappings.yaml reads as empty: the edit creates it
            reg = load_registry(config_dir, {MAPPINGS: ""} if not texts[MAPPINGS] else None)
        except RegistryError as exc:
            raise RegistryBroken(exc.problems) from None
        result = apply_edit(config_dir, texts, edit(texts, reg), now, dry_run)
    # the warnings the edit brings, not those the registry had (lines move: compared by key)
    before = {(p.file, p.path, p.message) for p in check(reg) if p.severity == "warning"}
    result.warnings = [w for w in result.warnings if (w.file, w.path, w.message) not in before]
    return result


@contextmanager
def edit_lock(config_dir: Path) -> Iterator[None]:
    """The lock of one registry folder (by its real path), in the state folder: the
    registry's own folder may be read-only to the lock's user, or shared by a checkout."""
    key = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:16]
    try:
        with stack_lock(f"registry-{key}", "add", wait=LOCK_WAIT):
            yield
    except Busy:
        raise PlanError(f"another `stackctl add` has been editing {config_dir} for "
                        f"{LOCK_WAIT:g}s; try again when it ends") from None


def apply_edit(config_dir: Path, old: dict[str, str], new: dict[str, str], now: datetime,
               dry_run: bool = False) -> EditResult:
    """Check `new` (file → text) as the registry; EditRefused with its errors, else back up
    the files it changes and write them (not with `dry_run`)."""
    changed = [n for n in FILES if new.get(n, old[n]) != old[n]]
    texts = {n: new[n] for n in changed}
    try:
        reg = load_registry(config_dir, texts)
    except RegistryError as exc:
        raise EditRefused(exc.problems) from None
    problems = check(reg)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise EditRefused(errors)
    result = EditResult(changed=changed, diff=diff(config_dir, old, texts),
                        warnings=[p for p in problems if p.severity == "warning"])
    if dry_run or not changed:
        return result
    result.backup = str(take_backup(config_dir, [n for n in FILES if old[n]], now))
    modes = {n: os.stat(config_dir / n).st_mode & 0o7777 for n in changed
             if (config_dir / n).is_file()}
    try:
        write_set(config_dir, {config_dir / n: t for n, t in texts.items()})
    except WriteError as exc:  # its advice names `generate`, which writes the output folder
        raise WriteError(str(exc).replace("`stackctl generate` again", "the same `stackctl "
                                          "add` again")) from None
    for name, mode in modes.items():  # a new inode: the user's permissions, not 0644
        os.chmod(config_dir / name, mode)
    result.written = True
    return result


def diff(config_dir: Path, old: dict[str, str], new: dict[str, str]) -> str:
    out = []
    for name, text in new.items():
        out += difflib.unified_diff(old[name].splitlines(keepends=True),
                                    text.splitlines(keepends=True),
                                    f"{config_dir / name} (before)", str(config_dir / name))
    return "".join(out)


def take_backup(config_dir: Path, names: list[str], now: datetime) -> Path:
    """A new backup folder holding copies of the files `names` of `config_dir` (`add` before
    an edit, `init --force` before replacing them); older ones pruned. PlanError when it
    cannot be written (then nothing was changed)."""
    root = config_dir / BACKUPS
    taken = {p.name for p in root.iterdir()} if root.is_dir() else set()
    backup_id = new_id(now, taken)
    staging = root / f".{backup_id}.tmp"
    try:
        staging.mkdir(parents=True)
        for name in names:
            shutil.copy2(config_dir / name, staging / name)
        staging.rename(root / backup_id)  # a backup is whole or absent
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PlanError(f"could not back the registry up in {root}: {exc.strerror or exc}; "
                        "nothing was changed") from None
    ids = [i for i in taken | {backup_id} if _is_id(i)]
    for stale in set(ids) - retained(ids, now):
        shutil.rmtree(root / stale, ignore_errors=True)
    return root / backup_id


def _is_id(name: str) -> bool:
    try:
        parse_id(name)
    except ValueError:
        return False
    return True
