"""Ollama's native API: liveness, the tag list, chat and generate (NDJSON streams)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime

from .generation import Generation, chat_texts
from .server import RequestError

OLLAMA_VERSION = "0.12.6"


def iso_now():
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def ndjson(obj):
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class OllamaApi:
    """Routes of Ollama's own API (mixed into handler.StubHandler)."""

    @staticmethod
    def _limit_ollama(req):
        options = req.get("options") or {}
        if not isinstance(options, dict):
            raise RequestError(400, "options must be an object")
        value = options.get("num_predict")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(400, "num_predict must be an integer")
        return value if value > 0 else None  # -1 / -2 mean "no limit" in Ollama

    def h_ollama_root(self):
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def h_ollama_version(self):
        self._send_json(200, {"version": OLLAMA_VERSION})

    def h_ollama_tags(self):
        modified = datetime.fromtimestamp(self.runtime.started, UTC)
        modified_at = modified.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
        models = []
        for model in self.settings.models:
            digest = hashlib.sha256(model.encode()).hexdigest()
            match = re.search(r"(\d+(?:\.\d+)?)([bm])\b", model.rsplit(":", 1)[-1], re.IGNORECASE)
            size_label = f"{match.group(1)}{match.group(2).upper()}" if match else "unknown"
            models.append(
                {
                    "name": model,
                    "model": model,
                    "modified_at": modified_at,
                    "size": 100_000_000 + int(digest[:8], 16) % 4_000_000_000,
                    "digest": digest,
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "stub",
                        "families": ["stub"],
                        "parameter_size": size_label,
                        "quantization_level": "Q4_K_M",
                    },
                }
            )
        self._send_json(200, {"models": models})

    # ----------------------------------------------------------------- Ollama native
    def h_ollama_chat(self):
        req = self._json_body()
        model = self._resolve_model(req)
        messages = req.get("messages")
        if messages is not None and not isinstance(messages, list):
            raise RequestError(400, "messages must be a list")
        limit = self._limit_ollama(req)
        if not messages:  # Ollama: chat without messages just loads the model
            return self._send_json(
                200,
                {
                    "model": model,
                    "created_at": iso_now(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": "load",
                    "done": True,
                },
            )
        self._maybe_fail()
        last_user, everything = chat_texts(messages)
        gen = Generation(self.settings.name, last_user, everything, limit)
        self._ollama_respond(req, model, gen, chat=True)

    def h_ollama_generate(self):
        req = self._json_body()
        model = self._resolve_model(req)
        prompt = req.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise RequestError(400, "prompt must be a string")
        limit = self._limit_ollama(req)
        if not prompt:  # Ollama: generate without prompt just loads the model
            return self._send_json(
                200,
                {
                    "model": model,
                    "created_at": iso_now(),
                    "response": "",
                    "done": True,
                    "done_reason": "load",
                },
            )
        self._maybe_fail()
        system = req.get("system") if isinstance(req.get("system"), str) else ""
        gen = Generation(self.settings.name, prompt, f"{system} {prompt}", limit)
        self._ollama_respond(req, model, gen, chat=False)

    def _ollama_respond(self, req, model, gen, chat):
        t0 = time.monotonic_ns()
        stream = req.get("stream", True)  # Ollama streams unless told otherwise
        stream = True if stream is None else bool(stream)

        def partial(text):
            out = {"model": model, "created_at": iso_now()}
            if chat:
                out["message"] = {"role": "assistant", "content": text}
            else:
                out["response"] = text
            return out

        def final(text):
            out = partial(text)
            total = max(time.monotonic_ns() - t0, 1000)
            out.update(
                {
                    "done": True,
                    "done_reason": gen.finish_reason,
                    "total_duration": total,
                    "load_duration": min(total, 250_000),
                    "prompt_eval_count": gen.prompt_tokens,
                    "prompt_eval_duration": min(total, 1_000_000),
                    "eval_count": gen.completion_tokens,
                    "eval_duration": total,
                }
            )
            if not chat:
                out["context"] = list(range(1, gen.prompt_tokens + gen.completion_tokens + 1))
            return out

        if not stream:
            return self._send_json(200, final(gen.text))
        self._start(200, "application/x-ndjson")
        delay = self.runtime.token_delay()
        for index, piece in enumerate(gen.pieces):
            if index:
                self._pause(delay)
            chunk = partial(piece)
            chunk["done"] = False
            self._write(ndjson(chunk))
        self._pause(delay)
        self._write(ndjson(final("")))
        self._end_stream()
