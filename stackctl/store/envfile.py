"""The stack's .env: secrets live here, created on first use, never printed.

Compose reads this file (`docker compose --env-file`), so stackctl reads it exactly as Compose
does: what `read_env` returns is what Compose passes on. python-dotenv splits the file into
statements (comments, `export`, quoting, multi-line values, keys); the value of each statement
is then evaluated with Compose's rules (compose-go v2: dotenv/parser.go, template/template.go),
because the two disagree. Where they disagree, Compose wins:

1. Interpolation. Compose expands `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:+x}`,
   `${VAR+x}`, `${VAR:?msg}`, `${VAR?msg}` and `$$` (a literal `$`) in unquoted and
   double-quoted values, looking names up in the host environment first, then in the lines
   above. dotenv knows only `${VAR}` and `${VAR:-d}`, and also expands single-quoted values.
2. Comments after an unquoted value start at ` #` (a space) in Compose: `A=x<TAB># c` is
   `x<TAB># c`, and `A= # c` is `# c`. dotenv cuts at any whitespace and reads `A= # c` as empty.
3. Single quotes: Compose unescapes only `\\'`; `'a\\\\b'` stays `a\\\\b` (dotenv: `a\\b`).
4. Double quotes: Compose keeps `\\'` as written and knows `\\$` and octal `\\0101`; dotenv
   turns `\\'` into `'`.
5. `KEY` alone: dotenv gives None; Compose takes the host's value, else leaves KEY unset.
6. Lines Compose rejects (unterminated quote, a key with a space or a `#`, `${`, `${X:?msg}`
   with X unset) make Compose fail; dotenv skips them. read_env raises EnvFileError.
7. Forms Compose accepts but dotenv cannot split into statements (`KEY: value`, text after a
   closing quote such as `A="x" B=y`) are refused with EnvFileError naming the line, rather than
   read differently from Compose.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import parse_stream

from stackctl.errors import PlanError

HEADER = "# Secrets for the stack (created by stackctl). Keep out of version control.\n"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class EnvFileError(PlanError):
    """The .env file cannot be read the way Compose reads it, or cannot be completed safely."""


@dataclass(frozen=True)
class _Statement:
    key: str
    line: int
    quote: str | None  # "'" or '"'; "" unquoted; None: `KEY` alone (inherited)
    written: str  # the value as written: inside the quotes, or up to ` #` when unquoted
    value_at: int  # offset in the file's text where `written` starts


# -- reading ----------------------------------------------------------------------------------

def read_env(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """KEY → value exactly as `docker compose --env-file path` reads the file; {} if missing.

    `environ` (default: os.environ) is the host environment Compose would run in: it feeds
    `${VAR}` and `KEY` alone. Raises EnvFileError where Compose would fail on the file.
    """
    if not path.exists():
        return {}
    return _parse(_read_text(path), os.environ if environ is None else environ, str(path))[0]


def compose_value(path: Path, name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value Compose interpolates for `name`: the host environment wins over the file."""
    environ = os.environ if environ is None else environ
    return environ[name] if name in environ else read_env(path, environ).get(name)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


_SINGLE = re.compile(r"'((?:\\.|[^'\\])*)'", re.S)  # the same statement ends as dotenv's
_DOUBLE = re.compile(r'"((?:\\.|[^"\\])*)"', re.S)
_PAIR = re.compile(r"\\(.)", re.S)
_HSPACE = r"[^\S\r\n]"


