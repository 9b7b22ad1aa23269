"""Kubernetes manifests (render/kubernetes.py): a kustomize folder from the same registry.

No cluster runs here. The manifests are checked offline: against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict: an unknown field fails), built with `kubectl kustomize`
(needs kubectl: Debian's `kubernetes-client`; skipped without it unless
STACKCTL_REQUIRE_TOOLS=1), and read back as data for what the issue asks of them.

Golden files: tests/golden/<registry>/kubernetes/<file>. After an intended change:

    UPDATE_GOLDEN=1 python -m pytest tests/unit/render/test_kubernetes.py -q
    git diff tests/golden
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # a dev dependency: missing, this module fails (never skips)
import pytest

from stackctl.registry.catalog import exclusive_groups
from stackctl.registry.load import load_registry
from stackctl.registry.vocabulary import k8s_name
from stackctl.render.compose import render_compose
from stackctl.render.kubernetes import (
    KUSTOMIZATION,
    SECRET,
    env_list,
    kubernetes_texts,
    load_documents,
    render_kubernetes,
)
from tests.fake_secrets import SECRETS
from tests.paths import CONFIGS, GOLDEN, REPO
from tests.tools import require_tool

K8S_VERSION = "1.30"  # the schemas the manifests must satisfy
NAME, PART_OF, ROLE = "app.kubernetes.io/name", "app.kubernetes.io/part-of", "stackctl.io/role"


def _render(cfg: Path) -> dict[str, Any]:
    reg = load_registry(cfg)
    rendered = render_kubernetes(reg)
    texts = kubernetes_texts(reg, rendered)
    return {"reg": reg, "rendered": rendered, "texts": texts,
            "docs": {n: load_documents(t) for n, t in texts.items() if n.endswith(".yaml")
                     and "/" not in n}}


@pytest.fixture(scope="module", params=["shipped", "offline"])
def k8s(request) -> dict[str, Any]:
    mp = pytest.MonkeyPatch()
    for k, v in SECRETS.items():  # set while rendering: none may reach a manifest
        mp.setenv(k, v)
    try:
        out = _render(CONFIGS[request.param])
    finally:
        mp.undo()
    out["name"] = request.param
    return out


def objects(k8s: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for n, docs in k8s["docs"].items() if n != KUSTOMIZATION for d in docs]


def find(k8s: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in objects(k8s) if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


# -- golden files ---------------------------------------------------------------------------

def test_renderer_matches_golden(k8s):
    """Every YAML file; the callback modules are their sources with a header (checked here
    as such, like test_generate.py does), so no golden copy of them."""
    from stackctl.render.callbacks import module_text

    folder = GOLDEN / k8s["name"] / "kubernetes"
    texts = {n: t for n, t in k8s["texts"].items() if not n.endswith(".py")}
    for name, text in k8s["texts"].items():
        if name.endswith(".py"):
            source = {"stackctl_trace.py": "trace_callback.py",
                      "stackctl_routing.py": "routing_callback.py"}[name.rsplit("/", 1)[1]]
            assert text == module_text(source), name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        shutil.rmtree(folder, ignore_errors=True)
        for name, text in texts.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
        return
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert on_disk == set(texts), f"{folder} differs in its files: run with UPDATE_GOLDEN=1"
    for name, text in texts.items():
        expected = (folder / name).read_text(encoding="utf-8")
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), text.splitlines(keepends=True),
            str((folder / name).relative_to(REPO)), "renderer output"))
        assert text == expected, f"differs from the golden file (UPDATE_GOLDEN=1):\n{diff}"


def test_rendering_is_byte_stable(k8s):
    again = _render(CONFIGS[k8s["name"]])["texts"]
    assert again == k8s["texts"]
    assert list(again) == list(k8s["texts"])


def test_folder_layout(k8s):
    reg = k8s["reg"]
    texts = k8s["texts"]
    kust = k8s["rendered"][KUSTOMIZATION]
    manifests = sorted(n for n in texts if n.endswith(".yaml") and "/" not in n and
                       n != KUSTOMIZATION)
    assert kust["resources"] == manifests  # sorted, and every manifest file listed
    assert kust["namespace"] == reg.stack.deploy.namespace
    (gen,) = kust["configMapGenerator"]
    sources = ["litellm/config.yaml", "litellm/stackctl_trace.py"]
    if exclusive_groups(reg):
        sources.append("litellm/stackctl_routing.py")
    assert sorted(f.split("=")[1] for f in gen["files"]) == sorted(sources)
    assert all(isinstance(texts[s], str) and s in texts for s in sources)
    assert texts["litellm/stackctl_trace.py"].startswith("# GENERATED by stackctl")
    for name in manifests + [KUSTOMIZATION]:
        assert texts[name].startswith("# GENERATED by stackctl from ")
        assert "&id" not in texts[name] and "*id" not in texts[name]  # no YAML aliases


# -- schemas --------------------------------------------------------------------------------

def _validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_document_passes_the_kubernetes_schemas(k8s):
    kinds = []
    for obj in objects(k8s):
        try:
            _validate(obj)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        kinds.append(obj["kind"])
    assert {"Namespace", "Deployment", "Service", "PodDisruptionBudget"} <= set(kinds)


def test_strict_validation_catches_a_wrong_manifest(k8s):
    """The check has teeth: an unknown field, and a wrong type, are refused."""
    dep = find(k8s, "Deployment", "litellm")
    bad = {**dep, "spec": {**dep["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)
    bad = {**dep, "spec": {**dep["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(bad)


# -- kubectl kustomize ----------------------------------------------------------------------

def test_kubectl_kustomize_builds_the_folder(k8s, tmp_path):
    kubectl = require_tool("kubectl")
    for name, text in k8s["texts"].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    r = subprocess.run([kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    built = load_documents(r.stdout)
    ns = k8s["reg"].stack.deploy.namespace
    (cm,) = [d for d in built if d["kind"] == "ConfigMap"]
    assert re.fullmatch(r"litellm-config-[a-z0-9]{10}", cm["metadata"]["name"])  # hash suffix
    assert cm["data"]["config.yaml"] == k8s["texts"]["litellm/config.yaml"]
    assert cm["metadata"]["labels"][ROLE] == "gateway"
    deployments = {d["metadata"]["name"]: d for d in built if d["kind"] == "Deployment"}
    expected = {o["metadata"]["name"] for o in objects(k8s) if o["kind"] == "Deployment"}
    assert set(deployments) == expected and {"litellm", "redis"} <= expected
    volumes = deployments["litellm"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": cm["metadata"]["name"]}} in volumes
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == ns, doc["metadata"]
        _validate(doc)  # what kubectl would apply passes the schemas too


# -- secrets --------------------------------------------------------------------------------

def test_no_secret_value_in_any_file(k8s):
    for name, text in k8s["texts"].items():
        for value in SECRETS.values():
            assert value not in text, name
        if name.endswith(".yaml"):  # every compose-style reference was turned into a ref
            assert "${" not in text, name


def test_secrets_are_references_into_one_secret(k8s):
    reg = k8s["reg"]
    refs = {}
    for obj in objects(k8s):
        if obj["kind"] != "Deployment":
            continue
        for e in container(obj).get("env", []):
            if "valueFrom" in e:
                ref = e["valueFrom"]["secretKeyRef"]
                assert ref["name"] == SECRET
                refs[(obj["metadata"]["name"], e["name"])] = ref
    gw, var = reg.stack.gateway.master_key_env, reg.stack.cache.password_env
    assert refs[("litellm", gw)] == {"name": SECRET, "key": gw}  # required
    assert refs[("litellm", var)] == {"name": SECRET, "key": var}
    assert refs[("redis", var)] == {"name": SECRET, "key": var}
    if k8s["name"] == "shipped":  # HF_TOKEN: ${HF_TOKEN:-}: an optional key
        assert refs[("vllm-qwen", "HF_TOKEN")] == {"name": SECRET, "key": "HF_TOKEN",
                                                   "optional": True}
    assert not any(o["kind"] == "Secret" for o in objects(k8s))  # never generated


@pytest.mark.parametrize("env, expected", [
    ({"A": "plain"}, [{"name": "A", "value": "plain"}]),
    ({"T": "${TOKEN}"}, [{"name": "T", "valueFrom": {"secretKeyRef": {
        "name": SECRET, "key": "TOKEN", "optional": True}}}]),
    ({"T": "${TOKEN:?set it}"}, [{"name": "T", "valueFrom": {"secretKeyRef": {
        "name": SECRET, "key": "TOKEN"}}}]),
    ({"T": "${TOKEN:-}", "U": "$USER_KEY"}, [
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "TOKEN",
                                                     "optional": True}}},
        {"name": "U", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "USER_KEY",
                                                     "optional": True}}}]),
    # text around a reference: the secret in a helper variable, expanded by the kubelet
    ({"AUTH": "Bearer ${TOKEN}"}, [
        {"name": "STACKCTL_SECRET_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": SECRET, "key": "TOKEN", "optional": True}}},
        {"name": "AUTH", "value": "Bearer $(STACKCTL_SECRET_TOKEN)"}]),
    # compose's $$ is a literal $; the kubelet's $$ and $( are escaped
    ({"P": "cost$$5", "Q": "$(not a ref)", "R": "a$$$$b"},
     [{"name": "P", "value": "cost$5"}, {"name": "Q", "value": "$$(not a ref)"},
      {"name": "R", "value": "a$$$b"}]),
    # a literal $ right before a reference
    ({"S": "$$${TOKEN:?x}"}, [
        {"name": "STACKCTL_SECRET_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": SECRET, "key": "TOKEN"}}},
        {"name": "S", "value": "$$$(STACKCTL_SECRET_TOKEN)"}]),
])
def test_env_list(env, expected):
    assert env_list(env) == expected


def test_k8s_names():
    assert k8s_name("llama_cpp") == "llama-cpp"
    assert k8s_name("vLLM-Qwen") == "vllm-qwen"
    for bad in ("_", "9lives", "x" * 64):
        with pytest.raises(ValueError):
            k8s_name(bad)


# -- labels, annotations --------------------------------------------------------------------

def test_every_object_is_labelled(k8s):
    project = k8s["reg"].stack.project
    for obj in objects(k8s):
        labels = obj["metadata"]["labels"]
        assert labels[PART_OF] == project
        if obj["kind"] == "Namespace":
            continue
        assert labels[NAME] == obj["metadata"]["name"]
        assert labels[ROLE] in ("gateway", "cache", "provider")
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["metadata"]["labels"]
            assert pod == labels
            assert obj["spec"]["selector"]["matchLabels"].items() <= pod.items()
            assert obj["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_prometheus_finds_the_gateway_and_providers_with_metrics(k8s):
    def scrape(name):
        return find(k8s, "Deployment", name)["spec"]["template"]["metadata"].get(
            "annotations", {})

    assert scrape("litellm") == {"prometheus.io/scrape": "true", "prometheus.io/port": "4000",
                                 "prometheus.io/path": "/metrics/"}
    assert scrape("vllm-qwen")["prometheus.io/port"] == "8000"
    assert scrape("vllm-qwen")["prometheus.io/path"] == "/metrics"
    assert "prometheus.io/scrape" not in scrape("ollama")  # Ollama has no /metrics
    llama = "llama-cpp-native" if k8s["name"] == "shipped" else "llama-cpp"
    assert scrape(llama)["prometheus.io/scrape"] == "true"  # started with --metrics
    assert "prometheus.io/scrape" not in scrape("redis")


# -- GPUs and groups ------------------------------------------------------------------------

def test_gpu_members_get_node_selector_and_gpu_limit(k8s):
    reg = k8s["reg"]
    label = reg.stack.deploy.gpu_node_label
    for name, prov in reg.providers.providers.items():
        c = prov.container
        if not (prov.enabled and c):
            continue
        dep = find(k8s, "Deployment", k8s_name(name))
        pod = dep["spec"]["template"]["spec"]
        gpus = c.gpu.count if c.gpu else 0
        gpu_member = gpus > 0 or bool(c.gpu and c.gpu.exclusive_group)
        assert pod.get("nodeSelector") == ({label: "true"} if gpu_member else None), name
        limits = container(dep).get("resources", {}).get("limits", {})
        assert limits.get("nvidia.com/gpu") == (gpus or None), name
        # a rolling update would start the new pod beside the one holding the GPU
        assert (dep["spec"].get("strategy") == {"type": "Recreate"}) == gpu_member, name
    if k8s["name"] == "shipped":  # real GPU members
        for name in ("ollama", "llama-cpp-native", "vllm-qwen", "vllm-dolphin"):
            dep = find(k8s, "Deployment", name)
            assert container(dep)["resources"] == {"limits": {"nvidia.com/gpu": 1}}
            assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"stackctl.gpu": "true"}
    else:  # stubs: count 0, in a group: on the GPU node, no GPU asked for
        dep = find(k8s, "Deployment", "vllm-dolphin")
        assert "resources" not in container(dep)
        assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"stackctl.gpu": "true"}
        assert "nodeSelector" not in find(k8s, "Deployment", "llama-cpp")["spec"]["template"][
            "spec"]


def test_group_members_are_scaled_one_and_zero(k8s):
    qwen, dolphin = find(k8s, "Deployment", "vllm-qwen"), find(k8s, "Deployment", "vllm-dolphin")
    assert (qwen["spec"]["replicas"], dolphin["spec"]["replicas"]) == (1, 0)
    for dep in (qwen, dolphin):
        assert dep["metadata"]["annotations"]["stackctl.io/gpu-group"] == "gpu0"
    assert find(k8s, "Deployment", "ollama")["spec"]["replicas"] == 1
    assert "stackctl.io/gpu-group" not in find(k8s, "Deployment", "ollama")["metadata"][
        "annotations"]


def test_group_default_member_without_default_profile(registry_dir, yaml_edit, secret_env):
    """No default profile names a member: the group's first member runs, the others not."""
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d.__setitem__("default_profiles", ["ollama"]))
    k8s = _render(cfg)
    assert find(k8s, "Deployment", "vllm-qwen")["spec"]["replicas"] == 1
    assert find(k8s, "Deployment", "vllm-dolphin")["spec"]["replicas"] == 0
    assert find(k8s, "Deployment", "llama-cpp")["spec"]["replicas"] == 0  # not a default
    yaml_edit(cfg / "stack.yaml",
              lambda d: d.__setitem__("default_profiles", ["vllm-dolphin", "llamacpp"]))
    k8s = _render(cfg)
    assert find(k8s, "Deployment", "vllm-qwen")["spec"]["replicas"] == 0
    assert find(k8s, "Deployment", "vllm-dolphin")["spec"]["replicas"] == 1


