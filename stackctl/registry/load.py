"""Load the three registry files into typed models, turning pydantic errors into located problems."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from stackctl.hints import did_you_mean
from stackctl.registry.models import MappingsFile, ProvidersFile, StackFile
from stackctl.registry.problems import Problem, RegistryError
from stackctl.registry.source import Source, load_source

PROVIDERS = "providers.yaml"
MAPPINGS = "model-mappings.yaml"
STACK = "stack.yaml"
FILES = (PROVIDERS, MAPPINGS, STACK)  # the registry

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Registry:
    config_dir: Path
    providers: ProvidersFile
    mappings: MappingsFile
    stack: StackFile
    sources: dict[str, Source]

    def resolve(self, relative: str) -> Path:
        return (self.config_dir / relative).resolve()

    @property
    def output_dir(self) -> Path:
        return self.resolve(self.stack.output_dir)

    @property
    def env_file(self) -> Path:
        return self.resolve(self.stack.env_file)


def load_registry(config_dir: Path, texts: Mapping[str, str] | None = None) -> Registry:
    """Parse and type-check every file; raise RegistryError listing all problems found.
    `texts`: file name → text read instead of that file (an edit checked before writing)."""
    sources: dict[str, Source] = {}
    problems: list[Problem] = []
    for name, required in ((PROVIDERS, True), (MAPPINGS, True), (STACK, False)):
        try:
            src = load_source(config_dir / name, required, (texts or {}).get(name))
        except RegistryError as exc:
            problems += exc.problems
            continue
        if src is not None:
            sources[name] = src
    if problems:
        raise RegistryError(problems)

    providers = _validate(ProvidersFile, sources[PROVIDERS], problems)
    mappings = _validate(MappingsFile, sources[MAPPINGS], problems)
    stack = _validate(StackFile, sources[STACK], problems) if STACK in sources else StackFile()
    if problems or providers is None or mappings is None or stack is None:
        raise RegistryError(problems)
    return Registry(config_dir, providers, mappings, stack, sources)


def _validate(model: type[M], src: Source, problems: list[Problem]) -> M | None:
    try:
        return model.model_validate(src.data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            problems.append(_problem(model, src, err))
        return None


def _problem(model: type[BaseModel], src: Source, err: Any) -> Problem:
    loc = tuple(err["loc"])
    # pydantic adds union/tag members (e.g. 'str', 'function-before[...]') to loc: drop them
    # (only where the file holds no such key: a key may be called `int` or `a[0]`)
    loc = src.key_path(loc, _is_pydantic_tag)
    kind, hint = err["type"], None
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        message = f"unknown key {loc[-1]!r}"
        hint = did_you_mean(str(loc[-1]), allowed) or (
            "allowed keys: " + ", ".join(sorted(allowed)) if allowed else None)
    elif kind == "literal_error":
        choices = [c.strip(" '") for c in err["ctx"]["expected"].replace(" or ", ",").split(",")]
        hint = did_you_mean(str(err["input"]), choices)
        # a near miss of a choice is a typo, safe to repeat; anything else might be a secret
        shown = repr(err["input"]) if hint else shown_as(err["input"])
        message = f"{shown} is not allowed: expected {err['ctx']['expected']}"
    elif kind == "missing":
        message = f"required key {loc[-1]!r} is missing"
    elif kind in NUMBER_ERRORS or (kind in BOUND_ERRORS and _is_port(loc)):
        message, hint = _number_message(kind, loc, err)
    else:
        message = err["msg"].removeprefix("Value error, ")
        if "input" in err:
            message += f" (got {shown_as(err['input'])})"
    return src.problem("error", loc, message, hint)


# pydantic's error types for a value that is not a whole number, and for one out of bounds
NUMBER_ERRORS = {"int_parsing": "a whole number", "int_type": "a whole number",
                 "int_from_float": "a whole number", "float_parsing": "a number",
                 "float_type": "a number", "bool_parsing": "true or false",
                 "bool_type": "true or false"}
# digits, and the letters typed for them by a slip (O/o for 0, S for 5, l/I for 1, B for 8)
DIGIT_TYPO = re.compile(r"(?=.*[0-9])[0-9OoSlIB]{1,6}")
BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _is_port(loc: tuple) -> bool:
    return bool(loc) and isinstance(loc[-1], str) and loc[-1].endswith("port")


def _number_message(kind: str, loc: tuple, err: Any) -> tuple[str, str | None]:
    """Plain words for a number that is not one (pydantic says "Input should be a valid
    integer, unable to parse string as an integer"); a port says what a port is."""
    value = err.get("input")
    typo = isinstance(value, str) and DIGIT_TYPO.fullmatch(value) is not None
    # a digit typed as a letter (80S0) is safe to repeat; any other string might be a
    # password pasted in the wrong place: only its length
    what = f"{value!r} is" if typo else f"(got {shown_as(value)})"
    if _is_port(loc):
        hint = "a port is a whole number from 1 to 65535, e.g. 8080" + (
            "; check for a letter (O, S, l) typed for a digit" if typo else "")
        return (f"{what} not a port number" if typo else f"not a port number {what}"), hint
    expected = NUMBER_ERRORS[kind]
    hint = f"write {expected} here" + (", without quotes" if isinstance(value, str) else "")
    return (f"{what} not {expected}" if typo else f"not {expected} {what}"), hint


def shown_as(value: Any) -> str:
    """A value as an error message may show it: a string could be a secret, so only its
    length ("a string of 51 characters"); numbers, booleans and null as they are."""
    if isinstance(value, str):
        return f"a string of {len(value)} character{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


def _is_pydantic_tag(key: str) -> bool:
    return key in ("str", "int", "float", "bool", "list", "dict") or "[" in key


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Names of the fields allowed at `loc` inside `model`, following nested models."""
    current: Any = model
    for key in loc:
        if isinstance(key, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        if key in fields:
            current = _inner_model(fields[key].annotation)
        else:  # a dict key (provider name, model name …): step into the value type
            continue
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
