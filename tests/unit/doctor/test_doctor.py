"""`doctor`: each check judged as data (pure), then all of them together on the fake Docker
adapter with injected disk, CDI folders and port checker; then the command."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from stackctl.cli import cli
from stackctl.docker.adapter import DockerError, EngineUnreachable
from stackctl.doctor import checks as d
from stackctl.doctor import facts as f
from stackctl.doctor import judge as j
from stackctl.registry.problems import Problem
from tests.fakes.docker import FakeDocker

GiB = j.GiB
LOCAL = {"litellm": "stackctl-local/litellm:1.106.2", "redis": "stackctl-local/redis:7",
         "llama_cpp": "stackctl-local/llama-server:0.3.36",
         "ollama": "stackctl-local/inference-stub:1", "vllm-qwen": "stackctl-local/inference-stub:1"}
SECRETS = "LITELLM_MASTER_KEY=sk-master-secret-value\nREDIS_PASSWORD=sk-redis-secret-value\n"
NAMES = ["engine", "compose", "nvidia", "disk", "registry", "ports", "images", "models", "env"]


def port(state: str, n: int = 4000, service: str = "litellm", pid=None, process=None):
    return SimpleNamespace(port=n, address="127.0.0.1", service=service, state=state, pid=pid,
                           process=process)


# -- judging, as data ---------------------------------------------------------------------------

@pytest.mark.parametrize("free,status", [(1 * GiB, "fail"), (2 * GiB - 1, "fail"),
                                         (2 * GiB, "warn"), (19 * GiB, "warn"),
                                         (20 * GiB, "ok"), (500 * GiB, "ok")])
def test_disk_warns_under_20_gib_and_fails_under_2(free, status):
    c = j.judge_disk("/var/lib/docker", free)
    assert c.status == status, c
    assert "/var/lib/docker" in c.detail and f"{free / GiB:.1f} GiB free" in c.detail
    assert (c.fix is None) == (status == "ok")
    if status != "ok":
        assert "docker image prune" in c.fix and "not `docker system prune`" in c.fix


def test_disk_not_checked_without_engine_or_on_a_remote_one():
    assert j.judge_disk(None, None).status == "warn"
    remote = j.judge_disk("/var/lib/docker", None)
    assert remote.status == "warn" and "not on this machine" in remote.detail


@pytest.mark.parametrize("runtimes,cdi,hook,users,status,words", [
    (["runc", "nvidia"], [], None, ["vllm"], "ok", "nvidia runtime registered"),
    (["runc"], ["/etc/cdi/nvidia.yaml"], None, ["vllm"], "ok", "CDI spec /etc/cdi/nvidia.yaml"),
    (["runc"], [], "/usr/bin/nvidia-container-runtime-hook", ["vllm"], "ok", "Toolkit hook"),
    (["runc"], [], None, ["vllm", "ollama"], "warn", "vllm, ollama reserve a GPU"),
    (None, [], None, ["vllm"], "warn", "could not be asked"),
    (["runc"], [], None, [], "ok", "not needed"),
    (["runc"], [], None, None, "ok", "does not load"),
])
def test_nvidia_warns_only_when_a_gpu_provider_needs_it(runtimes, cdi, hook, users, status,
                                                        words):
    c = j.judge_nvidia(runtimes, cdi, hook, users)
    assert c.status == status and words in c.detail, c
    if status == "warn":
        assert "nvidia-ctk runtime configure" in c.fix and "nvidia-ctk cdi generate" in c.fix


def test_cdi_specs_listing_nvidia_gpus_are_found(tmp_path):
    etc, run = tmp_path / "etc-cdi", tmp_path / "run-cdi"
    etc.mkdir()
    run.mkdir()
    (etc / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n")
    (etc / "other.yaml").write_text("kind: vendor.com/fpga\n")
    (run / "nvidia.json").write_text('{"kind": "nvidia.com/gpu"}')
    (run / "notes.txt").write_text("nvidia.com/gpu")
    found = f.cdi_gpu_specs((etc, run, tmp_path / "absent"))
    assert found == [str(etc / "nvidia.yaml"), str(run / "nvidia.json")]


@pytest.mark.parametrize("text,status", [("Docker Compose version v2.40.3", "ok"),
                                         ("2.29.7", "ok"),
                                         ("docker-compose version 1.29.2, build 5becea4c", "fail"),
                                         ("something else", "warn")])
def test_compose_needs_v2(text, status):
    c = j.judge_compose(text, None)
    assert c.status == status, c
    if status == "fail":
        assert "v1" in c.detail and "ensure-docker.sh" in c.fix


def test_compose_plugin_missing_is_a_failure_with_the_fix():
    c = j.judge_compose(None, DockerError("docker compose version: 'compose' is not a docker "
                                          "command."))
    assert c.status == "fail" and "is not a docker command" in c.detail
    assert "cli-plugins/docker-compose" in c.fix


def test_engine_ok_shows_its_version():
    c = j.judge_engine({"version": "20.10.24", "runtimes": [], "root_dir": "/x"}, None, None)
    assert (c.status, c.detail) == ("ok", "Docker Engine 20.10.24")


def test_no_engine_fails_naming_the_fix_and_docker_host():
    err = EngineUnreachable("no Docker engine answers (Cannot connect to the Docker daemon at "
                            "unix:///tmp/x.sock. Is the docker daemon running?); "
                            "scripts/ensure-docker.sh starts one")
    c = j.judge_engine(None, err, "unix:///tmp/x.sock")
    assert c.status == "fail"
    assert c.detail.startswith("no Docker engine answers (Cannot connect")
    assert "ensure-docker" not in c.detail  # the fix is on its own line
    assert "scripts/ensure-docker.sh" in c.fix and "DOCKER_HOST (now unix:///tmp/x.sock)" in c.fix
    assert "DOCKER_HOST" not in j.judge_engine(None, err, None).fix


def test_engine_permission_denied_says_how_to_get_access():
    err = DockerError("docker info: permission denied while trying to connect to the Docker "
                      "daemon socket at unix:///var/run/docker.sock")
    c = j.judge_engine(None, err, None)
    assert c.status == "fail" and "usermod -aG docker" in c.fix


def test_registry_errors_fail_and_warnings_warn(registry_dir):
    from stackctl.registry.load import load_registry

    reg = load_registry(registry_dir("offline"))
    error = Problem(severity="error", file="config/providers.yaml", line=3, message="bad")
    warning = Problem(severity="warning", file="config/stack.yaml", line=7, message="odd")
    failed = j.judge_registry("config", reg, [error, warning])
    assert failed.status == "fail" and "config/providers.yaml:3: error: bad" in failed.detail
    assert "(and 1 more)" in failed.detail and "stackctl validate -C config" in failed.fix
    warned = j.judge_registry("config", reg, [warning])
    assert warned.status == "warn" and "config/stack.yaml:7" in warned.detail
    fine = j.judge_registry("config", reg, [])
    assert fine.status == "ok" and "'stackctl-offline'" in fine.detail
    broken = j.judge_registry("config", None, [error])
    assert broken.status == "fail" and "does not load" in broken.detail


def test_ports_fail_on_a_foreign_holder_naming_it():
    c = j.judge_ports([port("foreign", 4000, "litellm", 4321, "nginx"),
                       port("ours", 6379, "redis"), port("free", 8080, "llama_cpp")])
    assert c.status == "fail"
    assert c.detail == "port 4000 on 127.0.0.1 (litellm) is held by nginx (pid 4321)"
    assert "another host port" in c.fix
    fine = j.judge_ports([port("ours", 6379, "redis"), port("free", 8080, "llama_cpp")])
    assert (fine.status, fine.fix) == ("ok", None)
    assert "2 port(s)" in fine.detail and "1 free, 1 used by this stack" in fine.detail


def test_missing_images_fail_with_how_to_get_each():
    missing = {"stackctl-local/redis:7": "redis", "vllm/vllm-openai:v0.11.0": "vllm-qwen"}
    c = j.judge_images(["vllm-qwen"], {"redis": "stackctl-local/redis:7",
                                       "vllm-qwen": "vllm/vllm-openai:v0.11.0"}, missing)
    assert c.status == "fail" and "2 of 2 image(s)" in c.detail and "(vllm-qwen)" in c.detail
    lines = c.fix.splitlines()
    assert "stackctl images build" in lines[0] and "docker pull vllm/vllm-openai" in lines[1]
    assert j.judge_images([], {"redis": "stackctl-local/redis:7"}, {}).status == "ok"


@pytest.mark.parametrize("mode,defined,status,words", [
    (0o600, {"K": "file", "R": "environment"}, "ok", "R from the environment"),
    (0o400, {"K": "file"}, "ok", "mode 0400"),
    (0o644, {"K": "file"}, "fail", "other users can read"),
    (0o640, {"K": "file"}, "fail", "mode 0640"),
    (0o600, {"K": "file", "R": None}, "warn", "does not set R"),
    (None, {"K": None}, "warn", "does not exist"),
])
def test_env_mode_and_secret_names(mode, defined, status, words):
    c = j.judge_env(".env", mode, defined)
    assert c.status == status and words in c.detail, c
    if status == "fail":
        assert c.fix == "chmod 600 .env"


# -- every check together, on the fake adapter --------------------------------------------------

@pytest.fixture
def offline(registry_dir) -> Path:
    config = registry_dir("offline")
    env = config.parent / ".env"
    env.write_text(SECRETS)
    env.chmod(0o600)
    return config


def machine(docker: FakeDocker | None = None, free: int = 100 * GiB, ports=None, **kw):
    docker = docker or FakeDocker(project="stackctl-offline", images=LOCAL)
    kw.setdefault("cdi_dirs", ())
    kw.setdefault("which", lambda name: None)
    kw.setdefault("environ", {})
    return f.Machine(docker_for=lambda reg: docker, disk_free=lambda path: free,
                     check_ports=lambda reg, dk: ports or [port("free")], **kw)


def by_name(report: j.Report) -> dict[str, j.Check]:
    assert [c.name for c in report.checks] == NAMES
    return {c.name: c for c in report.checks}


def test_healthy_machine_every_check_ok(offline):
    report = d.diagnose(offline, machine())
    checks = by_name(report)
    assert {n: c.status for n, c in checks.items()} == dict.fromkeys(NAMES, "ok")
    assert report.exit_code == 0
    assert "LITELLM_MASTER_KEY, REDIS_PASSWORD set" in checks["env"].detail
    assert "secret-value" not in report.model_dump_json()  # names, never values


def test_engine_stopped_fails_and_the_other_checks_still_run(offline):
    docker = FakeDocker(project="stackctl-offline", images=LOCAL)
    docker.engine = None
    report = d.diagnose(offline, machine(docker))
    checks = by_name(report)
    assert report.exit_code == 1
    assert checks["engine"].status == "fail" and "ensure-docker.sh" in checks["engine"].fix
    assert checks["compose"].status == "ok"  # needs no engine
    assert checks["registry"].status == "ok" and checks["env"].status == "ok"
    for name in ("disk", "images"):
        assert checks[name].status == "warn" and "not checked" in checks[name].detail
    assert checks["nvidia"].status == "ok"  # the offline registry reserves no GPU


def test_a_check_that_raises_is_a_fail_line_naming_it_and_the_others_run(offline):
    def broken(facts, m):
        raise RuntimeError("boom")

    checks = dict(d.CHECKS)
    checks["images"] = broken
    report = d.diagnose(offline, machine(), checks=list(checks.items()))
    got = by_name(report)
    assert got["images"].status == "fail"
    assert got["images"].detail == "the check could not run: RuntimeError: boom"
    assert "bug in stackctl doctor" in got["images"].fix
    assert all(c.status == "ok" for n, c in got.items() if n != "images")


def test_docker_refusing_in_a_check_is_its_fail_line(offline):
    docker = FakeDocker(project="stackctl-offline", images=LOCAL)

    def refuses(image):
        raise DockerError("docker image inspect: permission denied")

    docker.image_exists = refuses
    got = by_name(d.diagnose(offline, machine(docker)))
    assert got["images"].status == "fail" and "permission denied" in got["images"].detail


def test_ports_through_the_port_checker_name_the_holder_and_the_key(offline, monkeypatch):
    """The real stackctl.ports.check, its host observation replaced: a foreign listener on the
    gateway's port is a failure naming the process and the registry key to change."""
    from stackctl.ports import check as ports

    monkeypatch.setattr(ports, "host_listeners",
                        lambda needs: [ports.Listener("127.0.0.1", 4000, 4321, "nginx")])
    m = machine()
    m.check_ports = None
    got = by_name(d.diagnose(offline, m))
    assert got["ports"].status == "fail", got["ports"]
    assert "port 4000 on 127.0.0.1 (litellm) is held by nginx pid 4321" in got["ports"].detail
    assert "gateway.host_port in stack.yaml" in got["ports"].fix


