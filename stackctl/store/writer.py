"""Write a set of generated files as one: the new set or the old one, never a mix.

Why a redo journal, not a digest in the compose file or a folder swap:
- the gateway mounts `./litellm` as a folder; swapping the whole output folder (or that one)
  for a fresh sibling would leave a running container on the old, detached folder;
- a digest of the gateway config inside compose.yaml would change the compose file on every
  config edit, and a config change must reach the gateway by `reload`, without a new
  container (tests/unit/render/test_generate.py::test_check_after_registry_edit).

So, holding a lock on the output folder: every new file goes to an exclusive temporary
sibling (O_CREAT|O_EXCL|O_NOFOLLOW, unique name), is fsynced, and only when all of them are
on disk a journal listing the renames is written (atomically) — the commit point. Then the
files are renamed (compose.yaml last) and the journal removed. A failure before the commit
point removes the temporaries: nothing changed. A SIGKILL after it leaves the journal, and
the next run (or `up`) finishes the renames first: the new set. Temporaries of dead writers
are removed by the next run. Each rename gives the target a new inode, which a folder bind
mount shows at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stackctl.errors import PlanError

JOURNAL = ".stackctl-generate.journal"
LOCK_WAIT = 60.0  # seconds a run waits for a concurrent one before giving up
TEMP = re.compile(r"^\..+\.stackctl-(\d+)-[0-9a-f]{8}\.tmp$")
LAST = "compose.yaml"  # what `docker compose` reads: renamed after the files it refers to


class WriteError(PlanError):
    """An output file cannot be written; the message names it and says what to do."""


def write_set(root: Path, texts: dict[Path, str]) -> list[Path]:
    """Write `texts` (absolute paths below `root`) as one set, skipping the files already
    equal on disk; return those written. Raises WriteError."""
    _mkdir(root, root)
    with _locked(root):
        recover(root)  # first: what is stale depends on the set it completes
        for folder in sorted({root} | {p.parent for p in texts}):
            _mkdir(folder, root)
            _remove_stale_temps(folder)
        texts = {p: t for p, t in texts.items() if _on_disk(p) != t.encode("utf-8")}
        temps: dict[Path, Path] = {}
        try:
            for path in sorted(texts, key=lambda p: (p.name == LAST, str(p))):
                temps[path] = _write_temp(path, texts[path], root)
            _write_journal(root, temps)
        except BaseException:
            for tmp in temps.values():
                tmp.unlink(missing_ok=True)
            raise
        _apply(root, [(tmp, path) for path, tmp in temps.items()])
        return list(texts)


def _on_disk(path: Path) -> bytes | None:
    if path.is_symlink() or not path.is_file():
        return None  # a symlink is replaced, never followed
    try:
        return path.read_bytes()
    except OSError:
        return None


def interrupted(root: Path) -> bool:
    """A run was killed between its commit point and its last rename (`generate` finishes it)."""
    return (root / JOURNAL).is_file()


def recover(root: Path) -> None:
    """Finish the renames of a killed run's journal (caller holds the lock)."""
    journal = root / JOURNAL
    if not journal.is_file() or journal.is_symlink():
        return
    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))["renames"]
        renames = [(root / tmp, root / target) for tmp, target in entries]
    except (ValueError, KeyError, TypeError, OSError):
        renames = []  # unreadable: the commit never completed; its temporaries are stale
    ok = [(tmp, target) for tmp, target in renames
          if _inside(tmp, root) and _inside(target, root) and tmp.parent == target.parent
          and TEMP.match(tmp.name) and os.path.lexists(tmp) and not tmp.is_symlink()]
    _apply(root, ok)


# -- steps (module functions so that tests can inject a failure at each) ------------------------

