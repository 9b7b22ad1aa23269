"""Hostile registry files: each is refused with file:line:column and a message saying what is
wrong, exit 1, no traceback, within a time bound, and without repeating a value.

Every case starts from the shipped providers.yaml with one hostile edit. The expected line
and column are found in the test's own text (the position of a needle), not by stackctl.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackctl.cli import cli
from tests.cli_checks import assert_no_traceback, validate
from tests.paths import REPO

SHIPPED = (REPO / "config" / "providers.yaml").read_text(encoding="utf-8")
STATUS = "    status: active\n"  # first one belongs to provider `ollama`


def after_status(extra: str) -> str:
    """The shipped file with `extra` inserted after ollama's `status:` line."""
    assert STATUS in SHIPPED
    return SHIPPED.replace(STATUS, STATUS + extra, 1)


def at(text: str | bytes, needle: str | bytes) -> tuple[int, int]:
    """1-based line and column of the first `needle` in `text` (characters, or bytes for
    bytes: the file is not text then)."""
    i = text.find(needle)  # type: ignore[arg-type]
    assert i >= 0, needle
    nl = "\n" if isinstance(text, str) else b"\n"
    return text.count(nl, 0, i) + 1, i - (text.rfind(nl, 0, i) + 1) + 1  # type: ignore


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging forever (a FIFO opened for reading blocks without a writer)."""
    def expire(signum, frame):  # type: ignore[no-untyped-def]
        raise AssertionError(f"still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def refused(runner, cfg: Path, where: str, message: str, seconds: float = 2.0) -> str:
    """Validate `cfg`; assert exit 1 within `seconds` and an error line at `where` (file:line
    or file:line:column) saying `message`."""
    start = time.monotonic()
    with deadline(int(seconds) + 10):
        r = validate(runner, "-C", str(cfg.relative_to(Path.cwd())))
    elapsed = time.monotonic() - start
    assert r.exit_code == 1, r.output
    assert_no_traceback(r.output)
    located = re.compile(rf"^{re.escape(where)}(:\d+){{0,2}}: error: ")  # finer is fine
    lines = [ln for ln in r.output.splitlines() if located.match(ln)]
    assert lines, r.output
    assert any(message in ln for ln in lines), r.output
    assert elapsed < seconds, f"took {elapsed:.1f}s"
    return r.output


# -- YAML the parser accepts but stackctl must bound or refuse --------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    content: str | bytes
    needle: str | bytes | None  # where the error must point; None: line 1, column 1
    message: str
    column: bool = True  # False: the line is checked, the column is ruamel's business
    seconds: float = 2.0


BOMB = "".join(
    ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    + [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)]
)  # 10^10 strings once expanded
CHAIN = "c0: &c0 [x]\n" + "".join(f"c{i}: &c{i} [*c{i - 1}]\n" for i in range(1, 200))
BAD_UTF8 = SHIPPED.encode().replace(b"Local Ollama", b"Local \xff Ollama", 1)
NUL = SHIPPED.encode().replace(b"Local Ollama", b"Local \x00 Ollama", 1)
ALIAS = "*"  # needle: the error points at a line that uses an alias
LONG_INT = "9" * 5000  # Python's int() refuses more than 4300 digits (ValueError)

YAML_CASES = [
    Case("merge key", "base: &base {type: ollama}\n" + SHIPPED.replace(
        "  ollama:\n    type: ollama\n", "  ollama:\n    <<: *base\n", 1), "<<",
        "merge keys (<<) are not supported: write the keys out"),
    Case("alias bomb", BOMB + SHIPPED, ALIAS, "the file expands to more than 100000 values"),
    Case("aliases nested through aliases", CHAIN + SHIPPED, ALIAS,
         "nested more than 64 levels deep through aliases"),
    Case("10000 nested [", after_status("    x: " + "[" * 10000 + "]" * 10000 + "\n"),
         "    x: ", "nested more than 64 levels deep", column=False),
    Case("10000 nested {", after_status("    x: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n"),
         "    x: ", "nested more than 64 levels deep", column=False),
    Case("non-UTF-8 byte", BAD_UTF8, b"\xff", "is not valid UTF-8: byte 0xff"),
    Case("UTF-16", SHIPPED.encode("utf-16"), None, "is UTF-16 text, not UTF-8"),
    Case("NUL byte", NUL, b"\x00", "character U+0000 is not allowed in YAML"),
    Case("control character", after_status("    description: a\x07b\n"), "\x07",
         "character U+0007 is not allowed in YAML"),
    Case("5000-digit integer", SHIPPED.replace("port: 11434", f"port: {LONG_INT}", 1),
         LONG_INT, "cannot read this number (5000 characters long)"),
    Case("duplicate key", after_status("    status: sk-live-0123456789abcdef\n"),
         "status: sk-live", "duplicate key 'status' (first set on line 9)"),
    Case("python tag", SHIPPED.replace(STATUS, "    status: !!python/object:os.system x\n", 1),
         "status:", "YAML tag !!python/object:os.system is not supported"),
    Case("custom tag", SHIPPED.replace(STATUS, "    status: !vault active\n", 1), "status:",
         "YAML tag !vault is not supported"),
    Case("binary", SHIPPED.replace(STATUS, "    status: !!binary aGVsbG8=\n", 1), "status:",
         "YAML tag !!binary is not supported"),
]


@pytest.mark.parametrize("case", YAML_CASES, ids=[c.id for c in YAML_CASES])
def test_hostile_yaml_is_a_located_error(runner, registry_dir, case):
    cfg = registry_dir("shipped")
    path = cfg / "providers.yaml"
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    if case.needle == ALIAS:  # found while expanding: at the key whose value uses an alias
        out = refused(runner, cfg, "config/providers.yaml", case.message, case.seconds)
        line, col, key = map(str, re.search(  # type: ignore[union-attr]
            r"providers\.yaml:(\d+):(\d+): error: (\w+): ", out).groups())
        assert isinstance(case.content, str)
        source_line = case.content.splitlines()[int(line) - 1]
        assert col == "1" and source_line.startswith(f"{key}: &") and "*" in source_line, out
        return
    line, col = at(case.content, case.needle) if case.needle is not None else (1, 1)
    where = f"config/providers.yaml:{line}" + (f":{col}" if case.column else "")
    out = refused(runner, cfg, where, case.message, case.seconds)
    assert "sk-live" not in out  # a duplicate's value is never repeated


def test_huge_file_is_refused_before_reading_it(runner, registry_dir):
    """100 MB (sparse, so the test is cheap) would take minutes to parse: refused by size."""
    cfg = registry_dir("shipped")
    path = cfg / "providers.yaml"
    with path.open("r+b") as f:
        f.truncate(100 * 1024 * 1024)
    refused(runner, cfg, "config/providers.yaml", "is larger than 256 KiB")


def test_utf8_bom_is_accepted(runner, registry_dir):
    """Windows editors write a BOM; the file means the same with or without it."""
    cfg = registry_dir("shipped")
    path = cfg / "providers.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(
        b"port: 11434", b"port: -1", 1))  # an error, so its column on line 1.. is checked too
    r = validate(runner, "-C", "config")
    assert r.exit_code == 1, r.output
    line, col = at(SHIPPED, "port: 11434")
    assert f"config/providers.yaml:{line}:{col + len('port: ')}" in r.output \
        or f"config/providers.yaml:{line}:{col}" in r.output, r.output
    assert "BOM" not in r.output and "U+FEFF" not in r.output
    path.write_bytes(b"\xef\xbb\xbf" + SHIPPED.encode())
    r = validate(runner, "-C", "config")
    assert r.exit_code == 0, r.output


# -- registry files that are not regular files ------------------------------------------------

def _folder(p: Path) -> None:
    p.mkdir()


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _device(p: Path) -> None:
    p.symlink_to("/dev/zero")  # endless: reading it would never finish


def _loop(p: Path) -> None:
    p.symlink_to(p.name)


def _dangling(p: Path) -> None:
    p.symlink_to("gone.yaml")


def _outside(p: Path) -> None:
    outside = p.parent.parent / "elsewhere.yaml"
    outside.write_text(SHIPPED, encoding="utf-8")
    p.symlink_to(outside)


SPECIAL: list[tuple[str, Callable[[Path], None], str]] = [
    ("folder", _folder, "is a folder, not a file"),
    ("fifo", _fifo, "is a FIFO (named pipe), not a regular file"),
    ("device", _device, "is a device, not a regular file"),
    ("symlink loop", _loop, "is a symlink loop"),
    ("dangling symlink", _dangling, "is a symlink to gone.yaml, which does not exist"),
    ("symlink outside", _outside, "elsewhere.yaml, outside the config folder"),
]


@pytest.mark.parametrize("file", ["providers.yaml", "stack.yaml"])
@pytest.mark.parametrize("kind, make, message", SPECIAL, ids=[s[0] for s in SPECIAL])
def test_registry_file_that_is_not_a_regular_file(runner, registry_dir, file, kind, make,
                                                   message):
    """Required or optional, such a file is refused, not read forever or skipped."""
    cfg = registry_dir("shipped")
    (cfg / file).unlink()
    make(cfg / file)
    refused(runner, cfg, f"config/{file}", message)


def test_symlink_inside_the_folder_is_read(runner, registry_dir):
    cfg = registry_dir("shipped")
    (cfg / "providers.yaml").rename(cfg / "providers.real.yaml")
    (cfg / "providers.yaml").symlink_to("providers.real.yaml")
    r = validate(runner, "-C", "config")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "is a file, not a folder"),
    (lambda p: None, "no such folder"),
])
def test_config_folder_that_is_no_folder(runner, registry_dir, make, message):
    """Not click's usage error (exit 2): exit 1 with what is wrong, for any command."""
    registry_dir("shipped")
    make(Path("elsewhere"))
    r = runner.invoke(cli, ["generate", "-C", "elsewhere"], catch_exceptions=False)
    assert r.exit_code == 1, r.output
    assert f"-C elsewhere: {message}" in r.output, r.output
    assert_no_traceback(r.output)