def test_missing_local_image_fails_with_the_build_command(offline):
    docker = FakeDocker(project="stackctl-offline", images=LOCAL,
                        present=set(LOCAL.values()) - {"stackctl-local/redis:7"})
    got = by_name(d.diagnose(offline, machine(docker)))
    assert got["images"].status == "fail" and "stackctl-local/redis:7 (redis)" in got["images"].detail
    assert "stackctl images build" in got["images"].fix


def test_needed_images_are_the_default_profiles_services(offline):
    from stackctl.registry.load import load_registry

    profiles, images = f.needed_images(load_registry(offline))
    assert profiles == ["llamacpp", "ollama", "vllm-qwen"]
    assert images == LOCAL  # not vllm-dolphin: its profile is not a default one


def test_env_readable_by_others_fails_with_chmod(offline):
    env = offline.parent / ".env"
    env.chmod(0o644)
    got = by_name(d.diagnose(offline, machine()))
    assert got["env"].status == "fail" and "mode 0644" in got["env"].detail
    assert got["env"].fix == "chmod 600 examples/offline/.env"  # relative to the cwd


def test_env_missing_secret_warns_and_one_from_the_environment_counts(offline):
    (offline.parent / ".env").write_text("LITELLM_MASTER_KEY=sk-x\n")
    assert by_name(d.diagnose(offline, machine()))["env"].status == "warn"
    got = by_name(d.diagnose(offline, machine(environ={"REDIS_PASSWORD": "sk-y"})))
    assert got["env"].status == "ok" and "REDIS_PASSWORD from the environment" in got["env"].detail


