"""llm-fallback: Chinese transcripts -> English through an OpenAI-compatible chat-completions server.

Inputs:
- `text`: transcripts with segment ids. Only final messages (fin=true, or no fin) are translated; partials are
  ignored. Text whose `language` is "en" is passed through unchanged (translator "none") instead of paying a
  round trip; every other language (zh, or missing) is translated, the prompt naming zh/yue/ja/ko when given.
- `error`: error messages routed here from a local translator. A TranslationFailed (or ModelNotLoaded) error
  that carries the original transcript in metadata `source_text` (language in `source_language`, default zh) is
  translated remotely; any other error (another code, or no `source_text`) is re-emitted unchanged on `error`,
  so the segment still gets its one error.

Outputs:
- `text`: the English translation: language "en", fin=true, the segment ids copied, `translator: "remote"`,
  `translate_s` (seconds), `llm_attempts`, `finish_reason` ("length" = cut at MAX_OUTPUT_TOKENS).
  With STREAM_PARTIALS=true, partial English texts (fin=false, seq 0, 1, ...; each the whole text so far) come
  first; a retried request restarts them.
  With STREAM_ON_SENTENCE=true, transcripts are translated sentence by sentence (split on 。！？!? and a
  SENTENCE_MAX_CHARS cap), including the sentences that partial transcripts (fin=false, e.g. the funasr node's
  PARTIAL_EVERY) have completed: each translated sentence sends a partial (fin=false; the English so far;
  `source_text` = that Chinese sentence) before the segment's final.
- `error`: one typed error per segment that could not be translated (TranslationFailed, or ServiceUnavailable
  while the circuit breaker is open), ids copied.
- `ready`: sent once at start.
Invariant: every input segment yields exactly one final text or one error.

Requests are made one at a time in the event loop: a slow server delays later segments (bounded by the timeouts,
retries and the breaker). The API key is read from the env var named by LLM_API_KEY_ENV and never logged.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from dora_funasr_nano.model_core.common.errors import FunAsrNanoError, ModelNotLoaded, TranslationFailed
from dora_funasr_nano.model_core.translation.base import require_text
from dora_funasr_nano.model_core.translation.remote import RemoteTranslator
from dora_funasr_nano.model_core.translation.sentences import SentenceStreamer

from .config import load_config
from .contract import error_message, read_error, read_text, segment_ids, send_ready, text_message
from .events import input_events


@dataclass
class LlmFallbackConfig:
    """Remote LLM translation (OpenAI-compatible chat completions)."""

    llm_base_url: str = "http://127.0.0.1:8080/v1"
    llm_model: str = "qwen2.5-coder-0.5b-instruct"  # llama-cpp-python's server answers with its one model anyway
    llm_api_key_env: str = "OPENAI_API_KEY"  # NAME of the env var holding the key; unset/empty = no Authorization
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0  # longest wait for the next bytes of a reply
    max_retries: int = 2  # extra attempts on connect errors, timeouts, HTTP 5xx/429
    retry_backoff_s: float = 0.5  # first backoff; doubles per retry (with jitter), capped at 8 s
    breaker_failures: int = 3  # consecutive failed translations that open the circuit
    breaker_cooldown_s: float = 30.0  # open this long (fail fast), then one trial request
    max_output_tokens: int = 256
    temperature: float = 0.0
    context_sentences: int = 0  # previous final transcripts of the session sent as context
    stream_partials: bool = False  # also send partial English texts (fin=false) while streaming
    stream_on_sentence: bool = False  # translate each sentence once complete (also from partial transcripts)
    sentence_max_chars: int = 80  # length cap of one sentence when there is no sentence end

    def __post_init__(self) -> None:
        for name in ("max_retries", "context_sentences"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.upper()} must be >= 0")
        if self.breaker_failures < 1:
            raise ValueError("BREAKER_FAILURES must be >= 1")

    def translator(self) -> RemoteTranslator:
        return RemoteTranslator(
            self.llm_base_url, self.llm_model, self.llm_api_key_env,
            connect_timeout_s=self.connect_timeout_s, read_timeout_s=self.read_timeout_s,
            max_retries=self.max_retries, retry_backoff_s=self.retry_backoff_s,
            breaker_failures=self.breaker_failures, breaker_cooldown_s=self.breaker_cooldown_s,
            max_output_tokens=self.max_output_tokens, temperature=self.temperature,
        )  # fmt: skip


MAX_OPEN_SEGMENTS = 64


class _SegmentStream:
    """One segment being translated sentence by sentence; each translated sentence is sent as a partial
    (fin=false) carrying all the English so far."""

    def __init__(self, owner: LlmFallbackNode, ids: dict[str, Any], language: str) -> None:
        self.partials, self.failed = 0, False

        def on_sentence(chinese: str, english: str) -> None:
            meta = {**ids, "translator": owner.label, "source_text": chinese}
            owner.node.send_output("text", *text_message(self.streamer.english, "en", fin=False, seq=self.partials,
                                                         **meta))  # fmt: skip
            self.partials += 1

        self.streamer = SentenceStreamer(
            owner.translator, source_language=language, context=owner._context(ids),
            context_sentences=max(owner.cfg.context_sentences, 2), max_chars=owner.cfg.sentence_max_chars,
            on_partial=on_sentence,
        )  # fmt: skip


class LlmFallbackNode:
    """Also the translate-text node: `translator` is anything with translate(text, source_language=, context=,
    on_partial=) -> Translation; `label` goes into the `translator` metadata."""

    def __init__(self, node: Any, cfg: LlmFallbackConfig, translator: Any, label: str = "remote") -> None:
        self.node, self.cfg, self.translator, self.label = node, cfg, translator, label
        self.history: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=max(cfg.context_sentences, 1)))
        self.streams: dict[tuple[Any, Any], _SegmentStream] = {}  # STREAM_ON_SENTENCE: per segment in progress

    def on_text(self, value: Any, metadata: dict[str, Any]) -> None:
        text, language = read_text(value), str(metadata.get("language", "zh"))
        if not metadata.get("fin", True):
            if self.cfg.stream_on_sentence and language != "en":
                self.on_partial_transcript(text, language, metadata)
            return
        if language == "en":
            meta = {**segment_ids(metadata), "translator": "none", "translate_s": 0.0}
            self.node.send_output("text", *text_message(text, "en", **meta))
            return
        self.translate(text, language, metadata)

    def on_error(self, value: Any, metadata: dict[str, Any]) -> None:
        try:
            code = metadata.get("code") or read_error(value).get("code")
        except (ValueError, AttributeError):
            code = None
        source = metadata.get("source_text")
        # a failed local translation (TranslationFailed, or ModelNotLoaded when its model is missing) carries the
        # transcript: take it over. Other errors (no transcript: audio, ASR) are passed on unchanged.
        if code in (TranslationFailed.__name__, ModelNotLoaded.__name__) and isinstance(source, str):
            self.translate(source, str(metadata.get("source_language", "zh")), metadata)
        else:
            self.node.send_output("error", value, {k: v for k, v in metadata.items() if k != "timestamp"})

    def _context(self, ids: dict[str, Any]) -> list[str]:
        session = str(ids.get("session_id", ""))
        return list(self.history[session])[-self.cfg.context_sentences :] if self.cfg.context_sentences else []

    def _streamer(self, ids: dict[str, Any], language: str, final: bool = False) -> _SegmentStream:
        """The segment's sentence stream (a new one after a failure); the final transcript takes it out."""
        key = (ids.get("session_id"), ids.get("segment_id"))
        stream = self.streams.pop(key, None)
        if stream is None or stream.failed:
            stream = _SegmentStream(self, ids, language)
        if not final:
            self.streams[key] = stream
            while len(self.streams) > MAX_OPEN_SEGMENTS:  # segments whose final never came (an upstream error)
                self.streams.pop(next(iter(self.streams)))
        return stream

    def on_partial_transcript(self, text: str, language: str, metadata: dict[str, Any]) -> None:
        """STREAM_ON_SENTENCE: translate the sentences a partial transcript has completed. A failure here sends
        nothing (the final transcript is translated again and gets the segment's one result or error)."""
        stream = self._streamer(segment_ids(metadata), language)
        try:
            stream.streamer.feed(text)
        except Exception as exc:  # noqa: BLE001
            stream.failed = True
            print(f"[{self.label}] sentence translation failed on a partial transcript: {exc}", file=sys.stderr)

    def translate(self, text: str, language: str, metadata: dict[str, Any]) -> None:
        ids = segment_ids(metadata)
        partials = 0

        def on_partial(so_far: str) -> None:
            nonlocal partials
            meta = {**ids, "translator": self.label}
            self.node.send_output("text", *text_message(so_far, "en", fin=False, seq=partials, **meta))
            partials += 1

        t0 = time.perf_counter()
        try:
            stream = self._streamer(ids, language, final=True) if self.cfg.stream_on_sentence else None
            require_text(text)
            if stream is not None:
                result = stream.streamer.finish(text)
                partials = stream.partials
            else:
                result = self.translator.translate(
                    text, source_language=language, context=self._context(ids),
                    on_partial=on_partial if self.cfg.stream_partials else None,
                )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - whatever breaks, the segment still gets its one typed error
            if not isinstance(exc, FunAsrNanoError):
                exc = TranslationFailed(f"{type(exc).__name__}: {exc}")
            elapsed = round(time.perf_counter() - t0, 4)
            # the transcript travels with the error, so a fallback node can translate it (fallback graph)
            extra = {"translator": self.label, "translate_s": elapsed, "source_text": text, "source_language": language}
            self.node.send_output("error", *error_message(exc, **ids, **extra))
            return
        if self.cfg.context_sentences:
            self.history[str(ids.get("session_id", ""))].append(text)
        meta = {
            **ids, "translator": self.label, "translate_s": round(time.perf_counter() - t0, 4),
            "llm_attempts": result.attempts, "finish_reason": result.finish_reason, "source_language": language,
        }  # fmt: skip
        self.node.send_output("text", *text_message(result.text, "en", seq=partials, **meta))

    def run(self) -> LlmFallbackNode:
        send_ready(self.node, getattr(self.translator, "error", None))  # set when the translator failed to load
        for input_id, value, metadata in input_events(self.node):
            if input_id == "text":
                self.on_text(value, metadata)
            elif input_id == "error":
                self.on_error(value, metadata)
        return self


def run(node: Any, cfg: LlmFallbackConfig, translator: RemoteTranslator | None = None) -> LlmFallbackNode:
    own = translator is None
    translator = cfg.translator() if own else translator
    print(f"[llm-fallback] {translator!r}", file=sys.stderr)
    try:
        return LlmFallbackNode(node, cfg, translator).run()
    finally:
        if own:
            translator.close()


def main() -> None:
    from dora import Node

    cfg = load_config(LlmFallbackConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