def _parse(text: str, environ: Mapping[str, str], where: str
           ) -> tuple[dict[str, str], dict[str, _Statement]]:
    """(values, the statement that set each value) for the file's text, as Compose reads it."""
    out: dict[str, str] = {}
    setters: dict[str, _Statement] = {}

    def lookup(name: str) -> str | None:  # compose-go GetEnvFromFile: host first, then the file
        return environ[name] if name in environ else out.get(name)

    pos = 1 if text.startswith("\ufeff") else 0  # dotenv (and Compose) skip a BOM
    for binding in parse_stream(io.StringIO(text)):
        original, start = binding.original.string, pos
        pos += len(original)
        line = binding.original.line + original[:len(original) - len(original.lstrip())].count("\n")
        # the line may hold a secret: name it by its key, never quote it
        head = original.strip().split("\n", 1)[0].split("=", 1)[0].strip()
        first = f"the line for {head}" if NAME.fullmatch(head.removeprefix("export ").strip()) \
            else f"a line of {len(original.strip())} characters"
        if binding.error:
            raise EnvFileError(f"{where}:{line}: cannot read {first}: write KEY=value "
                               "(Compose and stackctl would not agree on this line)")
        if binding.key is None:  # blank or comment
            continue
        key = binding.key
        _check_key(key, where, line)
        stmt = _statement(binding.value is None, key, original, start, line)
        if stmt is None:
            raise EnvFileError(f"{where}:{line}: cannot read {first}: write KEY=value")
        if stmt.quote is None:  # `KEY` alone: the host's value
            if key in environ:
                out[key], setters[key] = environ[key], stmt
            continue  # else the file's own earlier value, if any, stays (as in Compose)
        try:
            out[key] = _evaluate(stmt, lookup)
        except _TemplateError as exc:
            raise EnvFileError(f"{where}:{line}: {key}: {exc}") from None
        setters[key] = stmt
    return out, setters


def _check_key(key: str, where: str, line: int) -> None:
    """Compose's variable names: letters, digits and `_ . - [ ]`; anything else fails the file.
    A key that is no name may be a secret pasted on its own line: shown by length only."""
    head = key.split(":", 1)[0]
    shown = head if NAME.fullmatch(head) and len(head) <= 40 else \
        f"a key of {len(head)} characters"
    if ":" in key:
        raise EnvFileError(f"{where}:{line}: write {shown}=value "
                           "(the `KEY: value` form is not read by stackctl)")
    if not all(c.isalnum() or c in "_.-[]" for c in key):
        raise EnvFileError(f"{where}:{line}: {shown} is not a variable name Compose accepts")


def _statement(bare: bool, key: str, original: str, start: int, line: int) -> _Statement | None:
    head = rf"\s*(?:export{_HSPACE}+)?{re.escape(key)}{_HSPACE}*"
    if bare:  # Compose fails on anything after the name (`KEY # note`): so do we
        return _Statement(key, line, None, "", start) \
            if re.fullmatch(head + r"\r?\n?", original) else None
    m = re.fullmatch(head + rf"={_HSPACE}*(?P<rest>.*)", original, re.S)
    if m is None:  # e.g. a quoted key ('KEY'=x), which dotenv reads and Compose rejects
        return None
    rest, at = m["rest"], start + m.start("rest")
    if rest[:1] in ("'", '"'):
        quoted = (_SINGLE if rest[0] == "'" else _DOUBLE).match(rest)
        if quoted is None:
            return None
        return _Statement(key, line, rest[0], quoted[1], at + 1)
    # unquoted: up to the end of the line; a comment starts at ` #` (not at a tab, not at `#`)
    written = rest.split("\n", 1)[0].split(" #", 1)[0].rstrip()
    return _Statement(key, line, "", written, at)


def _evaluate(stmt: _Statement, lookup: Callable[[str], str | None]) -> str:
    if stmt.quote == "'":  # literal, except that \' is a quote
        return _PAIR.sub(lambda m: m[1] if m[1] == "'" else m[0], stmt.written)
    if stmt.quote == '"':  # \" is a quote, then shell escapes, then interpolation
        unquoted = _PAIR.sub(lambda m: m[1] if m[1] == '"' else m[0], stmt.written)
        return _substitute(_expand_escapes(unquoted), lookup)
    return _substitute(stmt.written, lookup)


