"""stackctl's LiteLLM routing callback: holds or diverts requests while a GPU is being switched,
and asks the on-demand scheduler about the models of on-demand GPU groups.

`stackctl generate` copies this file verbatim to `compose/litellm/stackctl_routing.py`, beside
the gateway's config.yaml, whose `litellm_settings.callbacks` names `stackctl_routing.callback`:
the proxy loads it from the config's own folder. It runs inside the gateway image, so it needs
only the standard library and litellm (no stackctl).

Why: while stackctl stops one model's server and starts another on the same GPU, a request for
either model would fail (connection refused, 503 while loading) or burn the router's retries.
Instead the proxy's pre-call hook holds it until the incoming model is up, or sends it at once
to a model that can answer.

The contract. stackctl writes a state file; this module only reads it. Its path is the
environment variable `STACKCTL_ROUTING_FILE`, else `gpu-routing.json` in this module's own
folder. stackctl replaces it atomically (write a temporary file, rename it over), so readers
see the old or the new content, never half of it:

    {"v": 1,
     "divert": {"<model name or alias>": "<model that answers instead>", ...},
     "hold": {"<model name or alias>": {"seconds": 15.0, "fallback": "<model>" | null}, ...},
     "scheduler": "stackctl-scheduler.sock",
     "ask": {"<model name or alias>": {"seconds": 10.0, "fallback": "<model>" | null,
                                      "awake": true | false}, ...}}

`scheduler` and `ask` are optional (a file without them is read as before them): `scheduler`
is the file name (no '/') of the on-demand scheduler's unix socket in the state file's own
folder; `ask` lists the models of on-demand GPU groups, with how long a request waits at most
for the scheduler's reply (`seconds`, finite >= 0), where it goes then (`fallback`), and
whether the model's member is awake now (`awake`, a boolean: how to fail open). Without
`scheduler`, `ask` is inert. Any other value of these keys makes the file invalid.

For a chat or text completion (streaming or not) whose `data["model"]` is M (the name the
client sent; an alias is matched as written, before the router resolves it):
  * M in `hold` (a switch is running): the request waits (an `asyncio.sleep` poll every 50 ms:
    the worker keeps serving other requests) until a newer version of the file no longer
    holds M, then is decided again from the top (asked, diverted or sent on unchanged).
    When `seconds` have passed since the request arrived and M is still held, it goes to the
    hold's `fallback` (`data["model"] = fallback`), or on unchanged when that is null.
  * M in `ask` (and `scheduler` set): the hook connects to the socket
    (`asyncio.open_unix_connection`), sends one line
        {"v": 1, "model": M, "id": "<32 hex digits>", "stream": true | false, "waited": S,
         "probe": true | false}
    (`waited`: the seconds the request had waited in the hook before it asked, held by a
    switch under way; the scheduler counts it as asked when it arrived, not in the burst of
    requests released when the switch ends. `probe`: the request's metadata has
    `stackctl_probe: true` — stackctl's own, a switch confirming the route: not demand)
    and reads one reply line, a JSON object:
        {"go": true}                    on unchanged;
        {"divert": "X"}                 `data["model"] = X` (not looked up in the maps again);
        {"divert": null}                on unchanged;
        {"reject": true, "retry_after": N, "message": "..."}
                                        the client gets HTTP 429, header `Retry-After: N`
                                        (N rounded up to whole seconds) and the message.
    No reply within the entry's `seconds` (counted from when the hook starts asking):
    `fallback`, or on unchanged when null. The scheduler cannot be asked (no socket file,
    connection refused, EOF or a line that is none of the above, any OSError): as before
    the scheduler existed, `awake` sends it on unchanged, else to `fallback` (on unchanged
    when null), with one warning line per distinct problem. One connection per request,
    closed as soon as the hook is done with it, also when the client went away (the hook
    is cancelled): the scheduler sees EOF and drops the request. The socket is connected to
    by the gateway's user: it needs write permission on it (mode 0666 when that is not root
    or the socket's owner).
  * M in `divert` (and neither held nor asked): `data["model"] = divert[M]` at once. Not
    chained: the target is not looked up in the maps again.
  * otherwise: untouched, and nothing is recorded.
The router then routes the rewritten name (its deployments, retries, fallbacks and cooldowns);
`x-litellm-model-id` names the deployment that answered. What happened is recorded in the
request's metadata, `metadata.stackctl_routing = {"asked": M, "action": "held" | "diverted" |
"hold_expired" | "rejected", "held_ms": int}` ("held": released to M itself after waiting
for the file or more than 50 ms for the scheduler; "diverted" after a wait has held_ms > 0),
never content nor keys; a request the scheduler lets through at once records nothing. A
missing, unreadable or invalid file counts as empty (fail open), with one warning line on
stderr per distinct problem, not one per request; any error inside the hook lets the request
through unchanged (a rejection is the one exception the hook raises on purpose).

Streams held for longer than a few seconds: a pre-call hook cannot write to the response, but
the proxy itself can: with `litellm_settings.sse_keepalive_ping_interval_seconds: 3` in the
gateway's config, a streaming request whose response has not started after 3 s (this hook
is part of that time) gets its response opened with `: ping` SSE comments every 3 s until the
model's first chunk. Then a rejection that comes later than that reaches the client as an
SSE error frame (code 429) under status 200, and the early-opened stream lacks the
x-litellm-* headers.

Cost for every other request: no file I/O. Each gateway worker (a process of its own, with its
own instance: no shared state) re-stats the file at most every 50 ms, lazily on a request
(st_mtime_ns, st_ino, st_size), and parses it only when that changed; the rest is three
dictionary lookups (the scheduler is connected to only for a model in `ask`).

Why a file and not Redis: it works with the cache (and so the Redis service) off; it survives a
Redis restart or flush (a lost key would silently release every hold); and the gateway mounts
this folder, not single files, read-only (`./litellm:/app/litellm:ro`), so the new inode of an
atomic rename is seen at once through the bind mount, with no network round trip per request.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

ENV_FILE = "STACKCTL_ROUTING_FILE"
DEFAULT_NAME = "gpu-routing.json"
VERSION = 1
STAT_INTERVAL = 0.05  # seconds between two stats of the state file, per worker
POLL_INTERVAL = 0.05  # seconds between two looks at the state while a request is held
METADATA_KEY = "stackctl_routing"
# in a request's metadata: stackctl's own request (a switch confirming the route), no demand
PROBE_KEY = "stackctl_probe"
WARNING_PREFIX = "stackctl-routing warning: "
# the proxy's call types of /chat/completions and /completions (streaming or not)
CALL_TYPES = frozenset({"acompletion", "atext_completion", "completion", "text_completion"})

# decide()'s actions
PASS, WAIT, DIVERT, EXPIRED, ASK = "pass", "wait", "divert", "hold_expired", "ask"
PROTOCOL = 1  # the scheduler protocol's version ("v" of the request line)
REPLY_LIMIT = 1 << 16  # bytes: the longest reply line read from the scheduler


def _probe(data: dict[str, Any]) -> bool:
    meta = data.get("metadata")
    return isinstance(meta, dict) and meta.get(PROBE_KEY) is True


# Plain classes, not dataclasses: the proxy executes this file without putting it in
# sys.modules (`get_instance_fn`: spec_from_file_location + exec_module), and @dataclass with
# `from __future__ import annotations` looks the module up there and raises AttributeError.
class Hold:
    """A held model: how long a request waits at most, and where it goes then (None: on)."""

    __slots__ = ("seconds", "fallback")

    def __init__(self, seconds: float, fallback: str | None = None) -> None:
        self.seconds = seconds
        self.fallback = fallback

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Hold) and self.seconds == other.seconds
                and self.fallback == other.fallback)

    def __hash__(self) -> int:
        return hash((self.seconds, self.fallback))

    def __repr__(self) -> str:
        return f"Hold({self.seconds!r}, {self.fallback!r})"


class Ask:
    """A model of an on-demand GPU group: ask the scheduler, wait at most `seconds` for its
    reply (then `fallback`, None: on), and whether its member is awake (how to fail open
    when the scheduler cannot be reached)."""

    __slots__ = ("seconds", "fallback", "awake")

    def __init__(self, seconds: float, fallback: str | None = None, awake: bool = False) -> None:
        self.seconds = seconds
        self.fallback = fallback
        self.awake = awake

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Ask) and self.seconds == other.seconds
                and self.fallback == other.fallback and self.awake == other.awake)

    def __hash__(self) -> int:
        return hash((self.seconds, self.fallback, self.awake))

    def __repr__(self) -> str:
        return f"Ask({self.seconds!r}, {self.fallback!r}, awake={self.awake!r})"


class State:
    """One version of the state file: model -> divert target, model -> Hold, the scheduler's
    socket file name (None: no scheduler) and model -> Ask."""

    __slots__ = ("divert", "hold", "scheduler", "ask")

    def __init__(self, divert: Mapping[str, str] | None = None,
                 hold: Mapping[str, Hold] | None = None, scheduler: str | None = None,
                 ask: Mapping[str, Ask] | None = None) -> None:
        self.divert: Mapping[str, str] = divert or {}
        self.hold: Mapping[str, Hold] = hold or {}
        self.scheduler = scheduler
        # without a scheduler there is nobody to ask: the entries are inert
        self.ask: Mapping[str, Ask] = (ask or {}) if scheduler else {}

    def affects(self, model: Any) -> bool:
        return model in self.hold or model in self.divert or model in self.ask

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, State) and self.divert == other.divert
                and self.hold == other.hold and self.scheduler == other.scheduler
                and self.ask == other.ask)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"State(divert={self.divert!r}, hold={self.hold!r}, "
                f"scheduler={self.scheduler!r}, ask={self.ask!r})")


EMPTY = State()


def parse_state(raw: bytes | str) -> State:
    """The state of a file's content; ValueError (saying what is wrong) when it is invalid."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("v") != VERSION or isinstance(doc.get("v"), bool):
        raise ValueError(f"'v' is {doc.get('v')!r}, not {VERSION}")
    divert = doc.get("divert", {})
    hold = doc.get("hold", {})
    if not isinstance(divert, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in divert.items()):
        raise ValueError("'divert' is not an object of model names to model names")
    if not isinstance(hold, dict):
        raise ValueError("'hold' is not an object")
    holds: dict[str, Hold] = {}
    for name, entry in hold.items():
        if not (isinstance(name, str) and name and isinstance(entry, dict)):
            raise ValueError("'hold' entries must be objects keyed by model name")
        seconds, fallback = entry.get("seconds"), entry.get("fallback")
        if (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
                or not 0 <= seconds < float("inf")):
            raise ValueError(f"hold of {name!r}: 'seconds' is not a finite number >= 0")
        if fallback is not None and not (isinstance(fallback, str) and fallback):
            raise ValueError(f"hold of {name!r}: 'fallback' is neither a model name nor null")
        holds[name] = Hold(float(seconds), fallback)
    scheduler = doc.get("scheduler")
    if scheduler is not None and not (
            isinstance(scheduler, str) and scheduler not in ("", ".", "..")
            and "/" not in scheduler and "\0" not in scheduler):
        raise ValueError("'scheduler' is not a file name (no '/') in the state file's folder")
    ask = doc.get("ask", {})
    if not isinstance(ask, dict):
        raise ValueError("'ask' is not an object")
    asks: dict[str, Ask] = {}
    for name, entry in ask.items():
        if not (isinstance(name, str) and name and isinstance(entry, dict)):
            raise ValueError("'ask' entries must be objects keyed by model name")
        seconds, fallback, awake = entry.get("seconds"), entry.get("fallback"), entry.get("awake")
        if not _seconds(seconds):
            raise ValueError(f"ask of {name!r}: 'seconds' is not a finite number >= 0")
        if fallback is not None and not (isinstance(fallback, str) and fallback):
            raise ValueError(f"ask of {name!r}: 'fallback' is neither a model name nor null")
        if not isinstance(awake, bool):
            raise ValueError(f"ask of {name!r}: 'awake' is not true or false")
        asks[name] = Ask(float(seconds), fallback, awake)
    return State(dict(divert), holds, scheduler, asks)


