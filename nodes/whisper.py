"""whisper: speech recognition or speech->English translation with Whisper base (faster-whisper, offline).

Input `segment` (speech audio with segment ids). Outputs `text` (one final message per segment, fin=true),
`error` (one record instead of the text when the segment cannot be used) and `ready` (once, when the model is
loaded and warmed up, or failed to load: sources can wait for it). Ids and timing are copied through;
`asr_s` is the processing time. If the model cannot load, every segment gets a ModelNotLoaded error.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from dora_funasr_nano.model_core.audio import check_segment
from dora_funasr_nano.model_core.errors import FunAsrNanoError, NoSpeech, RecognitionFailed
from dora_funasr_nano.model_core.whisper_asr import TASKS, WhisperRecognizer

from .config import load_config
from .contract import error_message, read_audio, segment_ids, send_ready, text_message
from .events import input_events


@dataclass
class WhisperConfig:
    """Whisper base speech recognition / speech translation."""

    whisper_task: str = "translate"  # "translate" (-> English) or "transcribe"
    whisper_language: str = "zh"  # spoken language; empty = detect
    beam_size: int = 5
    temperatures: str = "0"  # comma-separated fallback ladder, e.g. "0,0.2,0.4,0.6,0.8,1"; "0" = deterministic
    compute_type: str = "int8"  # CTranslate2 compute type: int8, float32, ...
    cpu_threads: int = 0  # 0 = CTranslate2's default
    model_dir: str = ""  # empty = the packaged Whisper base (assembled into the cache on first use)
    min_segment_s: float = 0.1
    max_segment_s: float = 30.0

    def __post_init__(self) -> None:
        try:
            self.temperature_ladder = tuple(float(t) for t in self.temperatures.split(","))
        except ValueError:
            raise ValueError(f"TEMPERATURES must be comma-separated numbers, got {self.temperatures!r}") from None
        if self.whisper_task not in TASKS:
            raise ValueError(f"WHISPER_TASK must be one of {TASKS}, got {self.whisper_task!r}")


class WhisperNode:
    def __init__(self, node, cfg: WhisperConfig, recognizer: WhisperRecognizer | None = None) -> None:  # noqa: ANN001
        self.node, self.cfg = node, cfg
        self.load_error: FunAsrNanoError | None = None
        self.recognizer = recognizer
        if recognizer is None:
            try:
                self.recognizer = WhisperRecognizer(
                    cfg.model_dir or None, cfg.compute_type, cfg.cpu_threads, cfg.beam_size, cfg.temperature_ladder
                )
                self.recognizer.warm_up()
            except FunAsrNanoError as exc:
                self.load_error = exc
                print(f"[whisper] {exc.code}: {exc}", file=sys.stderr)

    def on_segment(self, value, metadata: dict) -> None:  # noqa: ANN001
        ids = segment_ids(metadata)
        t0 = time.perf_counter()
        try:
            if self.load_error is not None:
                raise self.load_error
            samples = read_audio(value, metadata)
            check_segment(samples, self.cfg.min_segment_s, self.cfg.max_segment_s)
            try:
                result = self.recognizer.recognize(samples, self.cfg.whisper_task, self.cfg.whisper_language)
            except FunAsrNanoError:
                raise
            except Exception as exc:  # a decoder crash must not take the graph down
                raise RecognitionFailed(f"{type(exc).__name__}: {exc}") from exc
            if not result.text:
                raise NoSpeech(f"no words recognised in {result.audio_s:.2f} s of audio")
        except FunAsrNanoError as exc:
            self.node.send_output("error", *error_message(exc, **ids, asr_s=time.perf_counter() - t0))
            return
        elapsed = time.perf_counter() - t0
        value, meta = text_message(
            result.text,
            result.language,
            **ids,
            source_language=result.source_language,
            task=self.cfg.whisper_task,
            asr_s=round(elapsed, 4),
            rtf=round(elapsed / result.audio_s, 4),
        )
        self.node.send_output("text", value, meta)


def run(node, cfg: WhisperConfig, recognizer: WhisperRecognizer | None = None) -> WhisperNode:  # noqa: ANN001
    asr = WhisperNode(node, cfg, recognizer)
    send_ready(node, asr.load_error)
    for input_id, value, metadata in input_events(node):
        if input_id == "segment":
            asr.on_segment(value, metadata)
    return asr


def main() -> None:
    from dora import Node

    cfg = load_config(WhisperConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
