"""Image-level Docker calls of stackctl (the only place that touches images).

:class:`ImageOps` wraps a ``python_on_whales.DockerClient``; the stackctl Docker adapter
composes it. It never pulls: every image of the local set is built or imported here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # python_on_whales is imported by whoever builds the client
    from python_on_whales import DockerClient

# python_on_whales' exceptions are imported inside the methods: the adapter imports this
# module, and commands that never call Docker (validate) import the adapter; python_on_whales
# costs them ~150 ms (measured).


class ImageOpsError(RuntimeError):
    """A Docker image operation failed; the message carries Docker's own error text."""


@dataclass(frozen=True)
class ImageInfo:
    """What ``docker image inspect`` says about one local image."""

    tag: str
    id: str
    size: int
    """Bytes (the image's own size, layers shared with its parent included)."""
    created: datetime
    labels: Mapping[str, str]


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class ImageOps:
    """Inspect, build, import and list images through one Docker client."""

    def __init__(self, docker: DockerClient) -> None:
        self._docker = docker

    # --- reading -----------------------------------------------------------------------
    def inspect(self, tag: str) -> ImageInfo | None:
        """The image tagged ``tag``, or None when there is none."""
        from python_on_whales.exceptions import NoSuchImage  # ~150 ms: see above

        try:
            image = self._docker.image.inspect(tag)
        except NoSuchImage:
            return None
        return self._info(image, tag)

    def labels(self, tag: str) -> dict[str, str] | None:
        """Labels of the image tagged ``tag`` (None when the image does not exist)."""
        info = self.inspect(tag)
        return None if info is None else dict(info.labels)

    def list_images(self, repository_prefix: str = "") -> list[ImageInfo]:
        """Every local tag starting with ``repository_prefix``, one entry per tag."""
        out: list[ImageInfo] = []
        for image in self._docker.image.list():
            for tag in image.repo_tags or []:
                if tag.startswith(repository_prefix):
                    out.append(self._info(image, tag))
        return sorted(out, key=lambda i: i.tag)

    @staticmethod
    def _info(image: object, tag: str) -> ImageInfo:
        config = getattr(image, "config", None)
        labels = dict(getattr(config, "labels", None) or {})
        return ImageInfo(
            tag=tag,
            id=str(getattr(image, "id", "")),
            size=int(getattr(image, "size", 0) or 0),
            created=image.created,  # type: ignore[attr-defined]
            labels=labels,
        )

    # --- writing -----------------------------------------------------------------------
    def build(
        self,
        context: Path,
        tag: str,
        *,
        labels: Mapping[str, str] | None = None,
        build_args: Mapping[str, str] | None = None,
        dockerfile: Path | None = None,
        use_cache: bool = True,
    ) -> str:
        """``docker build`` (classic builder: no buildx here, and nothing is pulled).

        Returns the image id.
        """
        from python_on_whales.exceptions import DockerException  # ~150 ms: see above

        try:
            image = self._docker.legacy_build(
                context,
                tags=[tag],
                labels=dict(labels or {}),
                build_args=dict(build_args or {}),
                file=dockerfile,
                cache=use_cache,
                pull=False,
            )
        except DockerException as exc:
            detail = _tail((exc.stderr or "") + "\n" + (exc.stdout or ""))
            raise ImageOpsError(f"docker build of {tag} failed:\n{detail}") from exc
        return str(image.id)

    def import_rootfs(self, stream: IO[bytes], tag: str, *, changes: Iterable[str] = ()) -> str:
        """``docker image import - TAG`` fed from ``stream`` (an uncompressed rootfs tar,
        e.g. the stdout of ``mmdebstrap ... -``). ``changes`` are Dockerfile instructions
        (``LABEL k=v``, ``CMD [...]``, ``ENV ...``). Returns the image id.
        """
        cmd: list[str] = [str(c) for c in self._docker.client_config.docker_cmd]
        cmd += ["image", "import"]
        for change in changes:
            cmd += ["--change", change]
        cmd += ["-", tag]
        proc = subprocess.run(cmd, stdin=stream, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ImageOpsError(
                f"docker image import of {tag} failed (exit {proc.returncode}):\n" + _tail(proc.stderr)
            )
        return proc.stdout.strip()

    def remove(self, tags: Sequence[str], *, force: bool = False) -> None:
        """Remove images by tag; tags that do not exist are ignored."""
        present = [t for t in tags if self._docker.image.exists(t)]
        if present:
            self._docker.image.remove(present, force=force)

    def tag(self, source: str, new_tag: str) -> None:
        """Point ``new_tag`` at the image ``source`` (a tag or an id)."""
        self._docker.image.tag(source, new_tag)

    def prune_dangling(self, label: str) -> int:
        """Remove untagged leaf images carrying ``label`` (``key`` or ``key=value``): images
        that lost their tag to a rebuild, leftover stages of multi-stage builds. One in use
        by a container is left alone. Returns how many went."""
        from python_on_whales.exceptions import DockerException  # ~150 ms: see above

        removed = 0
        for image in self._docker.image.list(filters=[("dangling", "true"), ("label", label)]):
            try:
                self._docker.image.remove(image.id, prune=True)
                removed += 1
            except DockerException:
                pass
        return removed