def _seconds(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value < float("inf"))


def decide(state: State, model: Any, elapsed: float) -> tuple[str, str | None]:
    """What to do now with a request for `model` that arrived `elapsed` seconds ago:
    (PASS, None), (WAIT, None), (ASK, None), (DIVERT, target) or (EXPIRED, fallback or None)."""
    held = state.hold.get(model)
    if held is not None:
        if elapsed >= held.seconds:
            return EXPIRED, held.fallback
        return WAIT, None
    if model in state.ask:
        return ASK, None
    target = state.divert.get(model)
    if target is not None:
        return DIVERT, target
    return PASS, None


def default_path() -> str:
    return os.environ.get(ENV_FILE) or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), DEFAULT_NAME)


def _warn(message: str) -> None:
    try:
        sys.stderr.write(WARNING_PREFIX + message + "\n")
        sys.stderr.flush()
    except Exception:  # a log line must never fail a request
        pass


class StateFile:
    """The state file as seen by one worker: `current()` stats it at most every `interval`
    seconds and parses it only when its (st_mtime_ns, st_ino, st_size) changed."""

    def __init__(self, path: str, interval: float = STAT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 warn: Callable[[str], None] = _warn) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self.warn = warn
        self.state = EMPTY
        self.version = 0  # bumped whenever the state is replaced
        self.stats = 0  # how many times the file was stat-ed (for tests)
        self._next = float("-inf")
        self._key: tuple[int, int, int] | None = None
        self._warned: set[str] = set()

    def current(self) -> State:
        now = self.clock()
        if now < self._next:
            return self.state
        self._next = now + self.interval
        self._refresh()
        return self.state

    def _refresh(self) -> None:
        self.stats += 1
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._set(None, EMPTY, "missing")
            return
        except OSError as exc:
            self._set(None, EMPTY, f"cannot stat ({type(exc).__name__}: {exc.strerror})")
            return
        key = (st.st_mtime_ns, st.st_ino, st.st_size)
        if key == self._key:
            return
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(1 << 20)
        except OSError as exc:
            self._set(None, EMPTY, f"unreadable ({type(exc).__name__}: {exc.strerror})")
            return
        try:
            state = parse_state(raw)
        except ValueError as exc:
            self._set(key, EMPTY, f"invalid: {exc}")
            return
        self._set(key, state, None)

    def _set(self, key: tuple[int, int, int] | None, state: State, problem: str | None) -> None:
        self._key = key
        if state is not self.state:
            self.state = state
            self.version += 1
        if problem is None:
            self._warned.clear()  # a later problem is news again
        elif problem not in self._warned:
            self._warned.add(problem)
            self.warn(f"{self.path}: {problem}; routing as if empty (nothing held or diverted)")


