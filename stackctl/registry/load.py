"""Load the three registry files into typed models, turning pydantic errors into located problems."""

from __future__ import annotations

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


def load_registry(config_dir: Path) -> Registry:
    """Parse and type-check every file; raise RegistryError listing all problems found."""
    sources: dict[str, Source] = {}
    problems: list[Problem] = []
    for name, required in ((PROVIDERS, True), (MAPPINGS, True), (STACK, False)):
        try:
            src = load_source(config_dir / name, required)
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
    else:
        message = err["msg"].removeprefix("Value error, ")
        if "input" in err:
            message += f" (got {shown_as(err['input'])})"
    return src.problem("error", loc, message, hint)


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
