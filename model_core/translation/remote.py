"""Text translation (Chinese -> English) through an OpenAI-compatible chat-completions server.

Used by the llm-fallback node; works with llama-cpp-python's server (`dfn-llama-server`), vLLM, or a hosted API.

- The API key comes from an environment variable whose *name* is configurable. It goes into the Authorization
  header and nowhere else: not into logs, results, reprs or error messages (server replies are redacted too).
- Replies are streamed (SSE `data:` lines ending with `data: [DONE]`); the delta contents are assembled.
  A stream that ends without [DONE] and without a finish_reason is truncated: an error, not a translation.
- Connect errors, timeouts, HTTP 5xx and 429 are retried a bounded number of times with exponential backoff and
  jitter (Retry-After is honoured, capped). Other 4xx are not retried.
- A circuit breaker counts consecutive failed translations (after their retries); at `breaker_failures` it opens
  for `breaker_cooldown_s`, during which calls raise ServiceUnavailable without touching the network. Then one
  trial request (half-open, no retries) decides: success closes it, failure opens it again.

Errors: TranslationFailed (retries exhausted, HTTP errors, malformed/truncated/empty replies) and its subclass
ServiceUnavailable (breaker open).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from ..common.errors import TranslationFailed
from .base import Translation, require_text
from .breaker import CircuitBreaker
from .prompt import build_messages, clean_output

REDACT_WINDOW = 6  # the shortest piece of the API key that is never shown


class _Retryable(Exception):
    """An attempt failed in a way worth retrying; `message` is already safe to show."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Broken(Exception):
    """The server answered with a broken reply (malformed, truncated): not retried, counts for the breaker."""


class _Refused(Exception):
    """HTTP 4xx other than 429: not retried, and the service is up, so it does not count for the breaker."""


