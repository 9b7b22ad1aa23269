"""The `bench --json` document: the options, the targets, one cell per model × route ×
concurrency, the sweeps' knees, the gateway's overhead and the comparison with an earlier run
(definitions: the package's doc)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

Route = Literal["gateway", "direct"]
VERSION = 1


class BenchOptions(BaseModel):
    models: list[str] = Field(default_factory=list, description="models as asked for; empty: "
                              "every model whose provider is running")
    direct: bool = Field(False, description="also send each model's requests straight to its "
                         "provider (its host port on 127.0.0.1) to show the gateway's overhead")
    concurrency: list[int] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1,
                                   description="concurrent clients of each step of the sweep")
    requests: int = Field(20, ge=1, description="requests per model × route × concurrency")
    max_tokens: int = Field(64, ge=1, description="max_tokens of every request")
    stream: bool = Field(False, description="stream the answers (SSE): measures TTFT")
    timeout: float = Field(60, gt=0, description="seconds one request may take")

    @field_validator("concurrency")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        if any(c < 1 for c in value):
            raise ValueError("concurrency must be 1 or more")
        return sorted(set(value))


class Target(BaseModel):
    """Where one model's requests go (the key is not part of it: never serialised)."""

    model: str = Field(description="the model as asked for (public name or alias)")
    route: Route
    url: str = Field(description="OpenAI-compatible base URL, ending in /v1")
    backend: str = Field(description="the `model` sent: the public name through the gateway, "
                         "the provider's own name direct")
    provider: str | None = Field(None, description="direct: the provider answering")


class Stats(BaseModel):
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float


class Cell(BaseModel):
    model: str
    route: Route
    provider: str | None = Field(None, description="direct: the provider measured")
    concurrency: int
    requests: int = Field(description="requests sent")
    ok: int = Field(description="requests answered with 200 and a complete answer")
    errors: int
    error_samples: list[str] = Field(default_factory=list, description="the first few errors")
    ttft_ms: Stats | None = Field(None, description="time to first token (streaming only)")
    latency_ms: Stats | None = None
    tokens: int = Field(0, description="completion tokens of the answered requests")
    tokens_source: Literal["usage", "chunks", "none"] = "none"
    tokens_per_s_request: float | None = Field(None, description="median per request")
    tokens_per_s: float = Field(0, description="aggregate: tokens / wall time")
    requests_per_s: float = Field(0, description="answered requests / wall time")
    wall_s: float
    served_by: dict[str, int] = Field(default_factory=dict, description="gateway: deployment "
                                      "ids that answered (x-litellm-model-id), with counts")
    knee: bool = Field(False, description="this concurrency is its sweep's knee")

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class Sweep(BaseModel):
    model: str
    route: Route
    knee: int | None = Field(description="see the module doc; null: fewer than two steps "
                             "with answers, or none at the lowest concurrency")
    beyond_sweep: bool = Field(False, description="every step scaled: not saturated yet")


class Overhead(BaseModel):
    model: str
    concurrency: int
    gateway_p50_ms: float
    direct_p50_ms: float
    diff_ms: float = Field(description="gateway p50 minus direct p50")
    ratio: float | None = Field(description="gateway p50 / direct p50")


class Delta(BaseModel):
    model: str
    route: Route
    concurrency: int
    metric: str
    old: float
    new: float
    change_pct: float | None = Field(description="(new - old) / old; null when old is 0")
    regression: bool


class Comparison(BaseModel):
    file: str
    threshold_pct: float
    deltas: list[Delta]
    regressions: int
    not_compared: list[str] = Field(default_factory=list,
                                    description="cells only one of the two runs has")
    notes: list[str] = Field(default_factory=list, description="options that differ")


class BenchReport(BaseModel):
    version: int = VERSION
    ok: bool
    started_at: str
    gateway: str = Field(description="the gateway's URL (never its key)")
    options: BenchOptions
    targets: list[Target]
    cells: list[Cell]
    sweeps: list[Sweep]
    overhead: list[Overhead]
    notes: list[str] = Field(default_factory=list, description="what was chosen or skipped")
    problems: list[str] = Field(default_factory=list, description="unknown or unreachable "
                                "models, targets whose every request failed")
    comparison: Comparison | None = None
