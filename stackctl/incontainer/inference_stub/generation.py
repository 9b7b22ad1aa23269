"""The canned answer of a completion, and the text of a chat request."""

from __future__ import annotations

import hashlib
import re

SNIPPET_CHARS = 40


GARBAGE_TOKENS = ("\u2047", "<unk>", "\u0120\u0120", "\ufffd", "ilerin", "\u00e3\u0123",
                  "PostalCodesNL", "\u2581\u2581")  # fmt: skip


class Generation:
    """The canned answer for one request, split into word-sized tokens."""

    def __init__(self, name, last_user, prompt_text, limit):
        snippet = " ".join(last_user.split())[:SNIPPET_CHARS].rstrip()
        self.name = name
        self.limit = limit
        self.prompt_tokens = max(1, len(prompt_text.split()))
        self._set(f"[stub {name}] reply to: {snippet or '(no user message)'}")

    def _set(self, text):
        pieces = re.findall(r"\s*\S+", text)
        self.finish_reason = "stop"
        if self.limit is not None and len(pieces) > self.limit:
            pieces = pieces[: self.limit]
            self.finish_reason = "length"
        self.pieces = pieces
        self.text = "".join(pieces)
        self.completion_tokens = len(pieces)

    def garble(self):
        """The weights were discarded by a level-2 sleep and never reloaded."""
        digest = hashlib.sha256(self.text.encode()).digest()
        junk = " ".join(GARBAGE_TOKENS[b % len(GARBAGE_TOKENS)] for b in digest[:8])
        self._set(f"[stub {self.name}] garbage (weights not reloaded after sleep level 2): {junk}")

    def abort(self, generated):
        """Aborted after `generated` tokens (finish_reason "abort")."""
        self.pieces = self.pieces[:generated]
        self.text = "".join(self.pieces)
        self.completion_tokens = len(self.pieces)
        self.finish_reason = "abort"

    def usage(self):
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def content_text(content):
    """Text of an OpenAI/Ollama message content (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return ""


def chat_texts(messages):
    """(last user message text, all message text) of a chat request."""
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = content_text(message.get("content"))
            break
    everything = " ".join(content_text(m.get("content")) for m in messages if isinstance(m, dict))
    return last_user, everything

