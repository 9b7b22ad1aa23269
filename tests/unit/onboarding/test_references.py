"""Provider names where models belong, renamed and disabled providers (pure, as data)."""

from __future__ import annotations

from stackctl.onboarding.references import (
    drop_disabled,
    rename_providers,
    rewrite_models,
    served_models,
)
from stackctl.onboarding.report import Recorder
from stackctl.onboarding.yamltext import dump, load_text

MAPPINGS = """\
exact_matches:
  chat:
    provider: olla
    fallback: cpp        # a provider
  code:
    provider: olla
    fallback: olla       # its own provider: the other model
  tiny:
    provider: cpp
    fallback: gone-model
  paid:
    provider: cloud
patterns:
  - pattern: "^x"
    provider: cloud
  - pattern: "^y"
    provider: cpp
    fallback: olla
load_balancing:
  mix:
    providers:
      - provider: olla
        weight: 0.5
      - provider: cloud
        weight: 0.25
      - provider: cpp
        weight: 0.25
fallback_chains:
  chat:
    chain: [cpp, tiny, paid]
  paid:
    chain: [chat]
  default:
    chain: [olla]
capabilities:
  c:
    preferred_models: [olla, chat]
    provider: cloud
    fallback: cpp
"""
PROVIDERS = {"olla", "cpp", "cloud"}
ENABLED = {"olla", "cpp"}


def migrated(renames=None):
    """As migrate.py runs them; the provider sets hold the names after renaming."""
    renames = renames or {}
    providers, enabled = ({renames.get(p, p) for p in s} for s in (PROVIDERS, ENABLED))
    tree, rec = load_text(MAPPINGS), Recorder("m.yaml")
    rename_providers(tree, renames, rec)
    drop_disabled(tree, enabled, providers, rec)
    rewrite_models(tree, providers, enabled, rec, renames)
    return tree, rec


def test_provider_names_become_their_first_model_not_the_entry_itself():
    tree, rec = migrated()
    assert tree["exact_matches"]["chat"]["fallback"] == "tiny"
    assert tree["exact_matches"]["code"]["fallback"] == "chat"
    assert tree["patterns"][0]["fallback"] == "chat"
    assert list(tree["fallback_chains"]["chat"]["chain"]) == ["tiny"]  # paid: removed
    assert list(tree["fallback_chains"]["default"]["chain"]) == ["chat"]
    assert list(tree["capabilities"]["c"]["preferred_models"]) == ["chat"]  # no duplicate
    assert tree["capabilities"]["c"]["fallback"] == "cpp"  # a provider is allowed there
    changed = {i.path: i.message for i in rec.items if i.kind == "changed"}
    assert changed["exact_matches.chat.fallback"] == "provider 'cpp' → its model 'tiny'"
    assert rec.items[0].line is not None


def test_a_disabled_provider_takes_its_entries_along():
    tree, rec = migrated()
    assert "paid" not in tree["exact_matches"] and "paid" not in tree["fallback_chains"]
    assert [p["pattern"] for p in tree["patterns"]] == ["^y"]
    assert [(p["provider"], p["weight"]) for p in tree["load_balancing"]["mix"]["providers"]] == \
        [("olla", 0.6667), ("cpp", 0.3333)]
    assert "provider" not in tree["capabilities"]["c"]
    assert tree["exact_matches"]["tiny"]["fallback"] is None
    dropped = {i.path: (i.line, i.message) for i in rec.items if i.kind == "dropped"}
    assert dropped["exact_matches.paid"] == (11, "provider 'cloud' is disabled: not routed, removed")
    assert dropped["patterns[0]"][0] == 14
    assert "gone-model" in dropped["exact_matches.tiny.fallback"][1]
    assert "null" in dump(tree)


def test_renamed_providers_are_followed_everywhere():
    tree, rec = migrated({"olla": "ollama"})
    text = dump(tree)
    assert "provider: olla\n" not in text and "provider: ollama\n" in text
    assert served_models(tree, {"ollama", "cpp"})["ollama"][:2] == ["chat", "code"]
    assert list(tree["capabilities"]["c"]["preferred_models"]) == ["chat"]


def test_comments_stay():
    tree, _ = migrated()
    assert "fallback: tiny       # a provider" in dump(tree)
