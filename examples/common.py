"""Shared by the examples: a Chinese recognizer (Whisper base from the registries, or Fun-ASR-Nano) and printing."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano, TranslationConfig
from dora_funasr_nano.model_core.translation.sentences import translate_by_sentence


class Transcriber:
    """`funasr`: a Fun-ASR-Nano folder or model id; otherwise Whisper base (offline, from the registries)."""

    def __init__(self, funasr: str | None = None) -> None:
        self.funasr = FunAsrNano.load(funasr) if funasr else None
        if self.funasr is None:
            from dora_funasr_nano.model_core.speech.whisper import WhisperRecognizer

            self.whisper = WhisperRecognizer()

    def translate(self, samples: np.ndarray, translator: Any, on_partial=None) -> tuple[str, str]:  # noqa: ANN001
        """(Chinese transcript, English), sentence by sentence; on_partial(chinese, english) per sentence."""
        config = TranslationConfig(stream_on_sentence=on_partial is not None)
        if self.funasr is not None:  # sentences are translated while Fun-ASR-Nano is still decoding
            result = self.funasr.translate(samples, config, translator=translator, on_partial=on_partial)
            return result.source_text, result.text
        chinese = self.whisper.recognize(samples, task="transcribe", language="zh").text
        return chinese, translate_by_sentence(translator, chinese, on_partial=on_partial).text


def say(line: str) -> None:
    print(line, flush=True)
    sys.stdout.flush()
