"""stackctl images: build and list the local image set (no registry needed)."""

from __future__ import annotations

import click


def _docker_ops():  # type: ignore[no-untyped-def]
    """ImageOps on the default Docker client; a clear error when no engine answers."""
    from python_on_whales import DockerClient  # slow import: only when Docker is needed
    from python_on_whales.exceptions import DockerException

    from ..docker.images import ImageOps

    client = DockerClient()
    try:
        client.system.info()
    except (DockerException, FileNotFoundError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip().splitlines() or [""]
        raise click.ClickException(
            "no Docker engine answers (`docker info` failed): run scripts/ensure-docker.sh\n" + detail[0]
        ) from None
    return ImageOps(client)


def _check_names(names: tuple[str, ...]) -> None:
    from ..images.specs import UnknownImageError, get_spec

    for name in names:
        try:
            get_spec(name)
        except UnknownImageError as exc:
            raise click.ClickException(str(exc)) from None


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:.0f} MiB"


@click.group()
def images() -> None:
    """Build the local image set offline (Debian rootfs via mmdebstrap, then FROM base).

    Images are tagged stackctl-local/* and labelled with a content hash: a build skips
    every image whose inputs did not change. Host artifacts (wheels, the compiled
    llama.cpp server, the SmolLM2 model) are cached in $STACKCTL_CACHE_DIR
    (default ~/.cache/stackctl).
    """


@images.command()
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
def build(only: tuple[str, ...], force: bool) -> None:
    """Build missing or changed images, base first; report built / up to date per image."""
    from rich.console import Console

    from ..docker.images import ImageOpsError
    from ..images.build import BuildOptions, BuildResult, ImageBuildError, build_images

    _check_names(only)
    ops = _docker_ops()
    console = Console(highlight=False)

    def on_step(name: str, message: str) -> None:
        console.print(f"[dim]  {name}: {message}[/]")

    def on_done(r: BuildResult) -> None:
        if r.action == "built":
            console.print(f"[green]built[/]       {r.tag}  {r.seconds:.1f}s")
        else:
            console.print(f"[cyan]up to date[/]  {r.tag}  (cached) {r.seconds:.1f}s")

    from python_on_whales.exceptions import DockerException

    try:
        results = build_images(ops, BuildOptions(only=only, force=force), on_step=on_step, on_done=on_done)
    except (ImageBuildError, ImageOpsError) as exc:
        raise click.ClickException(str(exc)) from None
    except DockerException as exc:
        raise click.ClickException(f"docker failed: {exc}") from None
    built = sum(r.action == "built" for r in results)
    total = sum(r.seconds for r in results)
    console.print(
        f"{len(results)} image(s): {built} built, {len(results) - built} up to date in {total:.1f}s"
    )


@images.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the states as JSON.")
def list_(as_json: bool) -> None:
    """Show each image of the set: tag, size, up to date / stale / missing."""
    import json

    from ..images.build import image_status

    states = image_status(_docker_ops())
    if as_json:
        click.echo(json.dumps([s.model_dump() for s in states], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    colour = {"up to date": "green", "stale": "yellow", "missing": "red", "unknown": "dim"}
    table = Table("image", "tag", "size", "status", box=None)
    for s in states:
        table.add_row(s.name, s.tag, _mib(s.size), f"[{colour[s.status]}]{s.status}[/]")
    Console(highlight=False).print(table)
