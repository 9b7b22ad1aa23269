"""Secret-shaped values: what they look like, and how a message hides them.

A registry holds only `${VAR}` references; the values live in `.env`. Anything that looks
like a key, token or password written into the registry is refused wherever it is
(secret_checks.py), and reported by key path and kind ("an OpenAI-style key, 51
characters"), never by value. Text only here: problems.py redacts every message with it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import parse_qsl, urlsplit

# Vendors' key formats: prefix and body; a letter or digit before the prefix means it is
# part of a longer word ("task-…"), not a key.
_B = r"(?<![A-Za-z0-9])"
KNOWN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(_B + r"sk-ant-[A-Za-z0-9_-]{16,}"), "an Anthropic key"),
    (re.compile(_B + r"sk-[A-Za-z0-9_-]{16,}"), "an OpenAI-style key"),
    (re.compile(_B + r"hf_[A-Za-z0-9]{20,}"), "a Hugging Face token"),
    (re.compile(_B + r"(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
     "a GitHub token"),
    (re.compile(_B + r"glpat-[A-Za-z0-9_-]{20,}"), "a GitLab token"),
    (re.compile(_B + r"xox[bapors]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(_B + r"(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])"), "an AWS access key"),
    (re.compile(_B + r"AIza[0-9A-Za-z_-]{30,}"), "a Google API key"),
    (re.compile(_B + r"NR(?:AK|AA|II|JS|AL|SP|RA|RI|RS)-[A-Z0-9]{27}(?![A-Z0-9])"),
     "a New Relic key"),
    (re.compile(_B + r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"), "a Stripe key"),
    (re.compile(_B + r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"), "a SendGrid key"),
    (re.compile(_B + r"npm_[A-Za-z0-9]{36}"), "an npm token"),
    (re.compile(_B + r"pypi-AgE[A-Za-z0-9_-]{50,}"), "a PyPI token"),
    (re.compile(_B + r"gsk_[A-Za-z0-9]{40,}"), "a Groq key"),
    (re.compile(_B + r"r8_[A-Za-z0-9]{30,}"), "a Replicate token"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    # the URL is the credential: whoever has it can post
    (re.compile(r"https?://(?:hooks\.slack\.com/services|(?:discord|discordapp)\.com/api/"
                r"webhooks)/\S+"), "a webhook URL"),
]
URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>]+")
# a JWT is base64url `{"…` header and payload and a signature, dot-separated: found in
# runs (one pass) rather than by a pattern that rescans a long run from every `eyJ`
DOTTED_RUN = re.compile(r"[A-Za-z0-9_.-]+")
# a run of base64/base64url/hex characters: a candidate for a random token
RUN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")
DIGEST = re.compile(r"(?:sha256|sha384|sha512):$")
HEX = re.compile(r"[0-9a-fA-F]+")
REF = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*")
# ${NAME}, ${NAME:-default}, ${NAME:?message}, $NAME: the variables a value reads ($$ is
# compose's escape for a literal $, read inside the container, not from .env)
REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)")
# ruamel's duplicate-key message quotes both values: the key and line are enough
DUPLICATE_VALUES = re.compile(r' with value "(?:[^"\\]|\\.)*"'
                              r'(?: \(original value: "(?:[^"\\]|\\.)*"\))?')
# ${VAR}, ${VAR:-} (empty default) or ${VAR:?message}: never a value written in the file
ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?-|:?\?[^}]*)?\}$")
# an environment variable whose name says its value is a secret
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD)", re.I)
SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass",
                "passphrase", "auth", "credential", "credentials", "sig", "signature"}


@dataclass(frozen=True)
class Finding:
    start: int
    end: int
    kind: str


def secret_name(name: str) -> bool:
    """`--api-key`, `hf_token`, `apiKey`, `X-Auth`: a name whose value is a secret.
    Whole words only: `--max-tokens` and `--tokenizer` are not."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.lstrip("-"))
    return any(w in SECRET_WORDS for w in re.split(r"[-_.\s]+", words.lower()))


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    return -sum(c / len(text) * math.log2(c / len(text)) for c in counts.values())


def random_token(run: str) -> bool:
    """A long run that reads as random, not as a name: `Qwen2.5-Coder-7B-Instruct-AWQ` and
    `Meta-Llama-3-8B-Instruct-Q4_K_M` are words and numbers; a key changes between lower
    case, upper case and digits at nearly every character."""
    pieces = [p for p in re.split(r"[-_/+=]+", run) if p]
    body = "".join(pieces)
    if len(body) < 20:
        return False
    if HEX.fullmatch(body):  # hex digests of keys: letters and digits, 32 or more
        return len(body) >= 32 and not body.isdigit() and not body.isalpha() \
            and entropy(body) > 3.0
    if any(_two_kind_token(p) for p in pieces):
        return True
    if len({_kind(c) for c in body}) < 3 or entropy(body) <= 3.5:
        return False
    # changes of kind inside each piece: a separator between two words is not one
    changes = sum(_kind(a) != _kind(b) for p in pieces for a, b in pairwise(p))
    pairs = sum(len(p) - 1 for p in pieces)
    return pairs > 0 and changes / pairs >= 0.4


