"""whisper: speech recognition or speech->English translation with Whisper base (faster-whisper, offline).

Input `segment` (speech audio with segment ids). Outputs `text` (one final message per segment, fin=true),
`error` (one record instead of the text when the segment cannot be used) and `ready` (once, when the model is
loaded and warmed up, or failed to load: sources can wait for it). Ids and timing are copied through;
`asr_s` is the processing time. If the model cannot load, every segment gets a ModelNotLoaded error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from dora_funasr_nano.model_core.speech.whisper import TASKS, WhisperRecognizer

from .config import load_config
from .speech_node import Partial, Recognize, SpeechToTextNode, Transcript


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


def make_recognizer(cfg: WhisperConfig, recognizer: WhisperRecognizer | None = None) -> Recognize:
    if recognizer is None:
        recognizer = WhisperRecognizer(
            cfg.model_dir or None, cfg.compute_type, cfg.cpu_threads, cfg.beam_size, cfg.temperature_ladder
        )
        recognizer.warm_up()

    def recognize(samples: np.ndarray, partial: Partial) -> Transcript:  # noqa: ARG001 - whisper does not stream
        result = recognizer.recognize(samples, cfg.whisper_task, cfg.whisper_language)
        meta = {"source_language": result.source_language, "task": cfg.whisper_task}
        return Transcript(result.text, result.language, meta)

    return recognize


def run(node, cfg: WhisperConfig, recognizer: WhisperRecognizer | None = None) -> SpeechToTextNode:  # noqa: ANN001
    load = lambda: make_recognizer(cfg, recognizer)  # noqa: E731
    return SpeechToTextNode(node, "whisper", load, cfg.min_segment_s, cfg.max_segment_s).run()


def main() -> None:
    from dora import Node

    cfg = load_config(WhisperConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
