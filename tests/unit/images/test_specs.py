"""Pure parts of the image set: content hashes, selection, names; the skip logic of
build_images against a recording fake (no Docker)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stackctl.images import specs
from stackctl.images.build import BuildOptions, ImageBuildError, build_images, extra_files, image_status
from stackctl.images.specs import (
    CONTENT_HASH_LABEL,
    UnknownImageError,
    content_hash,
    context_files,
    get_spec,
    image_hashes,
    select,
)
from tests.paths import REPO


@pytest.fixture()
def contexts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the committed build contexts, used by every spec."""
    copy = tmp_path / "contexts"
    shutil.copytree(specs.CONTEXTS_DIR, copy)
    monkeypatch.setattr(specs, "CONTEXTS_DIR", copy)
    return copy


@pytest.fixture()
def stub(tmp_path: Path) -> Path:
    """A stub package: a folder holding __main__.py."""
    package = tmp_path / "inference_stub"
    package.mkdir()
    (package / "__main__.py").write_text("print('stub')\n")
    return package


def _hashes(stub: Path) -> dict[str, str]:
    return image_hashes(select(), extra_files(BuildOptions(stub_package=stub)))


# --- content_hash ----------------------------------------------------------------------------


def test_content_hash_is_stable_and_order_independent(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_text("x")
    h1 = content_hash({"a": a, "b": b"y"}, recipe={"v": 1}, build_args={"K": "1", "L": "2"})
    h2 = content_hash({"b": b"y", "a": a}, recipe={"v": 1}, build_args={"L": "2", "K": "1"})
    assert h1 == h2
    assert len(h1) == 64


def test_content_hash_follows_file_content_not_mtime(tmp_path: Path) -> None:
    f = tmp_path / "Dockerfile"
    f.write_text("FROM x\n")
    before = content_hash({"Dockerfile": f})
    f.write_text("FROM x\n")  # same bytes, new mtime
    assert content_hash({"Dockerfile": f}) == before
    f.write_text("FROM y\n")
    assert content_hash({"Dockerfile": f}) != before


@pytest.mark.parametrize(
    "change",
    [
        {"recipe": {"v": 2}},
        {"build_args": {"K": "2"}},
        {"parent_hash": "other"},
    ],
)
def test_content_hash_covers_recipe_args_and_parent(change: dict) -> None:
    base = {"recipe": {"v": 1}, "build_args": {"K": "1"}, "parent_hash": "p"}
    assert content_hash({"f": b"1"}, **base) != content_hash({"f": b"1"}, **{**base, **change})


def test_content_hash_covers_file_names() -> None:
    assert content_hash({"a": b"1"}) != content_hash({"b": b"1"})


def test_context_files_ignore_caches_and_dotfiles(tmp_path: Path) -> None:
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"0")
    (tmp_path / ".swp").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.txt").write_text("1")
    (tmp_path / "Dockerfile").write_text("FROM x")
    assert list(context_files(tmp_path)) == ["Dockerfile", "sub/f.txt"]


# --- the real set ------------------------------------------------------------------------------


def test_hashes_are_stable_for_unchanged_contexts(contexts: Path, stub: Path) -> None:
    assert _hashes(stub) == _hashes(stub)


def test_changing_a_context_file_changes_only_that_image(contexts: Path, stub: Path) -> None:
    before = _hashes(stub)
    dockerfile = contexts / "redis" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "# changed\n")
    after = _hashes(stub)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"redis"}


def _descendants(root: str) -> set[str]:
    """``root`` and every image built on it, directly or not."""
    family = {root}
    for spec in specs.IMAGE_SPECS:  # parents come first
        if spec.parent in family:
            family.add(spec.name)
    return family


MONITORING_IMAGES = {"prometheus", "alertmanager", "pushgateway", "redis-exporter", "blackbox-exporter"}


