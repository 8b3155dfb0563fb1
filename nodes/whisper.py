"""whisper: speech recognition or speech->English translation with Whisper base (faster-whisper, offline).

Input `segment` (speech audio with segment ids). Outputs `text` (one final message per segment, fin=true),
`error` (one record instead of the text when the segment cannot be used) and `ready` (once, when the model is
loaded and warmed up, or failed to load: sources can wait for it). Ids and timing are copied through;
`asr_s` is the processing time. If the model cannot load, every segment gets a ModelNotLoaded error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dora_funasr_nano.model_core.speech.whisper import TASKS, WhisperRecognizer

from .config import load_config
from .contract import Key
from .speech_node import Partial, Recognizer, SpeechToTextNode, Transcript


@dataclass
class WhisperConfig:
    """Whisper base speech recognition / speech translation."""

    PREFIX: ClassVar[str] = "DFN_WHISPER_"
    RENAMED: ClassVar[dict[str, str]] = {
        "task": "whisper_task", "language": "whisper_language", "temperature": "temperatures",
        "threads": "cpu_threads", "model": "model_dir",
    }  # fmt: skip

    task: str = "translate"  # "translate" (-> English) or "transcribe"
    language: str = "zh"  # spoken language; empty = detect
    beam_size: int = 5
    temperature: str = "0"  # comma-separated fallback ladder, e.g. "0,0.2,0.4,0.6,0.8,1"; "0" = deterministic
    compute_type: str = "int8"  # CTranslate2 compute type: int8, float32, ...
    threads: int = 0  # CPU threads; 0 = CTranslate2's default
    model: str = ""  # a CTranslate2 Whisper folder; empty = the packaged Whisper base (assembled on first use)
    min_segment_s: float = 0.1
    max_segment_s: float = 30.0

    def __post_init__(self) -> None:
        try:
            self.temperature_ladder = tuple(float(t) for t in self.temperature.split(","))
        except ValueError:
            raise ValueError(
                f"{self.PREFIX}TEMPERATURE must be comma-separated numbers, got {self.temperature!r}"
            ) from None
        if self.task not in TASKS:
            raise ValueError(f"{self.PREFIX}TASK must be one of {TASKS}, got {self.task!r}")


def make_recognizer(cfg: WhisperConfig, recognizer: WhisperRecognizer | None = None) -> Recognizer:
    if recognizer is None:
        recognizer = WhisperRecognizer(cfg.model or None, cfg.compute_type, cfg.threads, cfg.beam_size,
                                       cfg.temperature_ladder)  # fmt: skip
        recognizer.warm_up()
    whisper = recognizer

    def recognize(samples: np.ndarray, partial: Partial) -> Transcript:  # noqa: ARG001 - whisper does not stream
        result = whisper.recognize(samples, cfg.task, cfg.language)
        meta = {Key.SOURCE_LANGUAGE: result.source_language, Key.TASK: cfg.task}
        return Transcript(result.text, result.language, meta)

    return Recognizer(recognize)


def run(node: Any, cfg: WhisperConfig, recognizer: WhisperRecognizer | None = None) -> SpeechToTextNode:
    load = lambda: make_recognizer(cfg, recognizer)  # noqa: E731
    return SpeechToTextNode(node, "whisper", load, cfg.min_segment_s, cfg.max_segment_s).run()


def main() -> None:
    from dora import Node

    cfg = load_config(WhisperConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
