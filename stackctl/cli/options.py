"""The options and output every command shares, made of click alone.

`stackctl switch` reaches a running scheduler with nothing more than this module and the
standard library (cli/switch.py): the registry, pydantic and the switching machinery cost
~250 ms to import, half the wall-time budget of a switch's overhead. The helpers that need
the registry are in common.py, which re-exports these.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from stackctl.cli import FAILED, Folder

F = TypeVar("F", bound=Callable[..., Any])


class Failed(click.ClickException):
    """A user-facing failure with its exit code; `doc` is the --json document to print
    on stdout instead of the generic {"ok": false, "error": …} one."""

    def __init__(self, message: str, exit_code: int = FAILED, doc: dict | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.doc = doc


def json_errors(func: F) -> F:
    """With --json (parameter `as_json`), a failure still prints one JSON document on stdout:
    the Failed's own `doc`, else {"ok": false, "error": …, "exit_code": …}. The message
    goes to stderr as usual."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.UsageError:
            raise
        except click.ClickException as exc:
            if kwargs.get("as_json"):
                doc = getattr(exc, "doc", None) or {
                    "ok": False, "error": exc.format_message(), "exit_code": exc.exit_code}
                echo_json(doc)
            raise

    return wrapper  # type: ignore[return-value]


def echo_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2))


CONFIG_DIR_HELP = "Folder holding providers.yaml, model-mappings.yaml and stack.yaml."


def config_dir_option(func: F) -> F:
    return click.option(
        "-C", "--config-dir", type=Folder(), default=Path("config"), show_default=True,
        envvar="STACKCTL_CONFIG_DIR", show_envvar=True, callback=_merge_config_dir,
        help=CONFIG_DIR_HELP + " May also come before the command: stackctl -C DIR COMMAND.",
    )(func)


def _merge_config_dir(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """The subcommand's own -C wins; else the group's -C; else $STACKCTL_CONFIG_DIR; else
    ./config."""
    if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
        return value
    root = ctx.find_root()
    if root is not ctx and root.params.get("config_dir") is not None:
        return Path(root.params["config_dir"])
    return value


def _own_or_group_dir(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """`GROUP SUB -C DIR` wins; else `GROUP -C DIR SUB` (which already took the -C before
    GROUP and $STACKCTL_CONFIG_DIR into account)."""
    if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
        return value
    parent = ctx.parent.params.get("config_dir") if ctx.parent else None
    return Path(parent) if parent is not None else value


def sub_config_dir_option(func: F) -> F:
    """-C on a subcommand of a group (`cache`, `images`) that has its own -C."""
    return click.option(
        "-C", "--config-dir", type=Folder(), default=Path("config"), show_default=True,
        envvar="STACKCTL_CONFIG_DIR", show_envvar=True, callback=_own_or_group_dir,
        help=CONFIG_DIR_HELP + " May also come before the command: stackctl -C DIR GROUP ...",
    )(func)


def verbosity_options(func: F) -> F:
    func = click.option("-v", "--verbose", is_flag=True,
                        help="More detail: every container state change, who is still awaited, "
                             "timings.")(func)
    return click.option("-q", "--quiet", is_flag=True,
                        help="Only errors and the final line.")(func)


class Say:
    """Where a command's lines go. Progress goes to stderr under --json (stdout carries only
    the JSON document); -q drops it, -v adds detail lines, timed from the start."""

    def __init__(self, quiet: bool = False, verbose: bool = False, as_json: bool = False):
        if quiet and verbose:
            raise click.UsageError("-q/--quiet and -v/--verbose exclude each other")
        self.quiet, self.verbose, self.as_json = quiet, verbose, as_json
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def progress(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=self.as_json)

    def detail(self, text: str) -> None:
        if self.verbose:
            click.echo(f"{self.elapsed():7.2f}s {text}", err=self.as_json)

    def result(self, text: str) -> None:
        """The final line(s): shown even with -q; under --json the document replaces them."""
        if not self.as_json:
            click.echo(text)


