"""Registry edits as text: what `stackctl add` writes, and that every byte outside the
edit is the one that was there (comments, quoting, flow lists spread over lines)."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from stackctl.registry.additions import NewModel, add_model, add_provider
from stackctl.registry.editing import EditError, add_entry, append_item
from stackctl.registry.load import MAPPINGS, PROVIDERS, STACK, load_registry
from stackctl.registry.templates import (
    DEFAULTS,
    NewProvider,
    free_port,
    provider_entry,
    used_ports,
)
from tests.paths import CONFIGS


def inserted(old: str, new: str) -> str:
    """The lines `new` adds to `old`, asserting that `old` is `new` without them, byte for
    byte (one contiguous insertion at a line boundary)."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    added = len(b) - len(a)
    assert added > 0, "nothing inserted"
    assert b[:start] + b[start + added:] == a, "lines outside the insertion changed"
    assert "".join(b[:start] + b[start + added:]) == old  # the bytes, exactly
    return "".join(b[start:start + added])


def texts(name: str) -> dict[str, str]:
    folder = CONFIGS[name]
    return {f: (folder / f).read_bytes().decode() for f in (PROVIDERS, MAPPINGS, STACK)}


def test_entry_goes_at_the_end_of_its_mapping_indented_like_its_siblings():
    old = texts("shipped")[PROVIDERS]
    new = add_entry(old, ("providers",), "mine", {"type": "ollama", "models": [{"name": "x"}]})
    # the providers are set apart by blank lines: so is the new one
    assert inserted(old, new) == "\n  mine:\n    type: ollama\n    models:\n      - name: x\n"
    assert YAML(typ="safe").load(new)["providers"]["mine"]["models"] == [{"name": "x"}]


def test_entry_before_the_comments_and_keys_that_follow_its_block():
    old = ("# head\nexact_matches:\n  a:\n    provider: p   # why\n\n"
           "# about the chains\nfallback_chains:\n  a:\n    chain: [b]\n")
    new = add_entry(old, ("exact_matches",), "qwen3:0.6b", {"provider": "o"})
    assert inserted(old, new) == '  "qwen3:0.6b":\n    provider: o\n'
    assert new.index('"qwen3:0.6b"') < new.index("# about the chains")


def test_entry_creates_missing_sections_and_files():
    assert add_entry("", ("exact_matches",), "m", {"provider": "p"}) == \
        "exact_matches:\n  m:\n    provider: p\n"
    old = "# only a comment\nfallback_chains: {}"  # no newline at the end either
    assert add_entry(old, ("exact_matches",), "m", {"provider": "p"}) == \
        old + "\nexact_matches:\n  m:\n    provider: p\n"
    old = "exact_matches:   # none yet\npatterns: []\n"
    assert inserted(old, add_entry(old, ("exact_matches",), "m", {"provider": "p"})) == \
        "  m:\n    provider: p\n"


def test_entry_refused_where_a_splice_cannot_keep_the_layout():
    with pytest.raises(EditError, match="already exists"):
        add_entry("exact_matches:\n  m: {provider: p}\n", ("exact_matches",), "m", {})
    with pytest.raises(EditError, match="on one line"):
        add_entry("exact_matches: {a: {provider: p}}\n", ("exact_matches",), "m", {})
    with pytest.raises(EditError, match="cannot take"):
        add_entry("load_balancing: {}\n", ("load_balancing",), "m", {})


def test_list_item_in_the_list_style_of_its_file():
    old = texts("shipped")[PROVIDERS]
    new = append_item(old, ("providers", "ollama", "models"), {"name": "qwen3:0.6b"})
    assert inserted(old, new) == "      - name: qwen3:0.6b\n"
    # the new item follows the last one's own keys (size, quantization…), not inside them
    assert YAML(typ="safe").load(new)["providers"]["ollama"]["models"][-1] == \
        {"name": "qwen3:0.6b"}
    offset0 = "p:\n  models:\n  - a\n  - b\n  other: 1\n"
    assert append_item(offset0, ("p", "models"), "c") == \
        "p:\n  models:\n  - a\n  - b\n  - c\n  other: 1\n"
    with pytest.raises(EditError, match="block list"):
        append_item("p:\n  models: [a, b]\n", ("p", "models"), "c")


def test_crlf_lines_outside_the_edit_are_kept():
    old = "exact_matches:\r\n  a:\r\n    provider: p\r\n"
    new = add_entry(old, ("exact_matches",), "b", {"provider": "p"})
    assert new.startswith(old)


def reg_of(name: str):
    return load_registry(CONFIGS[name])


def test_add_provider_per_type_validates_and_routes_its_models():
    reg = reg_of("shipped")
    cases = [
        NewProvider(type="ollama", name="ollama2", models=["qwen3:0.6b"], gpus=0),
        NewProvider(type="llama_cpp", name="phi", models=["phi-4"],
                    model_file="phi-4-Q4_K_M.gguf"),
        NewProvider(type="vllm", name="vllm-qwen3", models=["qwen3-8b"],
                    hf_model="Qwen/Qwen3-8B-AWQ", group="gpu0"),
        NewProvider(type="openai_compatible", name="groq", models=["llama-3.3-70b"],
                    base_url="https://api.groq.com/openai/v1", api_key_env="GROQ_API_KEY"),
    ]
    for spec in cases:
        before = texts("shipped")
        after = add_provider(before, reg, spec)
        inserted(before[PROVIDERS], after[PROVIDERS])
        routed = YAML(typ="safe").load(inserted(before[MAPPINGS], after[MAPPINGS]))
        assert routed == {spec.models[0]: {"provider": spec.name}}