def test_sleep_members_keep_their_flags(secret_env):
    """The offline group switches with vLLM's sleep mode: its members start as compose's."""
    k8s = _render(CONFIGS["offline"])
    for name in ("vllm-qwen", "vllm-dolphin"):
        c = container(find(k8s, "Deployment", name))
        assert "--enable-sleep-mode" in c["args"]
        assert env_of(c)["VLLM_SERVER_DEV_MODE"] == "1"


# -- the gateway ----------------------------------------------------------------------------

def test_gateway_replicas_pdb_and_config(k8s):
    reg = k8s["reg"]
    dep = find(k8s, "Deployment", "litellm")
    assert dep["spec"]["replicas"] == reg.stack.deploy.gateway_replicas == 2
    pdb = find(k8s, "PodDisruptionBudget", "litellm")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()
    c = container(dep)
    compose = render_compose(reg)["services"]["litellm"]
    assert c["args"] == compose["command"]  # the same start as compose
    assert c["image"] == compose["image"]
    assert {"name": "config", "mountPath": "/app/litellm", "readOnly": True} in c["volumeMounts"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/liveliness", "port": 4000}
    assert find(k8s, "Service", "litellm")["spec"]["ports"][0]["port"] == 4000
    # providers are reached at their Services' names (no `_` in a DNS name)
    (config,) = load_documents(k8s["texts"]["litellm/config.yaml"])
    services = {o["metadata"]["name"]: o["spec"]["ports"][0]["port"] for o in objects(k8s)
                if o["kind"] == "Service"}
    for d in config["model_list"]:
        host, port = re.match(r"http://([^:/]+):(\d+)", d["litellm_params"]["api_base"]).groups()
        assert services[host] == int(port), d
    assert config["litellm_settings"]["cache_params"]["host"] == "redis"


def test_deploy_settings_reach_the_manifests(registry_dir, yaml_edit, secret_env):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d.__setitem__("deploy", {
        "gateway_replicas": 3, "namespace": "llm", "gpu_node_label": "gpu.example"}))
    k8s = _render(cfg)
    assert find(k8s, "Deployment", "litellm")["spec"]["replicas"] == 3
    assert k8s["rendered"][KUSTOMIZATION]["namespace"] == "llm"
    assert find(k8s, "Namespace", "llm")
    assert all(o["metadata"]["namespace"] == "llm" for o in objects(k8s)
               if o["kind"] != "Namespace")
    assert find(k8s, "Deployment", "vllm-qwen")["spec"]["template"]["spec"]["nodeSelector"] \
        == {"gpu.example": "true"}