class Rejected(Exception):
    """The scheduler refused a request: the client gets HTTP 429 with `Retry-After`."""

    def __init__(self, model: str, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.model = model
        self.retry_after = retry_after
        self.message = message


class _Unreachable(Exception):
    """The scheduler could not be asked (its str: the problem, for the one warning)."""


class _Held:
    """Whether a request is counted in the held-requests gauge; start/stop are idempotent,
    so the `finally` of the hook releases it however it ends (cancelled included)."""

    __slots__ = ("holding", "model", "on")

    def __init__(self, holding: Callable[[str, int], None], model: str) -> None:
        self.holding, self.model, self.on = holding, model, False

    def start(self) -> None:
        if not self.on:
            self.on = True
            self.holding(self.model, 1)

    def stop(self) -> None:
        if self.on:
            self.on = False
            self.holding(self.model, -1)


def _reply(line: bytes) -> tuple[str, Any]:
    """The scheduler's reply line as (PASS, None), (DIVERT, target), ("reject", (retry_after,
    message)); _Unreachable when it is not one of them."""
    if not line.endswith(b"\n"):
        raise _Unreachable("the scheduler closed the connection without a reply")
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise _Unreachable("the scheduler's reply is not JSON") from None
    if isinstance(doc, dict):
        if doc.get("go") is True:
            return PASS, None
        if "divert" in doc:
            target = doc["divert"]
            if target is None:
                return PASS, None
            if isinstance(target, str) and target:
                return DIVERT, target
        if doc.get("reject") is True and _seconds(doc.get("retry_after")):
            message = doc.get("message")
            if not isinstance(message, str) or not message:
                message = "the model is not available now, retry later"
            return "reject", (int(math.ceil(doc["retry_after"])), message)
    raise _Unreachable("the scheduler's reply is none of go, divert, reject")


class Routing:
    """The decision applied to a request's data (the body of the proxy's pre-call hook)."""

    def __init__(self, state_file: StateFile, poll: float = POLL_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 count: Callable[[str, str, str], None] = lambda asked, to, action: None,
                 holding: Callable[[str, int], None] = lambda model, delta: None,
                 held_for: Callable[[str, str, float], None] = lambda model, action, s: None
                 ) -> None:
        self.state_file = state_file
        self.poll = poll
        self.clock = clock
        self.count = count  # (model asked, model that answers, action): the gateway's metric
        self.holding = holding  # (model, +1 | -1): requests held now (queue depth)
        self.held_for = held_for  # (model, action, seconds): how long a held request waited
        self._errors: set[str] = set()  # hook errors already logged
        self._scheduler_problems: set[str] = set()  # scheduler problems already logged

    def scheduler_path(self, state: State) -> str:
        """The scheduler's socket: its file name in the state file's own folder."""
        return os.path.join(os.path.dirname(os.path.abspath(self.state_file.path)),
                            state.scheduler or "")

    async def pre_call(self, data: Any, call_type: Any) -> None:
        """Hold, divert or leave `data` (in place); never raises but cancellation and
        Rejected (the scheduler said no: a 429)."""
        try:
            if call_type not in CALL_TYPES or not isinstance(data, dict):
                return None
            model = data.get("model")
            state = self.state_file.current()
            if not isinstance(model, str) or not state.affects(model):
                return None
            await self._route(data, model, state)
        except Rejected:
            raise
        except Exception as exc:  # never fail a request: it goes on as it is
            problem = type(exc).__name__
            if problem not in self._errors:
                self._errors.add(problem)
                self.state_file.warn(f"hook error, request left unchanged ({problem})")
        return None

    async def _route(self, data: dict[str, Any], model: str, state: State) -> None:
        arrived = self.clock()
        held = _Held(self.holding, model)
        waited = False  # held at some point (the gauge counted it)
        try:
            while True:
                elapsed = self.clock() - arrived
                action, target = decide(state, model, elapsed)
                if action != WAIT:
                    break
                held.start()
                waited = True
                await asyncio.sleep(self.poll)
                state = self.state_file.current()
            if action == ASK:
                action, target = await self._ask(data, model, state, held, arrived)
                waited = waited or held.on
            elapsed = self.clock() - arrived
        finally:  # also when the client goes away (cancelled): it waits no more
            held.stop()
        if action == "reject":
            retry_after, message = target  # type: ignore[misc]
            if waited:
                self.held_for(model, "rejected", elapsed)
            self._record(data, model, "rejected", elapsed if waited else 0.0)
            self.count(model, "", "rejected")
            raise Rejected(model, retry_after, message)
        if waited:
            self.held_for(model, {DIVERT: "diverted", EXPIRED: "hold_expired"}.get(
                action, "held"), elapsed)
        if action == DIVERT and target is not None:
            data["model"] = target
            record = "diverted"
        elif action == EXPIRED:
            if target is not None:
                data["model"] = target
            record = "hold_expired"
        elif waited:
            record = "held"
        else:  # on unchanged at once (the scheduler said go, or a divert to null)
            return
        self._record(data, model, record, elapsed if waited else 0.0)
        self.count(model, str(data.get("model")), record)

    @staticmethod
    def _record(data: dict[str, Any], model: str, action: str, elapsed: float) -> None:
        meta = data.get("metadata")
        if not isinstance(meta, dict):
            meta = data["metadata"] = {}
        meta[METADATA_KEY] = {"asked": model, "action": action,
                              "held_ms": int(round(elapsed * 1000))}

    async def _ask(self, data: dict[str, Any], model: str, state: State, held: _Held,
                   arrived: float) -> tuple[str, Any]:
        """Ask the scheduler about `model`: (PASS, None), (DIVERT, target), (EXPIRED,
        fallback) or ("reject", (retry_after, message)). Fails open by `awake` when it cannot
        be asked; the connection is closed however this ends (cancelled included), so the
        scheduler sees EOF and drops the request."""
        entry = state.ask[model]
        path = self.scheduler_path(state)
        deadline = self.clock() + entry.seconds
        writer: asyncio.StreamWriter | None = None
        reading: asyncio.Future[bytes] | None = None
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(path, limit=REPLY_LIMIT),
                    max(deadline - self.clock(), 0.001))
                writer.write(json.dumps({"v": PROTOCOL, "model": model, "id": uuid.uuid4().hex,
                                         "stream": bool(data.get("stream")),
                                         "waited": round(self.clock() - arrived, 3),
                                         "probe": _probe(data)}
                                        ).encode() + b"\n")
                reading = asyncio.ensure_future(reader.readline())
                # an answer within one poll is instant; beyond it, the request is held
                await asyncio.wait((reading,), timeout=max(
                    min(self.poll, deadline - self.clock()), 0))
                if not reading.done():
                    held.start()
                    await asyncio.wait((reading,), timeout=max(deadline - self.clock(), 0))
                if not reading.done():
                    return EXPIRED, entry.fallback
                line = reading.result()
            except TimeoutError:  # connecting took all of `seconds`
                return EXPIRED, entry.fallback
            except (OSError, EOFError, ValueError) as exc:  # ValueError: a line over the limit
                raise _Unreachable(f"cannot ask the scheduler ({type(exc).__name__}: "
                                   f"{getattr(exc, 'strerror', None) or exc})") from None
            result = _reply(line)
            self._scheduler_problems.clear()  # a later problem is news again
            return result
        except _Unreachable as exc:
            problem = f"{path}: {exc}"
            if problem not in self._scheduler_problems:
                self._scheduler_problems.add(problem)
                self.state_file.warn(f"{problem}; routing as before it existed (an awake member "
                                     "gets its requests, an asleep one's go to its fallback)")
            if entry.awake or entry.fallback is None:
                return PASS, None
            return DIVERT, entry.fallback
        finally:
            if reading is not None and not reading.done():
                reading.cancel()
            if writer is not None:
                writer.close()  # at once, not awaited: the scheduler sees EOF


