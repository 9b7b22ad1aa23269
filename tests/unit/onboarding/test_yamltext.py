"""Round-trip edits keep the user's comments where they belong."""

from __future__ import annotations

from stackctl.onboarding.yamltext import (
    append_key,
    dump,
    flow,
    load_text,
    mapping,
    remove_key,
    rename_key,
)

TEXT = """\
providers:
  # first
  a:
    type: vllm   # the engine
    gpu_memory_utilization: 0.5
    max_model_len: 4096

  # --- the next section ---
  b:
    type: ollama
    version: "0.3"
    fallback: null
"""


def test_remove_keeps_the_lines_introducing_the_next_key():
    tree = load_text(TEXT)
    remove_key(tree["providers"]["a"], "max_model_len")
    remove_key(tree["providers"]["a"], "gpu_memory_utilization")
    assert dump(tree) == TEXT.replace("    gpu_memory_utilization: 0.5\n    max_model_len: 4096\n", "")


def test_append_goes_before_the_blank_line_and_comments_that_end_a_mapping():
    tree = load_text(TEXT)
    append_key(tree["providers"]["a"], "container", mapping({"image": "x:1", "command": flow(["--a", "1"])}))
    out = dump(tree)
    assert "    max_model_len: 4096\n    container:\n      image: x:1\n      command: [--a, '1']\n\n" \
           "  # --- the next section ---\n  b:\n" in out


def test_quotes_and_null_stay_as_written():
    assert dump(load_text(TEXT)) == TEXT


def test_rename_keeps_place_and_comment():
    tree = load_text(TEXT)
    rename_key(tree["providers"], "a", "a-new")
    out = dump(tree)
    assert out.index("a-new:") < out.index("  b:") and "# the engine" in out