def _write_temp(path: Path, text: str, root: Path) -> Path:
    data = text.encode("utf-8")
    if path.is_dir() and not path.is_symlink():
        raise WriteError(f"cannot write {_show(path)}: it is a directory; a generated file "
                         "belongs there: move or remove the directory, then run "
                         "`stackctl generate` again (nothing was changed)")
    while True:
        tmp = path.with_name(f".{path.name}.stackctl-{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            break
        except FileExistsError:
            continue  # someone planted that name (a file or a symlink): take another
        except OSError as exc:
            raise _error(path, exc) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise _error(path, exc) from None
    os.close(fd)
    return tmp


def _write_journal(root: Path, temps: dict[Path, Path]) -> None:
    doc = {"pid": os.getpid(), "renames": [[str(t.relative_to(root)), str(p.relative_to(root))]
                                           for p, t in temps.items()]}
    for folder in {t.parent for t in temps.values()}:
        _fsync_dir(folder)
    tmp = _write_temp(root / JOURNAL, json.dumps(doc), root)
    try:
        _replace(tmp, root / JOURNAL)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _error(root / JOURNAL, exc) from None
    _fsync_dir(root)


def _apply(root: Path, renames: list[tuple[Path, Path]]) -> None:
    for tmp, target in renames:
        try:
            _replace(tmp, target)
        except OSError as exc:
            raise WriteError(f"cannot replace {_show(target)}: {_reason(exc)}; "
                             f"{_remedy(exc)}, then run `stackctl generate` again: it "
                             "finishes the interrupted set") from None
    for folder in {t.parent for _, t in renames}:
        _fsync_dir(folder)
    (root / JOURNAL).unlink(missing_ok=True)
    _fsync_dir(root)


def _replace(src: Path, dst: Path) -> None:
    os.replace(src, dst)  # renames a symlink at dst itself, never what it points to


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(folder: Path) -> None:
    for entry in folder.iterdir():
        m = TEMP.match(entry.name)
        if m and not _alive(int(m.group(1))) and not entry.is_dir():
            entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _mkdir(folder: Path, root: Path) -> None:
    if folder != root and not _inside(folder / "file", root):
        raise WriteError(f"cannot write into {_show(folder)}: it leads outside "
                         f"{_show(root)} (a symlink?); replace it with a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WriteError(f"cannot create the folder {_show(folder)}: a file is in the way; "
                         "move or remove it, then run `stackctl generate` again") from None
    except OSError as exc:
        raise _error(folder, exc) from None


def _inside(path: Path, root: Path) -> bool:
    """`path`'s folder, symlinks resolved, is `root` or below it."""
    folder, base = path.parent.resolve(), root.resolve()
    return folder == base or base in folder.parents


@contextmanager
def _locked(root: Path, wait: float = LOCK_WAIT) -> Iterator[None]:
    """flock on the output folder itself: no lock file among the generated ones, and every
    writer of the folder serializes whatever its state dir."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WriteError(f"another `stackctl` has been writing {_show(root)} for "
                                     f"{wait:g}s; try again when it ends") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


# -- messages ------------------------------------------------------------------------------------

def _error(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {_show(path)}: {_reason(exc)}; {_remedy(exc)}, then run "
                      "`stackctl generate` again (nothing was changed)")


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{os.strerror(exc.errno)} ({name})" if exc.errno else str(exc)


def _remedy(exc: OSError) -> str:
    return {
        errno.ENOSPC: "free some disk space",
        errno.EDQUOT: "free some space (disk quota exceeded)",
        errno.EROFS: "the file system is read-only: mount it read-write or set output_dir "
                     "in stack.yaml to a writable folder",
        errno.EACCES: "make the folder writable for this user",
        errno.EPERM: "make the folder writable for this user",
        errno.EISDIR: "a directory is in the way: move or remove it",
        errno.ENOTDIR: "a file is in the way of a folder: move or remove it",
    }.get(exc.errno or 0, "fix the cause")


def _show(path: Path) -> str:
    """The path as the user knows it (relative to the working directory, symlinks kept)."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