class RemoteTranslator:
    """Translate text with an OpenAI-compatible `/chat/completions` endpoint (streaming). Not thread-safe."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080/v1",
        model: str = "qwen2.5-coder-0.5b-instruct",
        api_key_env: str = "OPENAI_API_KEY",
        *,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 30.0,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 8.0,
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 30.0,
        max_output_tokens: int = 256,
        temperature: float = 0.0,
        env: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env = model, api_key_env
        self.max_retries, self.backoff_s, self.backoff_max_s = max_retries, retry_backoff_s, retry_backoff_max_s
        self.max_output_tokens, self.temperature = max_output_tokens, temperature
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown_s)
        self._sleep = sleep
        self._key = ((os.environ if env is None else env).get(api_key_env) or "").strip()
        if not (self._key.isascii() and self._key.isprintable()):  # httpx would quote it in its exception
            raise ValueError(f"${api_key_env} holds characters an HTTP header cannot carry (its value is not shown)")
        headers = {"Accept": "text/event-stream"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._http = httpx.Client(timeout=timeout, headers=headers, transport=transport, trust_env=False)

    def __repr__(self) -> str:  # never show the key
        key = "set" if self._key else "unset"
        return f"RemoteTranslator(url={self.url!r}, model={self.model!r}, key ${self.api_key_env} {key})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteTranslator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _redact(self, text: str) -> str:
        """`text` without the key or any piece of it (REDACT_WINDOW characters or more): servers echo keys
        masked to their first and last characters, and such pieces add up."""
        if not self._key:
            return text
        text = text.replace(self._key, "***")
        width = min(REDACT_WINDOW, len(self._key))
        for i in range(len(self._key) - width + 1):
            text = text.replace(self._key[i : i + width], "***")
        return text

    def translate(
        self,
        text: str,
        *,
        source_language: str = "zh",
        context: Sequence[str] = (),
        on_partial: Callable[[str], None] | None = None,
    ) -> Translation:
        """English translation of `text`. `on_partial(text_so_far)` is called as deltas arrive.

        Raises ServiceUnavailable (breaker open) or TranslationFailed.
        """
        require_text(text)
        t0 = time.perf_counter()
        trial = self.breaker.acquire()
        body = {
            "model": self.model,
            "messages": build_messages(text, source_language, context),
            "max_tokens": self.max_output_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        attempts_allowed = 1 if trial else 1 + self.max_retries  # the half-open trial is one request
        attempts = 0
        try:
            while True:
                attempts += 1
                try:
                    out, finish = self._attempt(body, on_partial)
                    break
                except _Retryable as exc:
                    if attempts >= attempts_allowed:
                        note = " (half-open trial)" if trial else ""
                        raise _Broken(f"remote LLM failed after {attempts} attempt(s){note}: {exc}") from None
                    self._sleep(self._backoff(attempts, exc.retry_after_s))
        except _Refused as exc:
            self.breaker.record_success()
            raise TranslationFailed(str(exc)) from None
        except _Broken as exc:
            self.breaker.record_failure()
            raise TranslationFailed(str(exc)) from None
        except Exception as exc:  # anything unexpected is still one typed failure
            self.breaker.record_failure()
            raise TranslationFailed(self._redact(f"remote LLM client error: {type(exc).__name__}: {exc}")) from None
        # the service works; an empty answer is the model's failure, not the service's
        self.breaker.record_success()
        out = self._redact(clean_output(out))  # a server that echoes the request must not put the key in results
        if not out:
            raise TranslationFailed(f"remote LLM returned an empty translation (finish_reason={finish or 'none'})")
        return Translation(out, attempts, finish, time.perf_counter() - t0)

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
        delay *= 0.5 + 0.5 * random.random()  # jitter: retries from many clients do not line up
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay

    def _attempt(self, body: dict[str, Any], on_partial: Callable[[str], None] | None) -> tuple[str, str]:
        """One HTTP request -> (text, finish_reason). Raises _Retryable, _Broken or _Refused."""
        try:
            with self._http.stream("POST", self.url, json=body) as response:
                if response.status_code != 200:
                    self._raise_for_status(response)
                if response.headers.get("content-type", "").startswith("application/json"):
                    return self._read_json(response.read())  # a server that ignored stream=true
                return self._read_stream(response, on_partial)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(self._redact(f"{type(exc).__name__}: {exc}")) from None

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        try:
            detail = self._redact(response.read().decode("utf-8", "replace").strip())[:200]
        except httpx.HTTPError:
            detail = ""
        if status == 429 or status >= 500:
            retry_after = response.headers.get("retry-after", "")
            seconds = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
            raise _Retryable(f"HTTP {status} {detail}".strip(), seconds)
        if status in (401, 403):  # auth replies may echo (parts of) the key: show none of the body
            raise _Refused(f"remote LLM rejected the credentials (HTTP {status}); check ${self.api_key_env}")
        raise _Refused(f"remote LLM refused the request (HTTP {status}) {detail}".strip())

    def _read_json(self, raw: bytes) -> tuple[str, str]:
        try:
            choice = json.loads(raw)["choices"][0]
            return choice["message"]["content"] or "", choice.get("finish_reason") or ""
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Broken("remote LLM sent a malformed JSON reply") from None

    def _read_stream(self, response: httpx.Response, on_partial: Callable[[str], None] | None) -> tuple[str, str]:
        pieces: list[str] = []
        finish = ""
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                return "".join(pieces), finish
            try:
                chunk = json.loads(data)
            except ValueError:
                raise _Broken(f"remote LLM sent a malformed stream chunk: {self._redact(data)[:80]!r}") from None
            if not isinstance(chunk, dict):
                raise _Broken("remote LLM sent a malformed stream chunk (not an object)")
            if "error" in chunk:
                raise _Broken(self._redact(f"remote LLM reported an error mid-stream: {chunk['error']}")[:300])
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    pieces.append(content)
                    if on_partial is not None:
                        on_partial(self._redact("".join(pieces)))
                finish = choice.get("finish_reason") or finish
        if finish:  # some servers close right after the finishing chunk without [DONE]
            return "".join(pieces), finish
        raise _Broken(f"remote LLM stream was truncated (no [DONE], no finish_reason) after {len(pieces)} chunk(s)")