_ESCAPE = re.compile(r'\\(?:[abcfnrtv$"\\]|0[0-9]{0,3})')
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   '"': '"', "\\": "\\", "$": "$$"}  # \$ becomes the template's `$$`


def _expand_escapes(value: str) -> str:
    """compose-go expandEscapes: Go's escapes for the sequences it lists, `\\0nnn` octal."""
    def one(m: re.Match[str]) -> str:
        seq = m[0]
        if seq[1] != "0":
            return _SIMPLE_ESCAPES.get(seq[1], seq)  # `\c` is no Go escape: kept as written
        digits = seq[2:]  # `\0nnn` → Go `\nnn`: exactly three octal digits, at most 0o377
        if len(digits) == 3 and set(digits) <= set("01234567") and int(digits, 8) <= 0o377:
            return chr(int(digits, 8))
        return "\\" + digits
    return _ESCAPE.sub(one, value)


# -- Compose's variable substitution (compose-go template.Substitute) -------------------------

class _TemplateError(Exception):
    pass


_TEMPLATE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*)|"
                       r"\{(?:(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*(?::?[-+?](.*))?)\}|(?P<invalid>)))")
_SEPARATORS = (":?", "?", ":-", "-", ":+", "+")


def _substitute(template: str, lookup: Callable[[str], str | None]) -> str:
    def replace(m: re.Match[str]) -> str:
        substring = m[0]
        # the modifier is the one found first in the whole match, as in compose-go
        found = [(substring.find(s), s) for s in _SEPARATORS if s in substring]
        sep = min(found)[1] if found else None
        closing = _closing_brace(substring)
        rest = ""
        if closing > -1:
            substring, rest = substring[:closing + 1], substring[closing + 1:]
        g = _TEMPLATE.match(substring)
        assert g is not None
        if g["escaped"]:
            return "$"
        name = g["named"] or g["braced"]
        if not name:  # the value is not shown: it may be the secret itself
            raise _TemplateError("invalid reference: '${' must start ${NAME} or "
                                 "${NAME:-default} (write $${ for a literal ${)")
        if g["braced"] and sep and sep in name:
            return _modified(name, sep, lookup) + _substitute(rest, lookup)
        value = lookup(name)
        return "" if value is None else value  # unset: empty (Compose warns)

    return _TEMPLATE.sub(replace, template)


def _modified(substitution: str, sep: str, lookup: Callable[[str], str | None]) -> str:
    name, arg = substitution.split(sep, 1)
    arg = _substitute(arg, lookup)
    value = lookup(name)
    if sep in (":-", "-"):
        return arg if value is None or (sep == ":-" and value == "") else value
    if sep in (":+", "+"):
        return arg if value is not None and (sep == "+" or value != "") else (value or "")
    if value is None or (sep == ":?" and value == ""):
        raise _TemplateError(f"required variable {name} is missing a value")
    return value