METRIC = "stackctl_gateway_rerouted_requests"


def _counter() -> Callable[[str, str, str], None]:
    """Requests this hook held or sent to a fallback, as a Prometheus counter beside
    LiteLLM's own (the gateway's /metrics adds up every worker's, PROMETHEUS_MULTIPROC_DIR):
    LiteLLM counts only the fallbacks its router makes, and a diverted request is not one."""
    try:
        from prometheus_client import Counter
    except ImportError:
        return lambda asked, to, action: None
    counter = Counter(METRIC, "Requests for the members of exclusive GPU groups that the "
                      "gateway held during a switch or sent to a fallback "
                      "(action: diverted, held, hold_expired, rejected)",
                      ["requested_model", "fallback_model", "action"])

    def count(asked: str, to: str, action: str) -> None:
        counter.labels(asked, "" if action == "held" else to, action).inc()
    return count


HELD_METRIC = "stackctl_gateway_held_requests"
HOLD_METRIC = "stackctl_gateway_hold_seconds"
# seconds: a vLLM wake (~0.3 s) up to a cold start held for a long `hold`
HOLD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _hold_meters() -> tuple[Callable[[str, int], None], Callable[[str, str, float], None]]:
    """The queue: requests held now (a gauge summed over the live workers: each holds its
    own) and how long each held request waited, by how it left (held: released to its own
    model; hold_expired: its fallback after `hold` seconds; diverted: the switch ended
    without it)."""
    try:
        from prometheus_client import Gauge, Histogram
    except ImportError:
        return (lambda model, delta: None), (lambda model, action, s: None)
    gauge = Gauge(HELD_METRIC, "Requests the gateway holds now for a member being loaded, "
                  "summed over its workers", ["requested_model"], multiprocess_mode="livesum")
    hist = Histogram(HOLD_METRIC, "Seconds a held request waited, by how it left (held, rejected, "
                     "hold_expired, diverted)", ["requested_model", "action"],
                     buckets=HOLD_BUCKETS)

    def holding(model: str, delta: int) -> None:
        gauge.labels(model).inc(delta)

    def held_for(model: str, action: str, seconds: float) -> None:
        hist.labels(model, action).observe(seconds)
    return holding, held_for


