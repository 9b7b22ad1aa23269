"""Stub inference server used by stackctl tests in place of vLLM / Ollama.

It answers with canned text that always says "stub" and names the instance, so a
test can tell which backend served a request.  It never runs a model.

Standard library only (runs on Debian bookworm's python3 3.11 with no pip
packages).  Start it with ``python3 -m inference_stub [vLLM serve arguments]``, the
folder holding this package on PYTHONPATH; as a Docker healthcheck use
``python3 -m inference_stub --healthcheck`` (exit 0 when ready, else 1).  The image holds
the package in /stub (PYTHONPATH=/stub) and its ENTRYPOINT is ``python3 -m inference_stub``,
so a compose ``command:`` list becomes these arguments.

Command-line arguments (vllm flavor only; any other argument exits 2)
-------------------------------------------------------------------
``--enable-sleep-mode``           as vLLM: /sleep really frees (simulated) GPU memory.
``--gpu-memory-utilization F``    0 < F <= 1, default 0.9: the share of the (simulated)
                                  GPU this instance claims while awake.

Environment variables
---------------------
==================== ============== ================================================
Variable             Default        Meaning
==================== ============== ================================================
STUB_FLAVOR          vllm           ``vllm`` (OpenAI API as served by vLLM) or
                                    ``ollama`` (Ollama API + its OpenAI /v1 routes).
STUB_MODELS          stub-model     Comma-separated served model names (vLLM
                                    ``--served-model-name``; Ollama tags such as
                                    ``qwen2.5-coder:7b``; a bare Ollama name gets
                                    ``:latest``, as in Ollama).  vLLM requests
                                    without ``model`` use the first one.
STUB_NAME            <flavor>-stub  Instance name put in every completion:
                                    ``[stub NAME] reply to: <first 40 chars>``.
STUB_PORT            8000           TCP port (0 = any free port; the log says which).
STUB_HOST            0.0.0.0        Bind address.
STUB_STARTUP_DELAY   0              Seconds (float) of simulated model loading.  The
                                    HTTP server is up at once but answers 503 (JSON
                                    error, ``Retry-After: 1``) on every route except
                                    /stub/* until loading is over.
STUB_NEVER_READY     (unset)        ``1``/``true``/``yes``/``on``: stay loading forever.
STUB_LATENCY_MS      0              Extra delay per request on model/completion
                                    routes (not on /health, /api/version, / or
                                    /stub/*).
STUB_ERROR_RATE      0              Probability 0..1 of answering 500 on completion
                                    routes (after the model name was validated).
STUB_TOKEN_DELAY_MS  5              Delay between streamed chunks.
STUB_SHUTDOWN_GRACE  10             Seconds in-flight requests (streams included)
                                    may still run after SIGTERM/SIGINT.
STUB_MAX_NUM_SEQS    256            vllm flavor: completions running at once (vLLM
                                    ``--max-num-seqs``); later ones wait in FCFS order.
STUB_KV_CACHE_TOKENS 65536          vllm flavor: simulated KV cache size in tokens
                                    (blocks of 16).  A request holds the blocks of its
                                    prompt and generated tokens while it runs, and
                                    waits while its prompt's blocks do not fit.
VLLM_SERVER_DEV_MODE 0              vllm flavor: ``1`` exposes vLLM's dev routes
                                    (/sleep, /wake_up, /is_sleeping, /collective_rpc);
                                    otherwise they answer 404 like FastAPI.
STUB_SLEEP_SECONDS   1.0            Time a /sleep takes (falling asleep).
STUB_WAKE_SECONDS    0.3            Time a /wake_up takes.
STUB_RELOAD_SECONDS  1.0            Time collective_rpc ``reload_weights`` takes.
STUB_GPU_DIR         (unset)        Simulated GPU shared by every stub that mounts the
                                    same directory (e.g. a named volume at /gpu): each
                                    records its claim there (see "Simulated GPU").
STUB_GPU_MEMORY_GIB  24             Total memory of the simulated GPU.
STUB_GPU_SLEEP_RESIDUAL_GIB 1.5     What a member sleeping with --enable-sleep-mode
                                    still holds (CUDA context, buffers).
STUB_WEIGHTS_GIB     4              Size of the weights, reported when sleep frees them.
==================== ============== ================================================

Invalid values make the process exit 2 with a "configuration error" log line.

Routes
------
vllm flavor:   GET /health (200, empty body), GET /v1/models,
               POST /v1/chat/completions, POST /v1/completions, GET /metrics
               (Prometheus text format: vLLM 0.11.0's metric names, types, HELP,
               labels and buckets, with values from the requests served; see
               "vLLM metrics" below).  Ollama has no /metrics (404).
               With VLLM_SERVER_DEV_MODE=1 (else 404 {"detail":"Not Found"}):
               POST /sleep?level=1|2&mode=abort|wait|keep (200, empty body, after
               STUB_SLEEP_SECONDS), POST /wake_up[?tags=weights&tags=kv_cache] (200,
               empty), GET /is_sleeping ({"is_sleeping": bool}), POST /collective_rpc
               {"method": "reload_weights"} (200, empty).  See "Sleep mode" below.
ollama flavor: GET|HEAD / ("Ollama is running"), GET /api/version, GET /api/tags,
               POST /api/chat, POST /api/generate (``stream`` defaults to true:
               NDJSON), GET /v1/models, POST /v1/chat/completions,
               POST /v1/completions.
both:          GET /stub/config, POST /stub/config (JSON with any of latency_ms,
               error_rate, token_delay_ms, ready), GET /stub/stats (request counts
               per route, model and status), DELETE /stub/stats (reset), GET /stub/gpu
               ({"total_gib", "free_gib", "claims": {name: {"gib", "state"}}}).
               /stub/* answers even while loading and is not counted in the stats.

OpenAI routes stream as ``text/event-stream`` (role chunk, one chunk per word,
final chunk with finish_reason, optional usage chunk when
``stream_options.include_usage``, then ``data: [DONE]``).  ``max_tokens`` /
``max_completion_tokens`` (Ollama: ``options.num_predict``) caps the number of
words; a capped answer ends with finish_reason / done_reason ``length``.

Sleep mode (vllm flavor, as vLLM's sleep mode with newer vLLM's scheduler pause)
------------------------------------------------------------------------------------
/sleep pauses the scheduler (mode abort: running and queued completions end with
finish_reason "abort", streams included; wait: /sleep returns once they are done; keep:
they freeze and go on after the wake), then "falls asleep".  While asleep, completion
requests are accepted and held (the HTTP request hangs) until a full wake; /health,
/v1/models and /metrics answer as usual.  /wake_up?tags=weights wakes part of the engine:
/is_sleeping stays true and serving resumes only when every tag is awake.  After a level-2
sleep with --enable-sleep-mode the weights are garbage until collective_rpc
reload_weights: completions then answer "[stub NAME] garbage ..." instead of the usual text.
A second /sleep (mode abort still aborts) or /wake_up while awake is a logged no-op.
Gauge vllm:engine_sleep_state{sleep_state=awake|weights_offloaded|discard_all}: 1/0/0
awake, 0/1/0 level 1, 0/0/1 level 2.  Without --enable-sleep-mode /sleep still answers
200 and /is_sleeping turns true, but nothing is freed ("Sleep mode freed 0.00 GiB").

Simulated GPU (STUB_GPU_DIR set)
--------------------------------
Each member claims gpu_memory_utilization x STUB_GPU_MEMORY_GIB while awake,
STUB_GPU_SLEEP_RESIDUAL_GIB while asleep with --enable-sleep-mode (the full claim when
asleep without it).  It writes its claim to STUB_GPU_DIR/<STUB_NAME>.claim and holds an
exclusive flock on STUB_GPU_DIR/<STUB_NAME>.lock for its whole life: a claim whose lock
can be taken belongs to a dead (e.g. SIGKILLed) member and is ignored.  Claim changes are
serialized by a flock on STUB_GPU_DIR/.gpu.lock.  At startup, before binding the port,
a claim larger than the free memory fails as vLLM does (``ValueError: Free memory on
device cuda:0 ...`` then ``RuntimeError: Engine core initialization failed ...``, exit
1).  A /wake_up whose memory does not fit beside the others logs
``torch.OutOfMemoryError: CUDA out of memory ...``, answers 500 and exits 1: the stub's
choice for "the engine dies" (a real vLLM's engine core dies on such an error).

Shutdown: on SIGTERM or SIGINT the listening socket is closed at once, requests
already being served run to completion (up to STUB_SHUTDOWN_GRACE seconds), then
the process exits 0.  A second signal exits immediately with status 1.

Every request is logged to stderr as one line: method, path, status, duration.
"""

# The package (stdlib only, relative imports: it runs as the top-level package
# ``inference_stub`` in the image and imports as ``stackctl.incontainer.inference_stub``):
#   cli         entry points: main, serve, healthcheck      (__main__: python3 -m)
#   settings    environment and vLLM arguments -> Settings  log: the one log line format
#   runtime     state shared by the request threads (config, stats, readiness)
#   server      HTTP server, handler plumbing, errors        handler: dispatch, route tables
#   openai_api  /v1/* (vLLM, Ollama's OpenAI routes)         ollama_api: Ollama's native API
#   vllm_api    vLLM's /health, /metrics and dev routes (/sleep, /wake_up, ...)
#   sleep       vLLM's sleep mode                            gpu: the simulated shared GPU
#   metrics     vLLM's scheduler and /metrics series         generation: the canned answers