def test_provider_defaults_follow_the_shipped_registry():
    used = used_ports(reg_of("shipped"))
    assert {4000, 6379, 11434, 8080, 8001, 8002, 9090, 3000} <= used
    llama = provider_entry(NewProvider(type="llama_cpp", name="phi", models=["phi-4"]), used)
    c = llama["container"]
    assert llama["base_url"] == "http://127.0.0.1:8081"  # 8080 is taken
    assert c["command"][:4] == ["--model", "/models/phi-4.gguf", "--alias", "phi-4"]
    assert "--metrics" in c["command"] and c["volumes"] == {"phi-models": "/models"}
    assert c["image"] == "ghcr.io/ggml-org/llama.cpp:server-cuda-b6990"
    cpu = provider_entry(NewProvider(type="llama_cpp", name="x", gpus=0), used)["container"]
    assert cpu["image"] == "ghcr.io/ggml-org/llama.cpp:server-b6990" and "gpu" not in cpu
    vllm = provider_entry(NewProvider(type="vllm", name="v", models=["m"], hf_model="o/m"),
                          used)["container"]
    assert vllm["command"][:4] == ["--model", "o/m", "--served-model-name", "m"]
    assert vllm["health"] == {"start_period": 300}
    with pytest.raises(ValueError, match="--hf-model"):
        provider_entry(NewProvider(type="vllm", name="v", models=["m"]), used)
    with pytest.raises(ValueError, match="--base-url"):
        provider_entry(NewProvider(type="openai_compatible", name="c"), used)
    assert free_port(8080, {8080, 8081}) == 8082
    assert provider_entry(NewProvider(type="anthropic", name="claude", models=["c"]), used) == {
        "type": "anthropic", "base_url": "https://api.anthropic.com/v1", "status": "active",
        "requires_api_key": True, "env_var": "ANTHROPIC_API_KEY", "models": ["c"]}


def test_defaults_are_the_shipped_registrys():
    """What `add provider` and `init` write runs what config/ is tested with: its providers
    of each local type have the table's container; the first one its host port."""
    shipped = YAML(typ="safe").load((CONFIGS["shipped"] / PROVIDERS).read_text())["providers"]
    for kind, d in DEFAULTS.items():
        found = [p for p in shipped.values() if p["type"] == kind and "container" in p]
        assert found[0]["base_url"] == f"http://127.0.0.1:{d['host_port']}", kind
        for p in found:
            c = p["container"]
            assert (c["image"], c["port"], c["volumes"], c["health"]["start_period"],
                    p["health_endpoint"]) == (d["image"], d["port"], {d["volume"]: d["mount"]},
                                              d["start_period"], d["health_endpoint"]), kind
    # the CPU build (the shipped registry has none) is the same llama.cpp release
    d = DEFAULTS["llama_cpp"]
    assert d["cpu_image"] == d["image"].replace("server-cuda-", "server-")


def test_add_model_lists_it_on_its_provider_and_routes_it():
    reg, before = reg_of("shipped"), texts("shipped")
    after = add_model(before, reg, NewModel(name="qwen3:0.6b", provider="ollama"))
    assert inserted(before[PROVIDERS], after[PROVIDERS]) == "      - name: qwen3:0.6b\n"
    assert inserted(before[MAPPINGS], after[MAPPINGS]) == \
        '  "qwen3:0.6b":\n    provider: ollama\n'
    # a list of plain names (the cloud templates) gets a plain name
    after = add_model(before, reg, NewModel(name="gpt-5", provider="openai"))
    assert inserted(before[PROVIDERS], after[PROVIDERS]) == "      - gpt-5\n"
    # a model the provider already lists: only the mapping, with its options
    after = add_model(before, reg, NewModel(name="coder", provider="ollama",
                                            backend="qwen2.5-coder:7b", aliases=["code"],
                                            fallback="llama3.1:latest"))
    assert after[PROVIDERS] == before[PROVIDERS]
    assert YAML(typ="safe").load(inserted(before[MAPPINGS], after[MAPPINGS])) == {"coder": {
        "provider": "ollama", "backend_model": "qwen2.5-coder:7b", "aliases": ["code"],
        "fallback": "llama3.1:latest"}}


def test_add_refuses_names_that_exist_or_providers_that_do_not():
    reg, before = reg_of("shipped"), texts("shipped")
    with pytest.raises(EditError, match="already declared"):
        add_model(before, reg, NewModel(name="qwen2.5-coder:7b", provider="ollama"))
    with pytest.raises(EditError, match="no provider 'olama'; did you mean 'ollama'"):
        add_model(before, reg, NewModel(name="x", provider="olama"))
    with pytest.raises(EditError, match="provider 'ollama' already exists"):
        add_provider(before, reg, NewProvider(type="ollama", name="ollama"))