def test_the_two_rootfs_images_split_the_set() -> None:
    assert _descendants("monitoring-base") == {"monitoring-base", *MONITORING_IMAGES}
    assert _descendants("base") | _descendants("monitoring-base") == set(specs.SPECS_BY_NAME)
    assert [s.name for s in specs.IMAGE_SPECS if s.parent is None] == ["base", "monitoring-base"]


@pytest.mark.parametrize("root", ["base", "monitoring-base"])
def test_changing_a_rootfs_changes_exactly_the_images_built_on_it(
    contexts: Path, stub: Path, root: str
) -> None:
    before = _hashes(stub)
    packages = contexts / root / "packages.txt"
    packages.write_text(packages.read_text() + "curl\n")
    after = _hashes(stub)
    assert {n for n in before if before[n] != after[n]} == _descendants(root)


def test_a_new_debian_pin_rebuilds_the_monitoring_images_only(
    contexts: Path, stub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _hashes(stub)
    spec = specs.SPECS_BY_NAME["monitoring-base"]
    pins = {**specs.MONITORING_PACKAGES, "prometheus": "2.42.0+ds-5+deb12u2"}
    bumped = replace(spec, recipe={**spec.recipe, "pins": pins})
    monkeypatch.setattr(specs, "IMAGE_SPECS", tuple(bumped if s is spec else s for s in specs.IMAGE_SPECS))
    monkeypatch.setitem(specs.SPECS_BY_NAME, "monitoring-base", bumped)  # type: ignore[index]
    after = _hashes(stub)
    assert {n for n in before if before[n] != after[n]} == _descendants("monitoring-base")


def test_the_stub_modules_are_part_of_the_stub_image_hash(contexts: Path, stub: Path) -> None:
    before = _hashes(stub)
    (stub / "__main__.py").write_text("print('stub v2')\n")
    after = _hashes(stub)
    assert {n for n in before if before[n] != after[n]} == {"inference-stub"}
    (stub / "server.py").write_text("# a new module\n")
    with_module = _hashes(stub)
    assert {n for n in after if after[n] != with_module[n]} == {"inference-stub"}
    (stub / "__pycache__").mkdir()  # neither compiled files nor non-modules are copied in
    (stub / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"compiled")
    (stub / "notes.txt").write_text("not shipped\n")
    assert _hashes(stub) == with_module


def test_the_shipped_stub_package_is_copied_into_the_stub_context() -> None:
    extra = extra_files(BuildOptions())
    stub = extra["inference-stub"]
    assert {"inference_stub/__main__.py", "inference_stub/__init__.py"} <= set(stub)
    assert all(rel.startswith("inference_stub/") and rel.endswith(".py") for rel in stub)
    assert all(path.is_file() for path in stub.values())
    assert extra["litellm"]["verify_image.py"].is_file()
    assert extra["litellm"]["graceful_shutdown.py"].is_file()
    dockerfile = (specs.CONTEXTS_DIR / "inference-stub" / "Dockerfile").read_text()
    assert "COPY inference_stub /stub/inference_stub" in dockerfile
    assert 'ENTRYPOINT ["python3", "-m", "inference_stub"]' in dockerfile


def test_a_stub_package_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="not a folder holding __main__.py"):
        build_images(FakeImageOps(), BuildOptions(cache_dir=tmp_path / "c", stub_package=tmp_path))


def test_every_context_has_what_its_kind_needs() -> None:
    for spec in specs.IMAGE_SPECS:
        files = context_files(spec.context_dir)
        if spec.kind == "rootfs":
            assert spec.parent is None, spec.name
            assert {"packages.txt", "mmdebstrap.args"} <= set(files), spec.name
        else:
            assert spec.parent is not None, spec.name
            dockerfile = files["Dockerfile"].read_text()
            froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
            assert froms and set(froms) == {specs.SPECS_BY_NAME[spec.parent].tag}, spec.name


def test_parents_come_before_their_children() -> None:
    seen: set[str] = set()
    for spec in specs.IMAGE_SPECS:
        assert spec.parent is None or spec.parent in seen, spec.name
        seen.add(spec.name)


