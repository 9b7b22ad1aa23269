"""vLLM's scheduler (running / waiting, KV blocks) and its /metrics series."""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections import deque

from .settings import KV_BLOCK_SIZE, MAX_MODEL_LEN

# GET /metrics of the vllm flavor.  Names, types, HELP texts, labels and buckets are those
# of vLLM 0.11.0 (the tag config/providers.yaml pins), vllm/v1/metrics/loggers.py,
# PrometheusStatLogger, restricted to the default series the stub can give real values;
# the text is laid out as prometheus_client's generate_latest() writes it (vLLM serves
# /metrics with it): counters as <name>_total plus a <name>_created gauge, labels sorted.
# Like vLLM, every series carries model_name (the first served name) and engine ("0": one
# engine, no data parallelism); vLLM 0.11.0 no longer exports vllm:gpu_cache_usage_perc
# unless started with --show-hidden-metrics-for-version=0.10.

FINISH_REASONS = ("stop", "length", "abort")  # vllm.v1.engine.FinishReason at 0.11.0
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
                           40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


def buckets_1_2_5(max_value):
    """vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max_value."""
    exponent, buckets = 0, []
    while True:
        for mantissa in (1, 2, 5):
            if mantissa * 10**exponent > max_value:
                return tuple(buckets)
            buckets.append(mantissa * 10**exponent)
        exponent += 1


TOKEN_BUCKETS = buckets_1_2_5(MAX_MODEL_LEN)  # vLLM: max_model_len

