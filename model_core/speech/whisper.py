"""Whisper base through faster-whisper (CTranslate2): the offline speech recognition/translation baseline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common.assets import WHISPER_BASE
from ..common.errors import ModelNotLoaded, UnsupportedLanguage

TASKS = ("transcribe", "translate")


@dataclass
class Recognition:
    text: str
    language: str  # language of `text`
    source_language: str  # spoken language (given or detected)
    audio_s: float


class WhisperRecognizer:
    def __init__(
        self,
        model_dir: str | Path | None = None,
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 5,
        temperatures: tuple[float, ...] = (0.0,),
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelNotLoaded("faster-whisper is not installed: pip install 'dora-funasr-nano[whisper]'") from exc
        path = Path(model_dir) if model_dir else WHISPER_BASE.ensure()
        try:
            self.model = WhisperModel(
                str(path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads, local_files_only=True
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError with its own wording
            raise ModelNotLoaded(f"cannot load Whisper from {path}: {exc}") from exc
        self.beam_size = beam_size
        # One temperature = deterministic beam search. Whisper's fallback ladder (0, 0.2, ... 1.0) re-decodes
        # low-confidence segments by sampling: on a 1.5 s VAD segment that was 4x slower and gave random wording.
        self.temperatures = list(temperatures)

    def warm_up(self) -> None:
        """One decode of silence, so the first real segment does not pay for lazy initialisation."""
        self.recognize(np.zeros(16000, np.float32), "transcribe", "en")

    def recognize(self, samples: np.ndarray, task: str = "translate", language: str | None = "zh") -> Recognition:
        """16 kHz mono float32 -> text. task="translate" gives English whatever was spoken."""
        if task not in TASKS:
            raise UnsupportedLanguage(f"task must be one of {TASKS}, got {task!r}")
        language = language or None  # "" means detect
        if language is not None and language not in self.model.supported_languages:
            raise UnsupportedLanguage(f"Whisper does not know the language code {language!r}")
        segments, info = self.model.transcribe(
            samples,
            language=language,
            task=task,
            beam_size=self.beam_size,
            temperature=self.temperatures,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        text = " ".join(s.text.strip() for s in segments).strip()
        return Recognition(text, "en" if task == "translate" else info.language, info.language, samples.size / 16000)