def test_tags_are_the_fixed_local_names() -> None:
    tags = {s.name: s.tag for s in specs.IMAGE_SPECS}
    assert tags == {
        "base": "stackctl-local/base:bookworm",
        "redis": "stackctl-local/redis:7",
        "litellm": f"stackctl-local/litellm:{specs.LITELLM_VERSION}",
        "llama-server": f"stackctl-local/llama-server:{specs.LLAMA_CPP_PYTHON_VERSION}",
        "inference-stub": "stackctl-local/inference-stub:1",
        "monitoring-base": "stackctl-local/monitoring-base:bookworm",
        "prometheus": "stackctl-local/prometheus:2.42.0",
        "alertmanager": "stackctl-local/alertmanager:0.25.0",
        "pushgateway": "stackctl-local/pushgateway:1.5.1",
        "redis-exporter": "stackctl-local/redis-exporter:1.45.0",
        "blackbox-exporter": "stackctl-local/blackbox-exporter:0.23.0",
    }


@pytest.mark.parametrize(
    ("debian", "upstream"),
    [
        ("2.42.0+ds-5+deb12u1", "2.42.0"),
        ("0.25.0-1+b4", "0.25.0"),
        ("1:1.5.1~rc1-2", "1.5.1"),
        ("7.0.15", "7.0.15"),
    ],
)
def test_tags_carry_the_upstream_part_of_the_debian_version(debian: str, upstream: str) -> None:
    assert specs.upstream_version(debian) == upstream


def test_the_monitoring_rootfs_installs_python_and_every_pinned_package() -> None:
    from stackctl.images.build import rootfs_packages

    packages = rootfs_packages(specs.SPECS_BY_NAME["monitoring-base"])
    assert "python3" in packages
    assert "prometheus=2.42.0+ds-5+deb12u1" in packages
    assert {p.split("=")[0] for p in packages if "=" in p} == set(specs.MONITORING_PACKAGES)
    assert not any("prometheus" in p for p in rootfs_packages(specs.SPECS_BY_NAME["base"]))


# image name -> (binary, port, path answered when it runs)
MONITORING_RUNTIME = {
    "prometheus": ("/usr/bin/prometheus", 9090, "/-/ready"),
    "alertmanager": ("/usr/bin/prometheus-alertmanager", 9093, "/-/ready"),
    "pushgateway": ("/usr/bin/prometheus-pushgateway", 9091, "/-/ready"),
    "redis-exporter": ("/usr/bin/prometheus-redis-exporter", 9121, "/health"),
    "blackbox-exporter": ("/usr/bin/prometheus-blackbox-exporter", 9115, "/-/healthy"),
}


@pytest.mark.parametrize("name", sorted(MONITORING_RUNTIME))
def test_monitoring_images_run_their_binary_unprivileged_with_a_healthcheck(name: str) -> None:
    binary, port, path = MONITORING_RUNTIME[name]
    dockerfile = (specs.SPECS_BY_NAME[name].context_dir / "Dockerfile").read_text()
    assert f'ENTRYPOINT ["{binary}"]' in dockerfile
    assert "\nUSER prometheus\n" in dockerfile  # Debian's system user, not root
    assert f"\nEXPOSE {port}\n" in dockerfile
    assert f"http://127.0.0.1:{port}{path}" in dockerfile.split("HEALTHCHECK", 1)[1]


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("prometheus", f"--config.file={specs.PROMETHEUS_CONFIG_PATH}"),
        ("prometheus", "--storage.tsdb.path=/prometheus"),
        ("alertmanager", f"--config.file={specs.ALERTMANAGER_CONFIG_PATH}"),
        ("alertmanager", "--storage.path=/alertmanager"),
        ("blackbox-exporter", f"--config.file={specs.BLACKBOX_CONFIG_PATH}"),
    ],
)
def test_monitoring_images_use_the_documented_paths(name: str, flag: str) -> None:
    dockerfile = (specs.SPECS_BY_NAME[name].context_dir / "Dockerfile").read_text()
    assert f'"{flag}"' in dockerfile.split("\nCMD ", 1)[1]


