"""The OpenAI API as vLLM serves it (Ollama serves the same routes under /v1): model list,
chat and text completions, plain or streamed as server-sent events."""

from __future__ import annotations

import json
import random
import time
import uuid

from .generation import Generation, chat_texts
from .server import RequestError
from .settings import MAX_MODEL_LEN


def sse(obj):
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class OpenAIApi:
    """Routes of the OpenAI API (mixed into handler.StubHandler)."""

    @staticmethod
    def _limit_openai(req):
        for key in ("max_completion_tokens", "max_tokens"):
            value = req.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RequestError(400, f"{key} must be at least 1, got {value!r}.")
            return value
        return None

    # ----------------------------------------------------------------- model lists
    def h_openai_models(self):
        created = int(self.runtime.started)
        data = []
        for model in self.settings.models:
            if self.settings.flavor == "vllm":
                data.append(
                    {
                        "id": model,
                        "object": "model",
                        "created": created,
                        "owned_by": "vllm",
                        "root": model,
                        "parent": None,
                        "max_model_len": MAX_MODEL_LEN,
                        "permission": [
                            {
                                "id": f"modelperm-{uuid.uuid4().hex}",
                                "object": "model_permission",
                                "created": created,
                                "allow_create_engine": False,
                                "allow_sampling": True,
                                "allow_logprobs": True,
                                "allow_search_indices": False,
                                "allow_view": True,
                                "allow_fine_tuning": False,
                                "organization": "*",
                                "group": None,
                                "is_blocking": False,
                            }
                        ],
                    }
                )
            else:
                owner = model.split("/")[-2] if "/" in model else "library"
                data.append({"id": model, "object": "model", "created": created, "owned_by": owner})
        self._send_json(200, {"object": "list", "data": data})

    # ----------------------------------------------------------------- OpenAI completions
    def h_openai_chat(self):
        req = self._json_body()
        model = self._resolve_model(req)
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "messages must be a non-empty list")
        limit = self._limit_openai(req)
        self._maybe_fail()
        last_user, everything = chat_texts(messages)
        gen = Generation(self.settings.name, last_user, everything, limit)
        self._openai_respond(req, model, gen, chat=True)

    def h_openai_completions(self):
        req = self._json_body()
        model = self._resolve_model(req)
        prompt = req.get("prompt")
        if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompt = prompt[0]
        elif isinstance(prompt, list) and prompt:
            prompt = "(token ids)"
        if not isinstance(prompt, str):
            raise RequestError(400, "prompt must be a string or a list of strings")
        limit = self._limit_openai(req)
        self._maybe_fail()
        gen = Generation(self.settings.name, prompt, prompt, limit)
        self._openai_respond(req, model, gen, chat=False)

    def _openai_respond(self, req, model, gen, chat):
        metrics = self.runtime.metrics
        self._epoch = None
        if metrics is None:
            return self._openai_write(req, model, gen, chat, None)
        engine = self.runtime.engine
        self._epoch = epoch = engine.enter()  # held here while the engine sleeps
        try:
            if epoch is None:  # aborted by a /sleep while it was held
                gen.abort(0)
            elif engine.weights_garbage():
                gen.garble()
            trace = metrics.admit(self._t0, gen.prompt_tokens)
            reason = "abort"  # unless the whole answer was written (a client that hung up)
            try:
                self._openai_write(req, model, gen, chat, trace)
                reason = gen.finish_reason
            finally:
                trace.finish(reason)
        finally:
            if epoch is not None:
                engine.leave()

    def _running(self):
        """False once the request was aborted by /sleep; waits while frozen (mode=keep)."""
        engine = self.runtime.engine
        return engine is None or engine.step(self._epoch)

    def _openai_write(self, req, model, gen, chat, trace):
        vllm = self.settings.flavor == "vllm"
        if vllm:
            rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        else:
            rid = ("chatcmpl-" if chat else "cmpl-") + str(random.randint(0, 999))
        created = int(time.time())
        base = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": created,
            "model": model,
        }
        if not vllm:
            base["system_fingerprint"] = "fp_ollama"

        def choice(**fields):
            out = {"index": 0}
            out.update(fields)
            if vllm:
                out.setdefault("logprobs", None)
            return out

        stream = bool(req.get("stream", False))
        if not stream:
            if gen.finish_reason != "abort" and not self._running():
                gen.abort(0)
            if trace is not None and gen.completion_tokens:  # the whole answer in one step
                trace.tokens(gen.completion_tokens)
            if chat:
                message = {"role": "assistant", "content": gen.text}
                if vllm:
                    message.update({"reasoning_content": None, "tool_calls": []})
                ch = choice(message=message, finish_reason=gen.finish_reason)
            else:
                ch = choice(text=gen.text, finish_reason=gen.finish_reason)
            if vllm:
                ch["stop_reason"] = None
            body = dict(base, choices=[ch], usage=gen.usage())
            if vllm:
                body["prompt_logprobs"] = None
            return self._send_json(200, body)

        options = req.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        if chat:
            base["object"] = "chat.completion.chunk"
        self._start(
            200, "text/event-stream; charset=utf-8", headers=[("Cache-Control", "no-cache")]
        )
        delay = self.runtime.token_delay()
        first = True

        def emit(obj):
            nonlocal first
            if not first:
                self._pause(delay)
            first = False
            self._write(sse(obj))

        if chat:
            emit(
                dict(
                    base,
                    choices=[
                        choice(delta={"role": "assistant", "content": ""}, finish_reason=None)
                    ],
                )
            )
        for index, piece in enumerate(list(gen.pieces)):
            if not self._running():
                gen.abort(index)
                break
            if chat:
                ch = choice(delta={"content": piece}, finish_reason=None)
            else:
                ch = choice(text=piece, finish_reason=None)
            emit(dict(base, choices=[ch]))
            if trace is not None:
                trace.tokens()
        final = (
            choice(delta={}, finish_reason=gen.finish_reason)
            if chat
            else choice(text="", finish_reason=gen.finish_reason)
        )
        if vllm:
            final["stop_reason"] = None
        emit(dict(base, choices=[final]))
        if include_usage:
            emit(dict(base, choices=[], usage=gen.usage()))
        self._write(b"data: [DONE]\n\n")
        self._end_stream()
