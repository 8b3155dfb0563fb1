"""What every speech-to-text node shares: one final text or one typed error per segment, and `ready`.

A node supplies `load()`, which returns a `recognize(samples, partial) -> Transcript` function; this class does
the rest (reading and checking the audio, copying ids, timing, error records, partial texts with fin=false, and
answering every segment with the load error if the model could not load). A recognizer that streams calls
`partial(text_so_far)`; the last message of every segment is the final text or the error (fin=true).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dora_funasr_nano.model_core.common.errors import FunAsrNanoError, ModelNotLoaded, NoSpeech, RecognitionFailed
from dora_funasr_nano.model_core.speech.audio import check_segment

from .contract import error_message, read_audio, segment_ids, send_ready, text_message
from .events import input_events


@dataclass
class Transcript:
    text: str
    language: str  # language of `text`
    metadata: dict[str, Any] = field(default_factory=dict)  # extra flat metadata for the text message


Partial = Callable[[str], None]
Recognize = Callable[[np.ndarray, Partial], Transcript]


class SpeechToTextNode:
    def __init__(
        self,
        node: Any,
        name: str,
        load: Callable[[], Recognize],
        min_segment_s: float,
        max_segment_s: float,
        language_hint: str = "",
    ) -> None:
        self.node, self.name = node, name
        self.language_hint = language_hint  # language of partial texts
        self.min_segment_s, self.max_segment_s = min_segment_s, max_segment_s
        self.load_error: FunAsrNanoError | None = None
        self.recognize: Recognize | None = None
        try:
            self.recognize = load()
        except FunAsrNanoError as exc:
            self.load_error = exc
        except Exception as exc:  # a broken model folder must not crash the graph either
            self.load_error = ModelNotLoaded(f"{type(exc).__name__}: {exc}")
        if self.load_error is not None:
            print(f"[{name}] {self.load_error.code}: {self.load_error}", file=sys.stderr)

    def on_segment(self, value: Any, metadata: dict[str, Any]) -> None:
        ids = segment_ids(metadata)
        t0 = time.perf_counter()
        try:
            if self.load_error is not None:
                raise self.load_error
            samples = read_audio(value, metadata)
            check_segment(samples, self.min_segment_s, self.max_segment_s)
            partials = 0

            def partial(text: str) -> None:
                nonlocal partials
                partials += 1
                value, meta = text_message(text, self.language_hint, fin=False, seq=partials, **ids)
                self.node.send_output("text", value, meta)

            try:
                result = self.recognize(samples, partial)
            except FunAsrNanoError:
                raise
            except Exception as exc:  # a decoder crash must not take the graph down
                raise RecognitionFailed(f"{type(exc).__name__}: {exc}") from exc
            if not result.text.strip():
                raise NoSpeech(f"no words recognised in {samples.size / 16000:.2f} s of audio")
        except FunAsrNanoError as exc:
            self.node.send_output("error", *error_message(exc, **ids, asr_s=round(time.perf_counter() - t0, 4)))
            return
        elapsed = time.perf_counter() - t0
        value, meta = text_message(
            result.text, result.language, **ids, **result.metadata, seq=partials + 1,
            asr_s=round(elapsed, 4), rtf=round(elapsed / (samples.size / 16000), 4),
        )  # fmt: skip
        self.node.send_output("text", value, meta)

    def run(self) -> SpeechToTextNode:
        send_ready(self.node, self.load_error)
        for input_id, value, metadata in input_events(self.node):
            if input_id == "segment":
                self.on_segment(value, metadata)
        return self