def test_the_blackbox_image_ships_an_http_2xx_module() -> None:
    import yaml

    context = specs.SPECS_BY_NAME["blackbox-exporter"].context_dir
    modules = yaml.safe_load((context / "blackbox.yml").read_text())["modules"]
    assert modules["http_2xx"]["prober"] == "http"
    assert f"COPY blackbox.yml {specs.BLACKBOX_CONFIG_PATH}" in (context / "Dockerfile").read_text()


def test_wheel_target_lists_every_manylinux_tag_up_to_glibc_236() -> None:
    platforms = [specs.WHEEL_TARGET[i + 1] for i, a in enumerate(specs.WHEEL_TARGET) if a == "--platform"]
    assert "manylinux_2_36_x86_64" in platforms
    assert "manylinux_2_28_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms
    assert "manylinux_2_37_x86_64" not in platforms


# --- selection and names -----------------------------------------------------------------------


def test_select_adds_parents_and_keeps_build_order() -> None:
    assert [s.name for s in select(["inference-stub", "redis"])] == [
        "base",
        "redis",
        "inference-stub",
    ]
    assert select()[0].name == "base"
    assert [s.name for s in select(["blackbox-exporter"])] == ["monitoring-base", "blackbox-exporter"]


def test_get_spec_accepts_a_tag() -> None:
    assert get_spec("stackctl-local/redis:7").name == "redis"


def test_unknown_name_suggests_the_close_one() -> None:
    with pytest.raises(UnknownImageError, match="Did you mean 'llama-server'"):
        get_spec("llama-sever")
    with pytest.raises(UnknownImageError, match="Known images: base, redis"):
        get_spec("zzz")


# --- build_images decisions against a fake ------------------------------------------------


@dataclass
class _Info:
    tag: str
    id: str
    labels: dict[str, str]
    size: int = 1
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeImageOps:
    images: dict[str, _Info] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)

    def inspect(self, tag: str) -> _Info | None:
        return self.images.get(tag)

    def build(
        self,
        context: Path,
        tag: str,
        *,
        labels=None,
        build_args=None,
        dockerfile=None,
        use_cache=True,
    ) -> str:
        self.calls.append(("build", tag, sorted(p.name for p in context.iterdir())))
        new_id = f"id-{len(self.calls)}"
        self.images[tag] = _Info(tag, new_id, dict(labels or {}))
        return new_id

    def prune_dangling(self, label: str) -> int:
        self.calls.append(("prune_dangling", label))
        return 0


def _present(ops: FakeImageOps, hashes: dict[str, str]) -> None:
    for spec in select():
        ops.images[spec.tag] = _Info(spec.tag, f"old-{spec.name}", {CONTENT_HASH_LABEL: hashes[spec.name]})


def test_build_skips_images_whose_label_matches(tmp_path: Path, stub: Path) -> None:
    ops = FakeImageOps()
    _present(ops, _hashes(stub))
    results = build_images(ops, BuildOptions(cache_dir=tmp_path / "cache", stub_package=stub))
    assert [r.action for r in results] == ["cached"] * len(specs.IMAGE_SPECS)
    assert results[0].name == "base"
    assert [c for c in ops.calls if c[0] == "build"] == []