GAUGES = (
    ("vllm:num_requests_running", "Number of requests in model execution batches."),
    ("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
)
SLEEP_STATE = (  # registered right after the two gauges above, labelled sleep_state
    "vllm:engine_sleep_state",
    "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
    "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
)
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")  # index = sleep level
KV_USAGE = ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
COUNTERS = (
    ("vllm:prompt_tokens", "Number of prefill tokens processed."),
    ("vllm:generation_tokens", "Number of generation tokens processed."),
)
SUCCESS = ("vllm:request_success", "Count of successfully processed requests.")
HISTOGRAMS = (  # (attribute, name, HELP, buckets), in vLLM's registration order
    ("prompt_len", "vllm:request_prompt_tokens", "Number of prefill tokens processed.",
     TOKEN_BUCKETS),
    ("generation_len", "vllm:request_generation_tokens", "Number of generation tokens processed.",
     TOKEN_BUCKETS),
    ("ttft", "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
     TTFT_BUCKETS),
    ("tpot", "vllm:time_per_output_token_seconds",  # deprecated alias of the ITL, still on in 0.11
     "Histogram of time per output token in seconds."
     "DEPRECATED: Use vllm:inter_token_latency_seconds instead.", ITL_BUCKETS),
    ("itl", "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
     ITL_BUCKETS),
    ("e2e", "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
     REQUEST_LATENCY_BUCKETS),
    ("queue_time", "vllm:request_queue_time_seconds",
     "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS),
    ("inference", "vllm:request_inference_time_seconds",
     "Histogram of time spent in RUNNING phase for request.", REQUEST_LATENCY_BUCKETS),
    ("prefill", "vllm:request_prefill_time_seconds",
     "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS),
    ("decode", "vllm:request_decode_time_seconds",
     "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS),
)  # fmt: skip


def go_float(value):
    """A sample value as prometheus_client writes it (floatToGoString)."""
    value = float(value)
    if value == math.inf:
        return "+Inf"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:  # Go switches to exponents sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def kv_blocks(tokens):
    return -(-tokens // KV_BLOCK_SIZE)


class Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one counts values above every bound
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.sum += value


class VllmMetrics:
    """One vLLM engine's scheduler (running / waiting, KV blocks) and its Prometheus series.

    A completion is admitted FCFS while a sequence slot is free and its prompt's KV blocks
    fit (as vLLM's scheduler does; a lone request always runs), holds blocks for its prompt
    and generated tokens while it runs, and releases them when it finishes.  Usage above
    the cache (vLLM would preempt) is reported as 1.  One lock guards it all: a few
    additions per token, nine histogram observations per request.
    """

    def __init__(self, model_name, max_num_seqs, kv_cache_tokens):
        escaped = model_name.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
        self.labels = {"engine": "0", "model_name": escaped}
        self.max_num_seqs = max_num_seqs
        self.total_blocks = kv_blocks(kv_cache_tokens)
        self.created = time.time()
        self.cond = threading.Condition()
        self.queue = deque()  # tickets of waiting requests, oldest first
        self.running = 0
        self.held = 0  # requests held while the engine sleeps (waiting, in vLLM's terms)
        self.sleep_level = 0  # 0 awake, 1 weights offloaded, 2 discard all
        self.used_blocks = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = dict.fromkeys(FINISH_REASONS, 0)
        for attr, _name, _help, bounds in HISTOGRAMS:
            setattr(self, attr, Histogram(bounds))

    def _fits(self, blocks):
        return self.running == 0 or (
            self.running < self.max_num_seqs and self.used_blocks + blocks <= self.total_blocks
        )

    def admit(self, arrival, prompt_tokens):
        """Wait for the scheduler to take the request; returns its RequestTrace."""
        blocks = kv_blocks(prompt_tokens)
        with self.cond:
            queued = time.monotonic()
            if self.queue or not self._fits(blocks):
                ticket = object()
                self.queue.append(ticket)
                while self.queue[0] is not ticket or not self._fits(blocks):
                    self.cond.wait()
                self.queue.popleft()
                self.cond.notify_all()  # the next in line may fit as well
            self.running += 1
            self.used_blocks += blocks
        return RequestTrace(self, arrival, queued, prompt_tokens, blocks)

    def set_sleep(self, level):
        with self.cond:
            self.sleep_level = level

    def exposition(self):
        """The series as vLLM's /metrics writes them (prometheus_client's text format)."""
        with self.cond:
            gauges = (self.running, len(self.queue) + self.held)
            kv_usage = min(1.0, self.used_blocks / self.total_blocks)
            sleep_level = self.sleep_level
            counters = (self.prompt_tokens, self.generation_tokens)
            success = dict(self.success)
            histograms = [(h.counts.copy(), h.sum) for h in (getattr(self, a) for a, *_ in HISTOGRAMS)]
        created = go_float(self.created)
        out = []

        def family(name, kind, doc):
            out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")

        def sample(name, value, **extra):
            labels = ",".join(f'{k}="{v}"' for k, v in sorted({**self.labels, **extra}.items()))
            out.append(f"{name}{{{labels}}} {value}\n")

        def counter(name, doc, values):  # values: [(extra labels, count)]
            family(f"{name}_total", "counter", doc)
            for extra, value in values:
                sample(f"{name}_total", go_float(value), **extra)
            family(f"{name}_created", "gauge", doc)
            for extra, _ in values:
                sample(f"{name}_created", created, **extra)

        for (name, doc), value in zip(GAUGES, gauges, strict=True):
            family(name, "gauge", doc)
            sample(name, go_float(value))
        family(SLEEP_STATE[0], "gauge", SLEEP_STATE[1])
        for level, state in enumerate(SLEEP_STATES):
            sample(SLEEP_STATE[0], go_float(1 if level == sleep_level else 0), sleep_state=state)
        family(KV_USAGE[0], "gauge", KV_USAGE[1])
        sample(KV_USAGE[0], go_float(kv_usage))
        for (name, doc), value in zip(COUNTERS, counters, strict=True):
            counter(name, doc, [({}, value)])
        counter(*SUCCESS, [({"finished_reason": r}, n) for r, n in success.items()])
        for (_, name, doc, bounds), (counts, total) in zip(HISTOGRAMS, histograms, strict=True):
            family(name, "histogram", doc)
            cumulative = 0
            for bound, count in zip((*bounds, math.inf), counts, strict=True):
                cumulative += count
                sample(f"{name}_bucket", go_float(cumulative), le=go_float(bound))
            sample(f"{name}_count", go_float(cumulative))
            sample(f"{name}_sum", go_float(total))
            family(f"{name}_created", "gauge", doc)
            sample(f"{name}_created", created)
        return "".join(out).encode()


class RequestTrace:
    """One admitted request: the timestamps vLLM's RequestStateStats keep, fed to the series."""

    __slots__ = ("metrics", "arrival", "queued", "scheduled", "first", "last", "prompt_tokens",
                 "generated", "blocks")  # fmt: skip

    def __init__(self, metrics, arrival, queued, prompt_tokens, blocks):
        self.metrics = metrics
        self.arrival = arrival  # monotonic time the HTTP request arrived
        self.queued = queued
        self.scheduled = time.monotonic()
        self.first = self.last = None
        self.prompt_tokens = prompt_tokens
        self.generated = 0
        self.blocks = blocks

    def tokens(self, count=1):
        """`count` tokens were generated just now (one engine step)."""
        now = time.monotonic()
        m = self.metrics
        with m.cond:
            if self.first is None:  # vLLM counts the prompt when prefill yields the first token
                self.first = now
                m.prompt_tokens += self.prompt_tokens
                m.ttft.observe(now - self.arrival)
            else:
                m.itl.observe(now - self.last)
                m.tpot.observe(now - self.last)
            self.last = now
            self.generated += count
            m.generation_tokens += count
            blocks = kv_blocks(self.prompt_tokens + self.generated)
            m.used_blocks += blocks - self.blocks
            self.blocks = blocks

    def finish(self, reason):
        now = time.monotonic()
        m = self.metrics
        first = self.first if self.first is not None else now
        last = self.last if self.last is not None else now
        with m.cond:
            m.running -= 1
            m.used_blocks -= self.blocks
            m.success[reason] += 1
            m.prompt_len.observe(self.prompt_tokens)
            m.generation_len.observe(self.generated)
            m.e2e.observe(now - self.arrival)
            m.queue_time.observe(self.scheduled - self.queued)
            m.inference.observe(last - self.scheduled)
            m.prefill.observe(first - self.scheduled)
            m.decode.observe(last - first)
            m.cond.notify_all()  # a slot and blocks are free for the next waiting request
