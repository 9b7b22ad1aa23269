"""`bench`: time to first token, latency, tokens/s and requests/s of the stack's models, through
the gateway and straight to their providers, over a concurrency sweep.

Deciding is pure and tested as data: which targets to measure (`plan.plan_targets`),
percentiles and a cell's summary (`stats.summarize`), the knee of a sweep (`stats.knee`), the
gateway's overhead (`stats.overheads`) and the comparison with an earlier run
(`compare.compare`); the documents they make are in `report`. Doing is `run.run_bench`: it
sends the requests through an injected `send(target, prompt)` (the real one is
`sender.HttpSender`, with requests), one thread per concurrent client.

Definitions (the README and `--help` say the same):
- a *cell* is one model × route × concurrency: `requests` requests sent by `concurrency`
  threads, each starting its next request when its last one is answered; a warm-up request
  per model × route comes first and is not counted; a model's routes take turns at each
  concurrency (gateway c=1, direct c=1, gateway c=2, …) so both see the same machine load;
- latency: from sending the request to the last byte of the answer; TTFT (with `stream`):
  to the first SSE `data:` chunk whose delta has content;
- tokens: the answer's `usage.completion_tokens`; when a stream carries no usage, the
  content chunks counted (about one token each);
- tokens/s per request: median over the answered requests of tokens / latency; aggregate
  tokens/s: all tokens of the cell / its wall time; requests/s: answered requests / wall time;
- the knee of a sweep: walking up the concurrencies, a step *scales* when requests/s rise by
  at least 10 % and p50 latency grows by less than the concurrency's own factor (doubling
  the clients less than doubles the latency). The knee is the highest concurrency reached by
  an unbroken run of scaling steps from the lowest: beyond it more clients only queue. When
  every step scales, the knee is the last concurrency and `beyond_sweep` says the stack was
  not saturated.
"""
