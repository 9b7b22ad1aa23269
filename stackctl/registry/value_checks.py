"""Registry text that another program reads as more than text.

- Compose fills `$VAR` and `${VAR}` in from .env and the shell's environment anywhere in
  the compose file: only a container's `env` and `command` may read variables (the checks
  of secret_checks.py see what they read); a `$` anywhere else would hand a health check, a
  mount path or a model name any variable, secrets included.
- LiteLLM reads a string `os.environ/NAME` in its config as the variable's value.
- A control character reaches terminals (`validate`, `status`, `logs`) as a command.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from stackctl.registry.load import Registry
from stackctl.registry.problems import Problem
from stackctl.registry.source import Loc, Source

# Keys whose values no renderer writes anywhere: descriptive text of the original schema
# (and `pattern`, a regular expression with its `$`, which the gateway does not route by).
DESCRIPTIVE = frozenset({
    "description", "notes", "docs", "features", "location", "configuration", "service_file",
    "api_format", "hardware_requirements", "rate_limits", "cost_per_1k_tokens", "metadata",
    "health_checks", "routing_rules", "special_cases", "tier", "priority", "condition",
    "parameters", "pattern", "thresholds"})
# Compose's braced reference (compose-go template): ${NAME}, ${NAME:-default}, ${NAME?msg} …
BRACED = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*(?::?[-+?].*)?", re.S)
LITELLM_ENV = "os.environ/"


def check_values(reg: Registry) -> list[Problem]:
    out: list[Problem] = []
    for src in reg.sources.values():
        _walk(src, src.data, (), out)
    return out


def _walk(src: Source, node: Any, loc: Loc, out: list[Problem]) -> None:
    descriptive = any(isinstance(k, str) and k in DESCRIPTIVE for k in loc) or \
        _model_extra(loc)
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str):
                _text(src, loc + (key,), key, "name", descriptive, out)
            _walk(src, value, loc + (key,), out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(src, item, loc + (i,), out)
    elif isinstance(node, str):
        _text(src, loc, node, "value", descriptive, out)


def _model_extra(loc: Loc) -> bool:
    """A provider model's keys other than `name` (size, quantization …) are descriptive."""
    return len(loc) > 4 and loc[0] == "providers" and loc[2] == "models" \
        and loc[4] != "name"


def _reads_variables(loc: Loc) -> bool:
    """A container's env values and command arguments: `${VAR}` is how they read .env."""
    return len(loc) >= 4 and loc[0] == "providers" and loc[2] == "container" and (
        (loc[3] == "env" and len(loc) == 5) or (loc[3] == "command" and len(loc) == 5))


def _text(src: Source, loc: Loc, text: str, what: str, descriptive: bool,
          out: list[Problem]) -> None:
    # a newline may separate prose, or lines of a script, never the parts of a name
    multiline = what == "value" and (descriptive or _reads_variables(loc))
    if (char := control_character(text, multiline)) is not None:
        out.append(src.problem("error", loc, f"this {what} holds the control character "
                               f"{char}: a terminal showing it would run it as a command",
                               "remove it"))
        return
    if descriptive:
        return
    if what == "value" and _reads_variables(loc):
        if (bad := template_problem(text)) is not None:
            out.append(src.problem("error", loc, f"Compose cannot read this value: {bad}",
                                   "write ${NAME} or ${NAME:-default}; $$ for a literal $"))
        return
    if "$" in text:
        out.append(src.problem(
            "error", loc, f"this {what} holds '$': Compose would fill in ${{…}}/$NAME here "
            "from .env or your shell's environment (secrets included)",
            "only a container's env and command may read variables; write the text itself"))
    elif LITELLM_ENV in text:
        out.append(src.problem(
            "error", loc, f"this {what} holds '{LITELLM_ENV}': the gateway would read it as "
            "that environment variable's value (secrets included)",
            "write the name itself; stack.yaml's *_env keys name the stack's secrets"))


def control_character(text: str, allow_newlines: bool) -> str | None:
    """The first control character in `text` as U+XXXX (tab always allowed, newlines in
    values), or None. Bidirectional overrides count: they reorder what a terminal shows."""
    for c in text:
        if c == "\t" or (allow_newlines and c in "\n\r"):
            continue
        if unicodedata.category(c) in ("Cc", "Cf") and (c < "\u00a0" or 0x202A <= ord(c) <= 0x202E
                                                        or 0x2066 <= ord(c) <= 0x2069):
            return f"U+{ord(c):04X}"
    return None


def template_problem(value: str) -> str | None:
    """What Compose refuses in a value it interpolates (compose-go's template grammar):
    every `${` must open a reference `${NAME…}` closed by its `}`; `$$` is a literal `$`,
    and a `$` before anything else is kept as it is."""
    i = 0
    while (i := value.find("$", i)) >= 0:
        nxt = value[i + 1:i + 2]
        if nxt == "$":
            i += 2
            continue
        if nxt != "{":
            i += 1
            continue
        end = _closing(value, i + 1)
        if end < 0:
            return "'${' is not closed by '}'"
        inner = value[i + 2:end]
        if not BRACED.fullmatch(inner):
            return f"'${{{inner[:20]}}}' is not a variable reference"
        sep = re.match(r"[_a-zA-Z0-9]*(:?[-+?])?", inner)
        if sep and sep[1] and (bad := template_problem(inner[sep.end():])):
            return bad
        i = end + 1
    return None


def _closing(value: str, at: int) -> int:
    """Index of the `}` closing the `{` at `at` (braces nest in defaults), or -1."""
    depth = 0
    for j in range(at, len(value)):
        if value[j] == "{":
            depth += 1
        elif value[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return -1
