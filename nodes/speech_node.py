"""What every speech-to-text node shares: one final text or one typed error per segment, and `ready`.

A node supplies `load()`, which returns a Recognizer: a `recognize(samples, partial) -> Transcript` function and
the metadata every message of this node carries (`ready` and each text); this class does the rest (reading and
checking the audio, copying ids, timing, error records, partial texts with fin=false, and answering every segment
with the load error if the model could not load). A recognizer that streams calls `partial(text_so_far)`; the
last message of every segment is the final text or the error (fin=true).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dora_funasr_nano.model_core.common.errors import (
    FunAsrNanoError,
    ModelNotLoaded,
    NoSpeech,
    RecognitionFailed,
    SegmentDropped,
)
from dora_funasr_nano.model_core.common.sequence import GapDetector
from dora_funasr_nano.model_core.speech.audio import SAMPLE_RATE, check_segment

from .contract import Key, Port, error_message, read_audio, segment_ids, send_ready, text_message
from .events import beating, input_events


@dataclass
class Transcript:
    text: str
    language: str  # language of `text`
    metadata: dict[str, Any] = field(default_factory=dict)  # extra flat metadata for the text message
    source_text: str = ""  # one model, two texts: the transcript of the same segment (Key.SOURCE_TEXT)
    source_language: str = "zh"


Partial = Callable[[str], None]
Recognize = Callable[[np.ndarray, Partial], Transcript]


@dataclass
class Recognizer:
    recognize: Recognize
    metadata: dict[str, Any] = field(default_factory=dict)  # sent with `ready` and with every text message


class SpeechToTextNode:
    def __init__(
        self,
        node: Any,
        name: str,
        load: Callable[[], Recognizer],
        min_segment_s: float,
        max_segment_s: float,
        language_hint: str = "",
        send_transcript: bool = False,
    ) -> None:
        self.node, self.name = node, name
        self.send_transcript = send_transcript  # the source text also on its own output, one final per segment
        self.language_hint = language_hint  # language of partial texts
        self.min_segment_s, self.max_segment_s = min_segment_s, max_segment_s
        self.load_error: FunAsrNanoError | None = None
        self.gaps = GapDetector()  # segment ids per session
        self.answered: set[tuple[str, Any]] = set()  # (session, segment) answered here: a `redo` copy is skipped
        self.recognizer = Recognizer(self._unavailable)
        try:
            with beating(node):
                self.recognizer = load()
        except FunAsrNanoError as exc:
            self.load_error = exc
        except Exception as exc:  # a broken model folder must not crash the graph either
            self.load_error = ModelNotLoaded(f"{type(exc).__name__}: {exc}")
        if self.load_error is not None:
            print(f"[{name}] {self.load_error.code}: {self.load_error}", file=sys.stderr)

    def _unavailable(self, samples: np.ndarray, partial: Partial) -> Transcript:
        raise self.load_error or ModelNotLoaded("no model")

    def report_lost(self, metadata: dict[str, Any]) -> None:
        """One SegmentDropped per segment id skipped (lost on the way here), so each still gets its one error."""
        session, segment = str(metadata.get(Key.SESSION_ID, "")), metadata.get(Key.SEGMENT_ID)
        for lost in self.gaps.observe(session, segment) if isinstance(segment, int) else ():
            error = SegmentDropped(f"segment {lost} of session {session} never reached {self.name}")
            self.node.send_output(Port.ERROR, *error_message(error, **{Key.SESSION_ID: session, Key.SEGMENT_ID: lost}))

    def on_segment(self, value: Any, metadata: dict[str, Any]) -> None:
        key = (str(metadata.get(Key.SESSION_ID, "")), metadata.get(Key.SEGMENT_ID))
        if metadata.get(Key.REDO):  # sent again after a restart: no gap, and at most one answer
            if key in self.answered:
                return
        else:
            self.report_lost(metadata)
        self.answered.add(key)
        ids = {**segment_ids(metadata), **self.recognizer.metadata}
        t0 = time.perf_counter()
        partials = 0

        def partial(text: str) -> None:
            nonlocal partials
            partials += 1
            self.node.send_output(Port.TEXT, *text_message(text, self.language_hint, fin=False, seq=partials, **ids))

        try:
            if self.load_error is not None:
                raise self.load_error
            samples = read_audio(value, metadata)
            check_segment(samples, self.min_segment_s, self.max_segment_s)
            try:
                result = self.recognizer.recognize(samples, partial)
            except FunAsrNanoError:
                raise
            except Exception as exc:  # a decoder crash must not take the graph down
                raise RecognitionFailed(f"{type(exc).__name__}: {exc}") from exc
            if not result.text.strip():
                raise NoSpeech(f"no words recognised in {samples.size / SAMPLE_RATE:.2f} s of audio")
        except FunAsrNanoError as exc:
            elapsed = {Key.ASR_S: round(time.perf_counter() - t0, 4)}
            self.node.send_output(Port.ERROR, *error_message(exc, **segment_ids(metadata), **elapsed))
            return
        elapsed_s = time.perf_counter() - t0
        timing = {Key.ASR_S: round(elapsed_s, 4), Key.RTF: round(elapsed_s / (samples.size / SAMPLE_RATE), 4)}
        meta = {**ids, **result.metadata, **timing}
        if result.source_text:
            meta |= {Key.SOURCE_TEXT: result.source_text, Key.SOURCE_LANGUAGE: result.source_language}
            if self.send_transcript:  # before the final, which closes the segment for the vad and the probe
                role: dict[str, Any] = {Key.ROLE: Port.TRANSCRIPT, Key.TASK: "transcribe", **ids, **timing}
                transcript = text_message(result.source_text, result.source_language, seq=1, **role)
                self.node.send_output(Port.TRANSCRIPT, *transcript)
        self.node.send_output(Port.TEXT, *text_message(result.text, result.language, seq=partials + 1, **meta))

    def run(self) -> SpeechToTextNode:
        send_ready(self.node, self.load_error, **self.recognizer.metadata)
        for input_id, value, metadata in input_events(self.node):
            if input_id == Port.SEGMENT:
                self.on_segment(value, metadata)
        return self