def _closing_brace(s: str) -> int:
    depth, i = 0, 0
    while i < len(s):
        if s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if s[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


# -- weak values ----------------------------------------------------------------------------

# Values from documentation and habit: LiteLLM's docs use sk-1234 as the master key.
KNOWN_WEAK = frozenset({
    "sk-1234", "sk-12345", "sk-123456", "sk-1234567890", "changeme", "change-me", "changeit",
    "password", "passw0rd", "password1", "admin", "administrator", "secret", "test", "testing",
    "default", "letmein", "123456", "12345678", "123456789", "1234567890", "qwerty", "litellm",
    "master", "masterkey", "master-key", "redis", "grafana", "example", "your-key-here",
    "sk-your-key", "your_master_key", "none", "null", "token"})
MIN_LENGTH = 12


def weakness(value: str) -> str | None:
    """Why `value` is a guessable secret (never the value itself), or None."""
    if value.strip().lower() in KNOWN_WEAK:
        return "a well-known example or default value"
    if len(value) < MIN_LENGTH:
        return f"only {len(value)} characters long"
    if len(set(value)) < 6:
        return f"made of {len(set(value))} different characters"
    return None


def weak_secrets(path: Path, names: list[str],
                 environ: Mapping[str, str] | None = None) -> list[tuple[str, int, str]]:
    """(name, line, why) for each of `names` that the file sets to a guessable value.
    Raises EnvFileError where Compose could not read the file."""
    if not path.exists():
        return []
    values, setters = _parse(_read_text(path), os.environ if environ is None else environ,
                             str(path))
    return [(n, setters[n].line, why) for n in dict.fromkeys(names)
            if values.get(n) and n in setters and (why := weakness(values[n])) is not None]


# -- writing ----------------------------------------------------------------------------------

def ensure_secrets(path: Path, names: list[str],
                   environ: Mapping[str, str] | None = None) -> list[str]:
    """Give each name Compose would read as missing or empty a random value; return them.

    Nothing the user wrote is changed, reordered or shadowed: new names are appended, every
    existing byte is kept. A name assigned an empty value (`KEY=`, `KEY=""`, `KEY=''`) gets the
    value written into that assignment, in place. Compose lets the last assignment of a name
    win, so appending a second line would work too, but it would leave two assignments of a
    secret, one silently dead, for the next reader to puzzle over; filling the empty one keeps
    one line per name. A name that is empty for another reason (`KEY=${UNSET}`, or `KEY` alone
    with an empty host variable) is the user's decision: EnvFileError, and the file is left as
    it was.

    A new file gets mode 0600, an existing one keeps its mode. The file is replaced atomically
    (temporary file in the same folder, then os.replace): a crash leaves the old or the new file.
    """
    environ = os.environ if environ is None else environ
    target = Path(os.path.realpath(path))  # a symlinked .env: write the file it points to
    exists = target.exists()
    text = _read_text(target) if exists else HEADER
    values, setters = _parse(text, environ, str(path))

    inserts: list[tuple[int, str]] = []
    appended: list[str] = []
    created: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if not NAME.fullmatch(name):
            raise EnvFileError(f"cannot add {name!r} to {path}: not a variable name")
        if values.get(name):
            continue
        value = created[name] = "sk-" + secrets.token_urlsafe(24)
        stmt = setters.get(name)
        if stmt is None:
            appended.append(f"{name}={value}")
        elif stmt.quote is not None and stmt.written == "":
            inserts.append((stmt.value_at, value))
        else:
            how = (f"`{name}` alone takes the environment variable {name}, which is empty"
                   if stmt.quote is None else
                   f"{name} is set to a value that Compose reads as empty (a reference "
                   "to an unset variable?)")
            raise EnvFileError(f"{path}:{stmt.line}: {how}; stackctl does not overwrite it. "
                               f"Give {name} a value, or delete the line and stackctl will "
                               "create a random one")
    if not created:
        return []

    new = text
    for at, value in sorted(inserts, reverse=True):
        new = new[:at] + value + new[at:]
    if appended:
        eol = "\r\n" if "\r\n" in text else "\n"
        if new and not new.endswith("\n"):
            new += eol
        new += "".join(line + eol for line in appended)

    after = _parse(new, environ, str(path))[0]
    if any(after.get(n) != v for n, v in created.items()) or not set(values) <= set(after):
        raise EnvFileError(f"{path}: could not add {', '.join(created)} without changing "
                           "what Compose reads; add them by hand")
    _replace_atomically(target, new.encode("utf-8"), existing=exists)
    return list(created)


def _replace_atomically(target: Path, data: bytes, existing: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    st = target.stat() if existing else None
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp made it 0600: the secret is never exposed
            if st is not None:
                os.fchmod(f.fileno(), st.st_mode & 0o7777)
                if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(PermissionError):
                        os.fchown(f.fileno(), st.st_uid, st.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
