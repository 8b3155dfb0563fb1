"""What every speech-to-text node shares: one final text or one typed error per segment, and `ready`.

A node supplies `load()`, which returns a `recognize(samples) -> Transcript` function; this class does the rest
(reading and checking the audio, copying ids, timing, error records, and answering every segment with the load
error if the model could not load).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dora_funasr_nano.model_core.audio import check_segment
from dora_funasr_nano.model_core.errors import FunAsrNanoError, ModelNotLoaded, NoSpeech, RecognitionFailed

from .contract import error_message, read_audio, segment_ids, send_ready, text_message
from .events import input_events


@dataclass
class Transcript:
    text: str
    language: str  # language of `text`
    metadata: dict[str, Any] = field(default_factory=dict)  # extra flat metadata for the text message


Recognize = Callable[[np.ndarray], Transcript]


class SpeechToTextNode:
    def __init__(
        self, node: Any, name: str, load: Callable[[], Recognize], min_segment_s: float, max_segment_s: float
    ) -> None:
        self.node, self.name = node, name
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
            try:
                result = self.recognize(samples)
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
            result.text, result.language, **ids, **result.metadata,
            asr_s=round(elapsed, 4), rtf=round(elapsed / (samples.size / 16000), 4),
        )  # fmt: skip
        self.node.send_output("text", value, meta)

    def run(self) -> SpeechToTextNode:
        send_ready(self.node, self.load_error)
        for input_id, value, metadata in input_events(self.node):
            if input_id == "segment":
                self.on_segment(value, metadata)
        return self
