"""top's load and unload keys go through the residency client, with top as the reason."""

from __future__ import annotations

import pytest

from stackctl.errors import PlanError
from stackctl.residency.client import Change
from stackctl.top.actions import LiveActions


class Client:
    def __init__(self, fail: bool = False):
        self.asked: list[tuple] = []
        self.fail = fail

    def _do(self, verb, opts):  # type: ignore[no-untyped-def]
        self.asked.append((verb, opts.model, opts.reason))
        if self.fail:
            raise PlanError("vllm-qwen is pinned")
        return Change(action=verb, member=opts.model, group="gpu0", noop=False, steps=[],
                      plan={}, timings={"total": 0.42})

    def load(self, opts):  # type: ignore[no-untyped-def]
        return self._do("load", opts)

    def unload(self, opts):  # type: ignore[no-untyped-def]
        return self._do("unload", opts)


def test_load_and_unload_through_the_client(monkeypatch):
    client = Client()
    monkeypatch.setattr("stackctl.residency.client.client_for", lambda reg, docker, say: client)
    actions = LiveActions(reg=None, config_dir=None, docker=lambda: None)  # type: ignore[arg-type]
    assert actions.change("unload", "vllm-qwen", print) == \
        "unloaded vllm-qwen in GPU group 'gpu0' (0.4s)"
    assert actions.change("load", "vllm-dolphin", print).startswith("loaded vllm-dolphin")
    assert client.asked == [("unload", "vllm-qwen", "stackctl top"),
                            ("load", "vllm-dolphin", "stackctl top")]


def test_a_refusal_is_the_error_the_screen_shows(monkeypatch):
    monkeypatch.setattr("stackctl.residency.client.client_for",
                        lambda reg, docker, say: Client(fail=True))
    actions = LiveActions(reg=None, config_dir=None, docker=lambda: None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="pinned"):
        actions.change("unload", "vllm-qwen", print)
