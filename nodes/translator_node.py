"""What both text-translation nodes share (translate-text: a local model; llm-fallback: a server).

Input `text`: final transcripts are translated (model_core.translation.segments: per-session context, sentence
streams), English ones passed through as translator "none"; partial transcripts (fin=false) only feed
STREAM_ON_SENTENCE. Input `error`: a TranslationFailed or ModelNotLoaded error from a local translator that carries
`source_text` (language in `source_language`, default zh) is translated here; any other error is re-emitted
unchanged. Outputs `text` (English: language "en", the ids, translator, translate_s, llm_attempts, finish_reason,
source_language; partials with fin=false first when streaming), `error` (typed, with `source_text` so a fallback
node can take the segment over) and `ready`. Invariant: every input segment yields exactly one final or one error.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from dora_funasr_nano.model_core.common.errors import (
    FunAsrNanoError,
    InvalidText,
    ModelNotLoaded,
    TextTooLong,
    TranslationFailed,
)  # fmt: skip
from dora_funasr_nano.model_core.common.text import MAX_TEXT_CHARS
from dora_funasr_nano.model_core.translation.base import Translator
from dora_funasr_nano.model_core.translation.segments import OnPartial, SegmentOptions, SegmentTranslator

from .contract import (
    Key,
    Port,
    asr_timing,
    error_message,
    read_error,
    read_one_text,
    segment_ids,
    send_ready,
    text_message,
)
from .events import input_events


class TranslatorNode:
    """`translator` is any Translator, `label` goes into the `translator` metadata, and `load_error` (the
    translator could not load: it raises that error for every segment) is announced on `ready`."""

    def __init__(self, node: Any, cfg: SegmentOptions, translator: Translator, label: str = "remote",
                 load_error: FunAsrNanoError | None = None) -> None:  # fmt: skip
        self.node, self.label, self.load_error = node, label, load_error
        self.segments = SegmentTranslator(translator, cfg)

    def _send_partial(self, ids: dict[str, Any]) -> OnPartial:
        def send(english: str, seq: int, source: str) -> None:
            meta = {**ids, Key.TRANSLATOR: self.label, **({Key.SOURCE_TEXT: source} if source else {})}
            self.node.send_output(Port.TEXT, *text_message(english, "en", fin=False, seq=seq, **meta))

        return send

    def on_text(self, value: Any, metadata: dict[str, Any]) -> None:
        ids = segment_ids(metadata)
        if not isinstance(ids.get(Key.SESSION_ID), str) or type(ids.get(Key.SEGMENT_ID)) is not int:
            raise InvalidText("a text message needs session_id (a string) and segment_id (an integer) metadata")
        text, language = read_one_text(value), str(metadata.get(Key.LANGUAGE, "zh"))
        if not metadata.get(Key.FIN, True):
            if language != "en" and len(text) <= MAX_TEXT_CHARS:  # a longer final gets TextTooLong
                session, segment = str(ids.get(Key.SESSION_ID, "")), ids.get(Key.SEGMENT_ID)
                failed = self.segments.feed(session, segment, text, language, self._send_partial(ids))
                if failed is not None:
                    print(f"[{self.label}] a partial transcript's sentences failed: {failed}", file=sys.stderr)
        elif language == "en":
            meta = {**ids, Key.TRANSLATOR: "none", Key.TRANSLATE_S: 0.0}
            self.node.send_output(Port.TEXT, *text_message(text, "en", **meta))
        else:
            self.translate(text, language, metadata)

    def on_error(self, value: Any, metadata: dict[str, Any]) -> None:
        try:
            code = metadata.get(Key.CODE) or read_error(value).get(Key.CODE)
        except Exception:  # noqa: BLE001 - a foreign error message: passed on as it is
            code = None
        source = metadata.get(Key.SOURCE_TEXT)
        # a failed local translation (TranslationFailed, or ModelNotLoaded when its model is missing) carries the
        # transcript: take it over. Other errors (no transcript: audio, ASR) are passed on unchanged.
        if code in (TranslationFailed.__name__, ModelNotLoaded.__name__) and isinstance(source, str):
            self.translate(source, str(metadata.get(Key.SOURCE_LANGUAGE, "zh")), metadata)
        else:
            self.node.send_output(Port.ERROR, value, {k: v for k, v in metadata.items() if k != Key.TIMESTAMP})

    def translate(self, text: str, language: str, metadata: dict[str, Any]) -> None:
        ids = segment_ids(metadata)
        session, segment = str(ids.get(Key.SESSION_ID, "")), ids.get(Key.SEGMENT_ID)
        t0 = time.perf_counter()
        try:
            done = self.segments.translate(session, segment, text, language, self._send_partial(ids))
        except FunAsrNanoError as exc:
            # the transcript travels with the error, so a fallback node can translate it (fallback graph)
            source = {} if isinstance(exc, TextTooLong) else {Key.SOURCE_TEXT: text}  # no use to a fallback
            extra = {Key.TRANSLATOR: self.label, Key.TRANSLATE_S: round(time.perf_counter() - t0, 4),
                     Key.SOURCE_LANGUAGE: language, **source}  # fmt: skip
            self.node.send_output(Port.ERROR, *error_message(exc, **ids, **extra))
            return
        result = done.translation
        meta = {
            **ids, Key.TRANSLATOR: self.label, Key.TRANSLATE_S: round(time.perf_counter() - t0, 4),
            Key.LLM_ATTEMPTS: result.attempts, Key.FINISH_REASON: result.finish_reason, Key.SOURCE_LANGUAGE: language,
            Key.SOURCE_TEXT: text, **asr_timing(metadata),
        }  # fmt: skip
        self.node.send_output(Port.TEXT, *text_message(result.text, "en", seq=done.seq, **meta))

    def run(self) -> TranslatorNode:
        send_ready(self.node, self.load_error)
        for input_id, value, metadata in input_events(self.node):
            try:
                if input_id == Port.TEXT:
                    self.on_text(value, metadata)
                elif input_id == Port.ERROR:
                    self.on_error(value, metadata)
            except Exception as exc:  # noqa: BLE001 - one malformed message: one typed error, then the next
                error = exc if isinstance(exc, FunAsrNanoError) else InvalidText(f"{type(exc).__name__}: {exc}")
                ids = {k: v for k, v in segment_ids(metadata).items() if isinstance(v, str | int | float)}
                self.node.send_output(Port.ERROR, *error_message(error, **ids, **{Key.TRANSLATOR: self.label}))
        return self