# -- keys that are not plain names ------------------------------------------------------------

KEYS = [
    # (inserted under provider ollama, key path in the error, needle, message)
    ("    null: active\n", "providers.ollama", "null:", "key null is read by YAML as null"),
    ("    ~: active\n", "providers.ollama", "~:", "key null is read by YAML as null"),
    ("    true: active\n", "providers.ollama", "true:", "key true is read by YAML as a boolean"),
    ("    3: active\n", "providers.ollama", "3:", 'key 3 is read by YAML as a number, not a '
     'name (quote it if it is a name: "3")'),
    ("    1.5: active\n", "providers.ollama", "1.5:", "key 1.5 is read by YAML as a number"),
    ("    ? [a, b]\n    : active\n", "providers.ollama", "[a, b]",
     "a key must be a name, not a mapping or sequence"),
    ("    {a: 1}: active\n", "providers.ollama", "{a: 1}",
     "a key must be a name, not a mapping or sequence"),
    ("    int: active\n", "providers.ollama.int", "int:", "unknown key 'int'"),
    ("    list[str]: active\n", 'providers.ollama["list[str]"]', "list[str]:",
     "unknown key 'list[str]'"),
    ("    'a[0]': active\n", 'providers.ollama["a[0]"]', "'a[0]':", "unknown key 'a[0]'"),
    ("    '': active\n", 'providers.ollama[""]', "'':", "unknown key ''"),
]