def test_env_compose_would_refuse_fails_naming_the_line(offline):
    (offline.parent / ".env").write_text("LITELLM_MASTER_KEY='unterminated\n")
    got = by_name(d.diagnose(offline, machine()))
    assert got["env"].status == "fail" and ".env:1" in got["env"].detail


def test_broken_registry_fails_and_the_machine_is_still_checked(offline):
    (offline / "providers.yaml").write_text("providers: [\n")
    got = by_name(d.diagnose(offline, machine()))
    assert got["registry"].status == "fail" and "does not load" in got["registry"].detail
    assert got["engine"].status == "ok" and got["compose"].status == "ok"
    assert got["disk"].status == "ok"
    for name in ("ports", "images", "env"):
        assert got[name].status == "warn" and "registry does not load" in got[name].detail


def test_gpu_provider_without_nvidia_warns_with_the_shipped_registry(registry_dir):
    config = registry_dir("shipped")
    got = by_name(d.diagnose(config, machine()))
    assert got["nvidia"].status == "warn" and "reserve a GPU" in got["nvidia"].detail
    cdi = by_name(d.diagnose(config, machine(cdi_dirs=(config,), which=lambda n: None)))
    assert cdi["nvidia"].status == "warn"  # config/ holds no CDI spec


# -- the command --------------------------------------------------------------------------------