def too_many_requests(rejected: Rejected) -> Exception:
    """What the hook raises for a rejected request: the proxy answers a ProxyException with
    its `code` as the HTTP status and its `headers` as response headers (its
    handle_llm_api_exception keeps them and adds its x-litellm-* ones; a ProxyRateLimitError
    would instead be retried on the router's fallbacks)."""
    from litellm.proxy._types import ProxyException

    exc = ProxyException(message=rejected.message, type="rate_limit_error", param=None,
                         code=429, headers={"Retry-After": str(rejected.retry_after)},
                         openai_code="rate_limit_exceeded")
    # a stream whose SSE keep-alive already opened the response gets an error frame instead
    # (status and headers are on the wire); that frame's message is read from `detail`
    exc.detail = rejected.message  # type: ignore[attr-defined]
    return exc


def _make_callback() -> Any:
    from litellm.integrations.custom_logger import CustomLogger

    class StackctlRouting(CustomLogger):  # type: ignore[misc]
        """Runs `Routing.pre_call`; the proxy awaits `async_pre_call_hook` only when it is
        defined in the registered class's own body (an inherited override is skipped)."""

        def __init__(self) -> None:
            super().__init__()
            holding, held_for = _hold_meters()
            self.routing = Routing(StateFile(default_path()), count=_counter(),
                                   holding=holding, held_for=held_for)

        async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type,  # type: ignore[no-untyped-def]
                                      **kwargs):
            try:
                await self.routing.pre_call(data, call_type)
            except Rejected as exc:
                raise too_many_requests(exc) from None
            return None  # `data` was changed in place

    return StackctlRouting()


_callback: Any = None


def __getattr__(name: str) -> Any:
    """`callback`, the instance the proxy loads, is built on first access: importing this
    module (stackctl's unit tests) does not import litellm."""
    global _callback
    if name == "callback":
        if _callback is None:
            _callback = _make_callback()
        return _callback
    raise AttributeError(name)