def test_no_cache_no_redis(registry_dir, yaml_edit, secret_env):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d["cache"].__setitem__("enabled", False))
    k8s = _render(cfg)
    assert "redis.yaml" not in k8s["texts"]
    assert "REDIS_PASSWORD" not in env_of(container(find(k8s, "Deployment", "litellm")))


# -- probes mirror the compose healthchecks -------------------------------------------------

def _seconds(go: str) -> float:
    return float(go.removesuffix("s"))


def test_probes_mirror_the_compose_healthchecks(k8s):
    compose = render_compose(k8s["reg"])["services"]
    for obj in objects(k8s):
        if obj["kind"] != "Deployment":
            continue
        name = obj["metadata"]["name"]
        (svc,) = [s for n, s in compose.items() if k8s_name(n) == name]
        hc, c = svc["healthcheck"], container(obj)
        interval, retries = _seconds(hc["interval"]), hc["retries"]
        for kind in ("readinessProbe", "livenessProbe"):
            p = c[kind]
            assert (p["periodSeconds"], p["timeoutSeconds"], p["failureThreshold"]) == \
                (max(1, round(interval)), max(1, round(_seconds(hc["timeout"]))), retries)
        startup = c["startupProbe"]
        assert startup["failureThreshold"] == \
            -(-_seconds(hc["start_period"]) // startup["periodSeconds"]) + retries
        test = hc["test"]
        handler = {k: v for k, v in startup.items() if k in ("httpGet", "exec")}
        assert c["readinessProbe"].items() >= handler.items()
        if "httpGet" in handler:  # the URL compose's python/curl check asks for
            url = re.search(r"http://127\.0\.0\.1:(\d+)(/\S*?)['\"\s,)]", " ".join(test) + " ")
            port, path = int(url.group(1)), url.group(2)
            assert handler["httpGet"] == {"path": path, "port": port}, name
            assert port == c["ports"][0]["containerPort"]
        else:  # the same command (compose doubles `$` for itself)
            assert handler["exec"]["command"] == [t.replace("$$", "$") for t in test[1:]], name