@pytest.fixture
def cli_fake(monkeypatch, tmp_path):
    docker = FakeDocker(project="stackctl-offline", images=LOCAL)
    docker.engine = {"version": "27.3.1", "runtimes": ["runc"], "root_dir": str(tmp_path)}
    monkeypatch.setattr("stackctl.docker.adapter.Docker", lambda *a, **k: docker)
    monkeypatch.setattr("stackctl.ports.check.check_ports", lambda reg, dk: [port("free")])
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return docker


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_text_one_line_per_check_and_exit_0(offline, cli_fake):
    r = invoke("doctor", "-C", str(offline))
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    checks = [line for line in lines if not line.startswith(" ")][:-1]
    assert [line.split(" ", 2)[1].rstrip(":") for line in checks] == NAMES
    assert all(line[0] in "✓!" for line in checks)  # disk: the real free space of tmp
    assert lines[0] == "✓ engine: Docker Engine 27.3.1"
    assert lines[-1].startswith("doctor: ") and "0 failed" in lines[-1]
    assert "secret-value" not in r.output


def test_cli_failure_prints_the_fix_indented_and_exits_1(offline, cli_fake):
    cli_fake.engine = None
    r = invoke("doctor", "-C", str(offline))
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("✗ engine: no Docker engine answers")
    assert lines[1].startswith("    fix: start one: scripts/ensure-docker.sh")
    assert "Traceback" not in r.output