@pytest.mark.parametrize("extra, path, needle, message", KEYS, ids=[k[0].strip() for k in KEYS])
def test_key_that_is_not_a_plain_name(runner, registry_dir, extra, path, needle, message):
    cfg = registry_dir("shipped")
    text = after_status(extra)
    (cfg / "providers.yaml").write_text(text, encoding="utf-8")
    line, _ = at(text, needle)
    out = refused(runner, cfg, f"config/providers.yaml:{line}", f"{path}: {message}")
    assert f"{path}: {message}" in out


@pytest.mark.parametrize("name", ["int", "str", "list[str]", "dict"])
def test_error_inside_a_provider_named_like_a_type(runner, registry_dir, name):
    """pydantic puts type names into error locations; a provider may have such a name: the
    path keeps it and the line is the one of the wrong value inside that provider."""
    cfg = registry_dir("shipped")
    text = SHIPPED.replace("  ollama:\n", f"  '{name}':\n", 1).replace(
        STATUS, "    status: sometimes\n", 1)
    (cfg / "providers.yaml").write_text(text, encoding="utf-8")
    shown = f'["{name}"]' if "[" in name else f".{name}"
    line, col = at(text, "status: sometimes")
    refused(runner, cfg, f"config/providers.yaml:{line}:{col}",
            f"providers{shown}.status: ")