def _two_kind_token(piece: str) -> bool:
    """32 or more letters of one case and digits, unbroken and mixed through: a base-36
    token (`q8x3k2m9…`), not a word with a number (`llama3`) nor a hex digest's halves."""
    kinds = {_kind(c) for c in piece}
    if len(piece) < 32 or len(kinds) != 2 or "digit" not in kinds or entropy(piece) <= 4.0:
        return False
    digits = sum(c.isdigit() for c in piece) / len(piece)
    changes = sum(_kind(a) != _kind(b) for a, b in pairwise(piece)) / (len(piece) - 1)
    return 0.08 <= digits <= 0.85 and changes >= 0.2


def _kind(c: str) -> str:
    return "lower" if c.islower() else "upper" if c.isupper() else "digit"


def findings(text: str) -> list[Finding]:
    """Every secret-shaped part of `text`, leftmost first, without overlaps."""
    found: list[Finding] = []
    for pattern, kind in KNOWN:
        found += [Finding(m.start(), m.end(), kind) for m in pattern.finditer(text)]
    for m in DOTTED_RUN.finditer(text):
        found += _jwts(m.group(), m.start())
    for m in URL.finditer(text):
        found += _in_url(m.group(), m.start())
    for m in RUN.finditer(text):
        if not DIGEST.search(text[max(0, m.start() - 7):m.start()]) \
                and random_token(m.group()):
            found.append(Finding(m.start(), m.end(), "a random-looking token"))
    out: list[Finding] = []
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        if not out or f.start >= out[-1].end:
            out.append(f)
    return out


def _jwts(run: str, offset: int) -> list[Finding]:
    parts = run.split(".")
    out, at = [], offset
    for i, part in enumerate(parts):
        if i + 2 < len(parts) and part.startswith("eyJ") and parts[i + 1].startswith("eyJ") \
                and len(part) >= 11 and len(parts[i + 1]) >= 11:
            end = at + len(part) + len(parts[i + 1]) + len(parts[i + 2]) + 2
            out.append(Finding(at, end, "a JWT"))
        at += len(part) + 1
    return out


def _in_url(url: str, offset: int) -> list[Finding]:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    out = []
    if password and not REF.match(password):
        # user:password@ — the span of the password, so the host stays readable
        at = url.index("@") if "@" in url else len(url)
        start = url.index(":", url.index("//") + 2) + 1
        out.append(Finding(offset + start, offset + at, "a password in a URL"))
    query_at = url.find("?")
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if secret_name(name) and not REF.match(value):
            i = url.find(value, query_at)
            if i >= 0:
                out.append(Finding(offset + i, offset + i + len(value),
                                   f"a key in a URL (?{name}=)"))
    return out


def describe(text: str) -> str | None:
    """What secret `text` holds ("an OpenAI-style key, 51 characters"), or None."""
    found = findings(text)
    if not found:
        return None
    f = found[0]
    return f"{f.kind}, {f.end - f.start} characters"


def redact(text: str) -> str:
    """`text` with every secret-shaped part replaced by its kind and length."""
    text = DUPLICATE_VALUES.sub("", text)
    out, at = [], 0
    for f in findings(text):
        out += [text[at:f.start], f"<{f.kind}, {f.end - f.start} characters>"]
        at = f.end
    return "".join(out) + text[at:]


def in_arguments(args: list[str]) -> list[tuple[int, str]]:
    """(index, description) of every argument that is or carries a secret:
    `--api-key VALUE`, `--hf-token=VALUE` (unless VALUE is a `${VAR}` reference or a
    file path), or any secret-shaped argument."""
    out: list[tuple[int, str]] = []
    for i, arg in enumerate(args):
        if (what := describe(arg)) is not None:
            out.append((i, what))
        elif arg.startswith("-") and "=" in arg:
            name, value = arg.split("=", 1)
            if secret_name(name) and _inline(value):
                out.append((i, f"a value of {name}, {len(value)} characters"))
        elif arg.startswith("-") and secret_name(arg) and i + 1 < len(args) \
                and not args[i + 1].startswith("-") and _inline(args[i + 1]) \
                and describe(args[i + 1]) is None:
            out.append((i + 1, f"a value of {arg}, {len(args[i + 1])} characters"))
    return out


def _inline(value: str) -> bool:
    """A value written out, not read from a variable or a file."""
    return bool(value) and not REF.match(value) and not value.startswith(("/", "./"))


def references(value: str) -> list[str]:
    """Names of the variables `value` reads (compose interpolation)."""
    return [a or b for a, b in REFERENCE.findall(value) if a or b]