def test_cli_json_is_the_checks(offline, cli_fake):
    (offline.parent / ".env").chmod(0o644)
    r = invoke("doctor", "-C", str(offline), "--json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    assert doc["ok"] is False
    assert [c["name"] for c in doc["checks"]] == NAMES
    env = next(c for c in doc["checks"] if c["name"] == "env")
    assert env["status"] == "fail" and env["fix"].startswith("chmod 600 ")
    assert set(env) == {"name", "status", "detail", "fix"}


def test_cli_no_such_config_folder_is_a_failed_check_not_a_traceback(tmp_path, cli_fake):
    r = invoke("doctor", "-C", str(tmp_path / "nowhere"), "--json")
    assert r.exit_code == 1, r.output
    checks = {c["name"]: c for c in json.loads(r.output)["checks"]}
    assert checks["registry"]["status"] == "fail" and "no such folder" in checks["registry"]["detail"]
    assert checks["engine"]["status"] == "ok"


def test_cli_help_lists_its_exit_codes():
    r = invoke("doctor", "--help")
    assert r.exit_code == 0, r.output
    assert "Exit codes:" in r.output and "a check failed" in r.output
    assert "  0    no check failed (warnings allowed)" in r.output


# -- model files in volumes ---------------------------------------------------------------------

def test_models_judged_as_data():
    assert j.judge_models([]).status == "ok"
    there = ("phi", "/models/phi.gguf", "phi-models", True)
    assert j.judge_models([there]).detail == "model files present: phi (/models/phi.gguf)"
    c = j.judge_models([there, ("q", "/models/q.gguf", "q-models", False),
                        ("r", "/models/r.gguf", "r-models", None)])
    assert c.status == "fail"
    assert c.detail == ("q loads /models/q.gguf, not in volume q-models; r loads "
                        "/models/r.gguf, but volume r-models does not exist yet: it would "
                        "exit after its start period")
    assert c.fix == ("stackctl models import FILE.gguf --provider q\n"
                     "stackctl models import FILE.gguf --provider r")
    assert j.judge_models([("p", "/m", "v", "its image i:1 is not here")]).status == "warn"


def test_models_looks_in_the_volume_with_the_providers_image(registry_dir):
    cfg = registry_dir("shipped")
    image = "ghcr.io/ggml-org/llama.cpp:server-cuda-b6990"
    docker = FakeDocker(project="stackctl", present={image})
    got = by_name(d.diagnose(cfg, machine(docker)))["models"]
    assert got.status == "fail" and "does not exist yet" in got.detail
    assert ("volume_file", "llamacpp-models", "model.gguf", image) in docker.calls
    docker.volume_files = {"llamacpp-models": {"model.gguf"}}
    assert by_name(d.diagnose(cfg, machine(docker)))["models"].status == "ok"
    docker.volume_files = {"llamacpp-models": set()}
    got = by_name(d.diagnose(cfg, machine(docker)))["models"]
    assert got.status == "fail" and "not in volume llamacpp-models" in got.detail
    docker.present = set()
    assert by_name(d.diagnose(cfg, machine(docker)))["models"].status == "warn"


def test_models_not_looked_for_beyond_one_engine(registry_dir, yaml_edit):
    cfg = registry_dir("shipped")
    yaml_edit(cfg / "stack.yaml", lambda d: d.update(deploy={"target": "swarm"}))
    docker = FakeDocker(project="stackctl")
    got = by_name(d.diagnose(cfg, machine(docker)))["models"]
    assert got.status == "ok" and "on swarm the volumes live on its nodes" in got.detail
    assert not [c for c in docker.calls if c[0] == "volume_file"]
