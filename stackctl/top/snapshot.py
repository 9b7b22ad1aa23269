"""What `stackctl top` shows, as data: one `Snapshot` per refresh, also `top --once --json`.

Everything the screen shows is here, computed by collect.py; the app only renders it, so
the JSON and the screen never disagree.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MemberState = Literal["awake", "asleep", "loading", "stopped", "unknown"]


class MemberView(BaseModel):
    name: str
    state: MemberState = Field(description="awake: serving; asleep: vLLM sleep mode; loading: "
                               "its container runs but is not ready yet; stopped: no running "
                               "container; unknown: no Docker engine answered")
    model: str | None = Field(None, description="the public model it serves (first)")
    footprint_gib: float | None = Field(None, description="GiB it claims on the GPU when "
                                        "loaded (registry/gpu_memory.py); null: not stated")
    held: bool = Field(False, description="the gateway holds its model's requests: a switch "
                       "to it is under way")
    waiting: float | None = Field(None, description="requests its engine queues (vLLM's "
                                  "num_requests_waiting, llama.cpp's requests_deferred), from "
                                  "Prometheus; null: Prometheus does not run")


class GroupView(BaseModel):
    name: str
    mode: Literal["restart", "sleep"]
    members: list[MemberView]
    memory_gib: float | None = Field(None, description="the group's budget (stack.yaml "
                                     "gpu_groups.NAME.memory_gib); null: exclusive")
    used_gib: float | None = Field(None, description="footprints of its awake and loading "
                                   "members; null: no budget or a footprint is unknown")
    switching_to: str | None = Field(None, description="the member a switch is bringing in "
                                     "(its model is held at the gateway); null: none")


class ModelView(BaseModel):
    model: str = Field(description="the model the client asked for (requested_model)")
    requests: float = Field(description="requests in the window")
    rps: float | None = Field(None, description="requests per second; null: one reading only")
    errors: float = Field(0, description="failed requests in the window")
    p50_ms: float | None = None
    p95_ms: float | None = None
    ttft_p50_ms: float | None = Field(None, description="time to first token (streaming)")
    tokens_per_s: float | None = Field(None, description="output tokens per second, all "
                                       "requests together; null: one reading only")
    rerouted: float = Field(0, description="requests the gateway held or sent to a fallback "
                            "during switches, in the window")


class GatewayView(BaseModel):
    url: str
    up: bool
    metrics: bool = Field(False, description="its /metrics answered")
    in_flight: float | None = Field(None, description="requests being served now")
    problem: str | None = Field(None, description="why there are no metrics")


class SwitchView(BaseModel):
    at: float
    group: str
    previous: str | None
    target: str
    active: str | None
    success: bool
    rolled_back: bool
    seconds: float
    reason: str


class AlertView(BaseModel):
    name: str
    severity: str
    summary: str


class Snapshot(BaseModel):
    taken_at: float = Field(description="Unix seconds")
    project: str
    engine: bool = Field(description="a Docker engine answered")
    engine_problem: str | None = None
    gateway: GatewayView
    groups: list[GroupView]
    models: list[ModelView]
    figures_from: Literal["gateway", "prometheus"] | None = Field(
        None, description="where the model figures come from: Prometheus when it runs (no "
        "request to the gateway), else the gateway's /metrics; null: neither answered")
    window_s: float | None = Field(None, description="seconds the model figures cover; null: "
                                   "since the gateway started (one reading)")
    figures_age_s: float | None = Field(None, description="seconds since the figures were "
                                        "read (the gateway's /metrics is read every 5 s)")
    switches: list[SwitchView] = Field(default_factory=list, description="newest first")
    alerts: list[AlertView] | None = Field(None, description="firing in Prometheus; null: "
                                           "Prometheus does not run")
    banners: list[str] = Field(default_factory=list, description="what is wrong, in words")
