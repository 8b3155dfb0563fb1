"""One task's recognizer over a loaded FunAsrNano, for a stream of VAD segments: the same prompt (task, hotwords,
ITN) for every segment, a warm-up with that prompt, and the text so far every `partial_every` tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mlx.core as mx
import numpy as np

from ..speech.audio import SAMPLE_RATE
from .api import FunAsrNano, Result, TranslationConfig
from .generate import GenerationConfig
from .prompts import TaskMode

# the run dtype by name, for FunAsrNano.load (None: settings.default_dtype, fp32 on Linux CPU, bf16 on Apple silicon)
DTYPES: dict[str, mx.Dtype | None] = {"auto": None, "fp32": mx.float32, "bf16": mx.bfloat16}


class SegmentRecognizer:
    """`task`: a TaskMode value (transcribe, transcribe_en, auto, translate; translate needs an adapted model and
    otherwise raises UnsupportedLanguage per segment). `partial_every` > 0: `recognize` calls `on_partial(text so
    far)` every that many tokens."""

    def __init__(
        self,
        asr: FunAsrNano,
        task: str = "transcribe",
        hotwords: Sequence[str] = (),
        itn: bool = True,
        max_tokens: int = 512,
        temperature: float = 0.0,
        partial_every: int = 0,
        both: bool = False,
    ) -> None:
        self.asr, self.task, self.hotwords, self.itn = asr, TaskMode(task), list(hotwords), itn
        self.generation = GenerationConfig(max_tokens=max_tokens, temperature=temperature)
        self.translation = TranslationConfig(max_output_tokens=max_tokens, temperature=temperature)
        self.partial_every = partial_every
        self.both = both  # recognize_both: the transcript and the English, one batch (warm_up warms that)

    def warm_up(self) -> None:
        """One short decode of this recognizer's prompt: pages the weights in and leaves the prompt's template in
        the prompt cache, so the first real segment is as fast as the rest."""
        prompt: tuple[TaskMode, list[str], bool]
        if self.both and self.asr.can_translate and not self.asr.fused:
            self.asr.transcribe_and_translate(np.zeros(SAMPLE_RATE, np.float32), GenerationConfig(max_tokens=2))
            return
        if self.task is not TaskMode.TRANSLATE_TO_EN:
            prompt = (self.task, self.hotwords, self.itn)
        else:  # translate()'s prompt has no hotwords; without an adapter every segment gets UnsupportedLanguage
            prompt = (self.task if self.asr.can_translate else TaskMode.TRANSCRIBE, [], True)
        self.asr.transcribe(np.zeros(SAMPLE_RATE, np.float32), *prompt, GenerationConfig(max_tokens=2))

    def recognize(self, samples: np.ndarray, on_partial: Callable[[str], None] | None = None) -> Result:
        """16 kHz mono float32 (one segment) -> Result (text, tokens, finish_reason, backends, ...)."""
        tokens: list[int] = []

        def on_token(token: int) -> None:
            tokens.append(token)
            if on_partial is not None and self.partial_every and len(tokens) % self.partial_every == 0:
                on_partial(self.asr.decode(tokens))

        if self.task is TaskMode.TRANSLATE_TO_EN:
            return self.asr.translate(samples, self.translation, on_token)
        return self.asr.transcribe(samples, self.task, self.hotwords, self.itn, self.generation, on_token)

    def recognize_both(self, samples: np.ndarray) -> tuple[Result, Result]:
        """One segment -> (Chinese transcript, English) from one model (FunAsrNano.transcribe_and_translate):
        UnsupportedLanguage without an unfused translation adapter."""
        return self.asr.transcribe_and_translate(samples, self.generation)