def test_build_rebuilds_a_changed_image_only(tmp_path: Path, stub: Path) -> None:
    ops = FakeImageOps()
    hashes = _hashes(stub)
    _present(ops, hashes)
    ops.images[specs.REDIS_TAG].labels[CONTENT_HASH_LABEL] = "outdated"
    results = build_images(ops, BuildOptions(cache_dir=tmp_path / "cache", stub_package=stub))
    by_name = {r.name: r.action for r in results}
    assert by_name["redis"] == "built"
    assert [n for n, a in by_name.items() if a == "built"] == ["redis"]
    build_calls = [c for c in ops.calls if c[0] == "build"]
    assert build_calls == [("build", specs.REDIS_TAG, ["Dockerfile", "redis-entrypoint.sh"])]
    assert ops.images[specs.REDIS_TAG].labels[CONTENT_HASH_LABEL] == hashes["redis"]
    assert ops.calls[-1] == ("prune_dangling", specs.IMAGE_NAME_LABEL)  # the replaced image


def test_status_reports_stale_and_missing(tmp_path: Path, stub: Path) -> None:
    ops = FakeImageOps()
    _present(ops, _hashes(stub))
    ops.images[specs.REDIS_TAG].labels[CONTENT_HASH_LABEL] = "outdated"
    del ops.images[specs.LITELLM_TAG]
    states = {s.name: s.status for s in image_status(ops, BuildOptions(stub_package=stub))}
    assert states["redis"] == "stale"
    assert states["litellm"] == "missing"
    assert states["base"] == "up to date"


# --- CLI edge ------------------------------------------------------------------------------


def test_cli_unknown_image_is_a_clean_error_before_docker() -> None:
    from click.testing import CliRunner

    from stackctl.cli.images import images

    r = CliRunner().invoke(images, ["build", "--only", "litelm"], catch_exceptions=False)
    assert r.exit_code == 2, r.output  # a usage error
    assert "unknown image 'litelm'. Did you mean 'litellm'?" in r.output
    assert "Traceback" not in r.output


def test_force_with_only_rebuilds_just_the_named_image(tmp_path: Path, stub: Path) -> None:
    ops = FakeImageOps()
    _present(ops, _hashes(stub))
    opts = BuildOptions(only=("redis",), force=True, cache_dir=tmp_path / "c", stub_package=stub)
    results = build_images(ops, opts)
    assert [(r.name, r.action) for r in results] == [("base", "cached"), ("redis", "built")]


