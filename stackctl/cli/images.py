"""stackctl images: build and list the local image set (no registry needed)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import click
from click.core import ParameterSource
from python_on_whales.exceptions import DockerException
from rich.console import Console
from rich.table import Table
from rich.text import Text

from stackctl.cli import FAILED, NO_ENGINE, OK, exit_codes
from stackctl.cli.common import (
    check_config_dir,
    config_dir_option,
    json_errors,
    sub_config_dir_option,
)
from stackctl.docker.adapter import Docker, EngineUnreachable
from stackctl.docker.images import ImageOpsError
from stackctl.images.build import BuildOptions, ImageBuildError, build_images, image_status
from stackctl.images.specs import UnknownImageError, get_spec

BUILD_EXIT_CODES = exit_codes({
    OK: "ok: every image built or up to date",
    FAILED: "a build failed (the message names the step and its log file)",
    NO_ENGINE: "no Docker engine answers (run scripts/ensure-docker.sh)",
})
LIST_EXIT_CODES = exit_codes({
    OK: "ok",
    FAILED: "a Docker call failed",
    NO_ENGINE: "no Docker engine answers (run scripts/ensure-docker.sh)",
})


class NoDockerEngine(click.ClickException):
    """`docker info` fails: no engine, or none this user may reach."""

    exit_code = NO_ENGINE


def _docker_ops():  # type: ignore[no-untyped-def]
    """The image half of the Docker adapter; a clear error when no engine answers."""
    docker = Docker()
    try:
        docker.ping()
    except EngineUnreachable as exc:
        raise NoDockerEngine(str(exc)) from None
    return docker.images


def _check_given(config_dir: Path) -> None:
    """A -C given (here, before the group or the command, or in $STACKCTL_CONFIG_DIR) must
    name a registry folder; none given: the build runs from any folder."""
    ctx = click.get_current_context()
    given = [c.get_parameter_source("config_dir") for c in (ctx, ctx.parent, ctx.find_root())
             if c is not None]
    if any(source not in (None, ParameterSource.DEFAULT) for source in given):
        check_config_dir(config_dir)


def _check_names(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            get_spec(name)
        except UnknownImageError as exc:
            raise click.BadParameter(str(exc), param_hint="'--only'") from None


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:.0f} MiB"


def _elapsed(seconds: float, precise: bool = False) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s" if precise else f"{int(seconds)}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


class _Progress:
    """What `images build` prints while it runs.

    On a terminal a live line names the running step with its elapsed time ("llama-server:
    compiling … 3m12s"); one line per finished image is printed above it. Elsewhere only the
    per-image lines. ``quiet``: neither (the summary only); ``verbose``: every step message too.
    """

    def __init__(self, console, *, quiet: bool, verbose: bool) -> None:  # type: ignore[no-untyped-def]
        self._clock = time.monotonic
        self.console = console
        self.quiet = quiet
        self.verbose = verbose
        self.live = console.is_terminal and not console.is_dumb_terminal and not quiet
        self.text = "checking images"
        self.since = self._clock()

    def __rich__(self):  # type: ignore[no-untyped-def]
        text = Text(self.text)
        text.append(f" … {_elapsed(self._clock() - self.since)}", style="dim")
        text.truncate(max(20, self.console.width - 3), overflow="ellipsis")
        return text

    def on_step(self, name: str, message: str) -> None:
        self.text, self.since = f"{name}: {message}", self._clock()
        if self.verbose:
            self.console.print(f"[dim]  {name}: {message}[/]")

    def on_done(self, r) -> None:  # type: ignore[no-untyped-def]
        self.text, self.since = "checking images", self._clock()
        if self.quiet:
            return
        if r.action == "built":
            self.console.print(f"[green]built[/]       {r.tag}  {_elapsed(r.seconds, precise=True)}")
        else:
            self.console.print(f"[cyan]up to date[/]  {r.tag}  (cached) {r.seconds:.1f}s")


@click.group()
@config_dir_option
def images(config_dir: Path) -> None:
    """Build the local image set offline (Debian rootfs via mmdebstrap, then FROM base).

    Images are tagged stackctl-local/* and labelled with a content hash: a build skips
    every image whose inputs did not change. Host artifacts (wheels, the compiled
    llama.cpp server, the SmolLM2 model) are cached in $STACKCTL_CACHE_DIR
    (default ~/.cache/stackctl). The set is the same for every registry: -C is taken, as
    by every command, and only checked.
    """


@images.command(epilog=BUILD_EXIT_CODES)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Build only this image (and its parents); repeatable.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Rebuild even when the content hash matches (with --only: just those images).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print the summary line only.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Print each step (download, compile, build) as it starts."
)
@sub_config_dir_option
def build(only: tuple[str, ...], force: bool, quiet: bool, verbose: bool,
          config_dir: Path) -> None:
    """Build missing or changed images, base first; report built / up to date per image.

    On a terminal the running step (wheel download, compiling llama.cpp: minutes, the first
    time only; docker build) is shown live with its elapsed time. The output of each long
    step goes to a log file in the cache's logs/ folder; a failed step names that file and
    quotes its last lines. The cache is $STACKCTL_CACHE_DIR, else $XDG_CACHE_HOME/stackctl
    (default ~/.cache/stackctl).
    """
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other")
    _check_given(config_dir)
    _check_names(only)
    ops = _docker_ops()
    console = Console(highlight=False)
    progress = _Progress(console, quiet=quiet, verbose=verbose)
    options = BuildOptions(only=only, force=force)
    try:
        with console.status(progress) if progress.live else contextlib.nullcontext():
            results = build_images(ops, options, on_step=progress.on_step, on_done=progress.on_done)
    except (ImageBuildError, ImageOpsError) as exc:
        raise click.ClickException(str(exc)) from None
    except DockerException as exc:
        raise click.ClickException(f"docker failed: {exc}") from None
    built = sum(r.action == "built" for r in results)
    total = sum(r.seconds for r in results)
    console.print(
        f"{len(results)} image(s): {built} built, {len(results) - built} up to date"
        f" in {_elapsed(total, precise=True)}"
    )


@images.command(name="list", epilog=LIST_EXIT_CODES)
@click.option("--json", "as_json", is_flag=True, help="Print the states as JSON (a failure "
              'too: {"ok": false, "error": …, "exit_code": …}).')
@sub_config_dir_option
@json_errors
def list_(as_json: bool, config_dir: Path) -> None:
    """Show each image of the set: tag, size, up to date / stale / missing."""
    _check_given(config_dir)
    ops = _docker_ops()
    try:
        states = image_status(ops)
    except (ImageOpsError, DockerException) as exc:
        raise click.ClickException(f"docker failed: {exc}") from None
    if as_json:
        click.echo(json.dumps([s.model_dump() for s in states], indent=2))
        return
    colour = {"up to date": "green", "stale": "yellow", "missing": "red", "unknown": "dim"}
    table = Table("image", "tag", "size", "status", box=None)
    for s in states:
        table.add_row(s.name, s.tag, _mib(s.size), f"[{colour[s.status]}]{s.status}[/]")
    Console(highlight=False).print(table)
