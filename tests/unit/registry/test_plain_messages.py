"""Mistakes a newcomer makes get plain words and the fix, not the parser's (#21)."""

from __future__ import annotations

from stackctl.cli import cli


def validate(runner, cfg):
    return runner.invoke(cli, ["validate", "-C", str(cfg)], catch_exceptions=False)


def test_a_port_with_a_letter_for_a_digit(runner, registry_dir):
    cfg = registry_dir("offline")
    text = (cfg / "providers.yaml").read_text()
    (cfg / "providers.yaml").write_text(text.replace("      port: 8080\n",
                                                     '      port: "80S0"\n', 1))
    r = validate(runner, cfg)
    assert r.exit_code == 1
    assert "providers.yaml:20:7: error: providers.llama_cpp.container.port: '80S0' is not a " \
           "port number (a port is a whole number from 1 to 65535, e.g. 8080; check for a " \
           "letter (O, S, l) typed for a digit)" in r.output
    assert "Input should be" not in r.output


def test_a_base_url_port_with_a_letter(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "providers.yaml", lambda d: d["providers"]["llama_cpp"].__setitem__(
        "base_url", "http://127.0.0.1:80S0"))
    r = validate(runner, cfg)
    assert "has an invalid port '80S0': a port is a whole number from 1 to 65535; check for " \
           "a letter (O, S, l) typed for a digit" in r.output
    assert "could not be cast" not in r.output


def test_a_word_where_a_number_goes_is_not_repeated(runner, registry_dir, yaml_edit):
    cfg = registry_dir("offline")
    yaml_edit(cfg / "stack.yaml", lambda d: d["gateway"].__setitem__("workers", "several"))
    r = validate(runner, cfg)
    assert "gateway.workers: not a whole number (got a string of 7 characters) (write a " \
           "whole number here, without quotes)" in r.output
    assert "several" not in r.output


def test_tab_indentation(runner, registry_dir):
    cfg = registry_dir("offline")
    text = (cfg / "stack.yaml").read_text().replace("  image: stackctl-local/litellm",
                                                    "\timage: stackctl-local/litellm")
    (cfg / "stack.yaml").write_text(text)
    r = validate(runner, cfg)
    assert r.exit_code == 1
    line = text.splitlines().index("\timage: stackctl-local/litellm:1.106.2") + 1
    assert f"stack.yaml:{line}:1: error: this line is indented with a tab: YAML indents with " \
           "spaces only (replace each tab with spaces" in r.output
    assert "cannot start any token" not in r.output


def test_missing_model_mappings_says_how_to_make_one(runner, registry_dir):
    cfg = registry_dir("offline")
    (cfg / "model-mappings.yaml").unlink()
    r = validate(runner, cfg)
    assert r.exit_code == 1
    assert "model-mappings.yaml: error: file not found (it names the models the gateway " \
           "serves: `stackctl add model NAME --provider P` creates it" in r.output