@pytest.fixture()
def cli_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeImageOps:
    """`stackctl images build` on a fake engine where only redis is out of date."""
    from stackctl.cli import images as cli_images
    from stackctl.images.build import find_stub_package

    ops = FakeImageOps()
    _present(ops, _hashes(find_stub_package()))
    ops.images[specs.REDIS_TAG].labels[CONTENT_HASH_LABEL] = "outdated"
    monkeypatch.setattr(cli_images, "_docker_ops", lambda: ops)
    monkeypatch.setenv("STACKCTL_CACHE_DIR", str(tmp_path / "cache"))
    return ops


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["up to date"] + ["built"] + ["up to date"] * (len(specs.IMAGE_SPECS) - 2)),
        (("-q",), []),
        (("-v",), None),
    ],
    ids=["default", "quiet", "verbose"],
)
def test_cli_build_prints_one_line_per_image(cli_ops: FakeImageOps, args, expected) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from stackctl.cli.images import images

    r = CliRunner().invoke(images, ["build", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[-1].startswith(f"{len(specs.IMAGE_SPECS)} image(s): 1 built, ")
    step_line = f"  redis: docker build -t {specs.REDIS_TAG}"
    if expected is None:  # verbose: the step messages too
        assert step_line in lines
        return
    assert [line.split("  ")[0] for line in lines[:-1]] == expected
    assert step_line not in lines


def test_cli_build_on_a_terminal_shows_the_running_step(cli_ops: FakeImageOps) -> None:
    from click.testing import CliRunner

    from stackctl.cli.images import images

    r = CliRunner(env={"FORCE_COLOR": "1", "TERM": "xterm"}).invoke(images, ["build"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "1 built" in r.output


def test_progress_line_names_the_step_and_its_elapsed_time() -> None:
    import io

    from rich.console import Console

    from stackctl.cli.images import _Progress

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    progress = _Progress(console, quiet=False, verbose=False)
    assert progress.live
    progress.on_step("llama-server", "compiling llama-server")
    progress.since -= 192
    assert progress.__rich__().plain == "llama-server: compiling llama-server … 3m12s"
    assert not _Progress(console, quiet=True, verbose=False).live


def test_cli_without_a_docker_engine_exits_4(monkeypatch: pytest.MonkeyPatch) -> None:
    import python_on_whales
    from click.testing import CliRunner
    from python_on_whales.exceptions import DockerException

    from stackctl.cli.images import images

    class NoEngine:
        class system:  # noqa: N801 - mimics DockerClient().system
            @staticmethod
            def info() -> None:
                raise DockerException(["docker", "info"], 1, stderr=b"Cannot connect to the Docker daemon")

    monkeypatch.setattr(python_on_whales, "DockerClient", NoEngine)
    for args in (["build"], ["list"]):
        r = CliRunner().invoke(images, args, catch_exceptions=False)
        assert r.exit_code == 4, r.output
        assert "no Docker engine answers" in r.output
        assert "Cannot connect to the Docker daemon" in r.output


def test_cli_quiet_and_verbose_exclude_each_other() -> None:
    from click.testing import CliRunner

    from stackctl.cli.images import images

    r = CliRunner().invoke(images, ["build", "-q", "-v"])
    assert r.exit_code == 2
    assert "exclude each other" in r.output


def test_cache_dir_follows_xdg_unless_stackctl_cache_dir_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stackctl.images.build import default_cache_dir

    monkeypatch.delenv("STACKCTL_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "stackctl"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == Path.home() / ".cache" / "stackctl"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "stackctl"
    monkeypatch.setenv("STACKCTL_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_list_json_without_a_docker_engine_prints_the_error_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import python_on_whales
    from click.testing import CliRunner
    from python_on_whales.exceptions import DockerException

    from stackctl.cli import cli

    class NoEngine:
        class system:  # noqa: N801 - mimics DockerClient().system
            @staticmethod
            def info() -> None:
                raise DockerException(["docker", "info"], 1, stderr=b"Cannot connect to the Docker daemon")

    monkeypatch.setattr(python_on_whales, "DockerClient", NoEngine)
    r = CliRunner().invoke(cli, ["images", "list", "--json"], catch_exceptions=False)
    assert r.exit_code == 4, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 4
    assert "no Docker engine answers" in doc["error"]


def test_images_takes_c_like_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from stackctl.cli import cli
    from stackctl.cli import images as images_cli

    monkeypatch.setattr(images_cli, "image_status", lambda ops: [])
    monkeypatch.setattr(images_cli, "_docker_ops", lambda: None)
    offline = str(REPO / "examples/offline/config")
    for args in (["images", "-C", offline, "list"], ["images", "list", "-C", offline],
                 ["-C", offline, "images", "list"]):
        r = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
        assert r.exit_code == 0, (args, r.output)
        assert json.loads(r.stdout) == []
    r = CliRunner().invoke(cli, ["images", "list", "-C", "nowhere"], catch_exceptions=False)
    assert r.exit_code == 1 and "nowhere: no such folder" in r.output


def test_every_litellm_pin_is_the_version_the_callbacks_are_tested_with() -> None:
    # the callbacks (stackctl/incontainer) are tested against specs.LITELLM_VERSION (the
    # local image and the dev install); a shipped gateway on another LiteLLM runs untested
    import re

    from stackctl.registry.load import load_registry
    from stackctl.registry.models import Gateway

    version = specs.LITELLM_VERSION
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"litellm[proxy]=={version}"' in pyproject
    images = {"default": Gateway().image,
              **{cfg: load_registry(REPO / cfg).stack.gateway.image
                 for cfg in ("config", "examples/offline/config")}}
    tags = {where: re.sub(r"^v", "", image.rsplit(":", 1)[1]) for where, image in images.items()}
    assert tags == dict.fromkeys(images, version), images
