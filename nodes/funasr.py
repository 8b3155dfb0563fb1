"""funasr: Fun-ASR-Nano (MLX) speech recognition, or speech->English with a translation-adapted model.

Input `segment`. Outputs `text` (one final per segment: language, task, finish_reason, tokens, asr_s, rtf,
encoder_backend, decoder_backend + the ids), `error` (typed, instead of the text) and `ready` (once the model is
loaded and warmed up, with the backends). With task translate and `transcript`, each segment's audio is encoded
once and decoded as a batch of two rows (adapter off: Chinese, on: English): the English final carries the Chinese
as `source_text`, and the Chinese is also sent, just before it, on `transcript` (role "transcript").
On Linux the node restarts itself with OpenBLAS preloaded (model_core.common.blas), since MLX's bundled BLAS is
~50x slower.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dora_funasr_nano.model_core.common.blas import ensure_fast_blas
from dora_funasr_nano.model_core.common.settings import BACKENDS

from .config import load_config
from .contract import Key
from .speech_node import Partial, Recognizer, SpeechToTextNode, Transcript

TASKS = {"transcribe": "zh", "transcribe_en": "en", "auto": "auto", "translate": "en"}  # -> language of the text


@dataclass
class FunAsrConfig:
    """Fun-ASR-Nano speech recognition / translation."""

    PREFIX: ClassVar[str] = "DFN_FUNASR_"
    RENAMED: ClassVar[dict[str, str]] = {"model": "funasr_model", "adapter": "funasr_adapter", "task": "funasr_task"}
    ADDED: ClassVar[tuple[str, ...]] = ("backend",)

    model: str = "FunAudioLLM/Fun-ASR-Nano-2512"  # local folder or Hugging Face id (downloaded once)
    adapter: str = ""  # an mlx-lm LoRA adapter folder (task "translate" makes the unified model)
    task: str = "transcribe"  # transcribe (Chinese), transcribe_en, auto, translate (adapted model only)
    transcript: bool = False  # task translate: the Chinese transcript too, from the same model, on `transcript`
    hotwords: str = ""  # comma-separated domain terms
    itn: bool = True  # inverse text normalisation (numbers as digits, punctuation)
    max_tokens: int = 512
    partial_every: int = 0  # send the text so far (fin=false) every N tokens while decoding; 0 = finals only
    temperature: float = 0.0  # 0 = greedy, as upstream
    dtype: str = "auto"  # auto (fp32 on Linux CPU, bf16 on Apple silicon), fp32, bf16
    backend: str = ""  # auto, mlx or numpy; empty = model_core's default ($DFN_BACKEND, auto)
    low_memory: bool = False  # audio encoder weights in bf16 (~0.45 GB less with fp32, a few % slower)
    min_segment_s: float = 0.1
    max_segment_s: float = 30.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.PREFIX}TASK must be one of {sorted(TASKS)}, got {self.task!r}")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"{self.PREFIX}DTYPE must be auto, fp32 or bf16, got {self.dtype!r}")
        if self.backend not in ("", *BACKENDS):
            raise ValueError(f"{self.PREFIX}BACKEND must be empty or one of {', '.join(BACKENDS)}")
        if self.transcript and (self.task != "translate" or self.partial_every):
            raise ValueError(f"{self.PREFIX}TRANSCRIPT needs {self.PREFIX}TASK=translate and no PARTIAL_EVERY")


def make_recognizer(cfg: FunAsrConfig, asr: Any = None) -> Recognizer:
    """`asr`: an already loaded model_core FunAsrNano (tests); otherwise the configured one is loaded, warmed up."""
    from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
    from dora_funasr_nano.model_core.fun_asr_nano.recognizer import DTYPES, SegmentRecognizer

    if asr is None:
        loaded = FunAsrNano.load(cfg.model, DTYPES[cfg.dtype], cfg.adapter or None, low_memory=cfg.low_memory,
                                 backend=cfg.backend or None)  # fmt: skip
    else:
        loaded = asr
    hotwords = [w.strip() for w in cfg.hotwords.split(",") if w.strip()]
    segments = SegmentRecognizer(loaded, cfg.task, hotwords, cfg.itn, cfg.max_tokens, cfg.temperature,
                                 cfg.partial_every, cfg.transcript)  # fmt: skip
    if asr is None:
        segments.warm_up()

    def recognize(samples: np.ndarray, partial: Partial) -> Transcript:
        if cfg.transcript:
            zh, result = segments.recognize_both(samples)
        else:
            zh, result = None, segments.recognize(samples, partial)
        stages = {Key.FRONTEND_S: "frontend", Key.ENCODER_S: "encoder", Key.LLM_S: "llm"}
        meta = {Key.TASK: cfg.task, Key.FINISH_REASON: result.finish_reason, Key.TOKENS: len(result.tokens),
                **{key: round(result.timings[name], 4) for key, name in stages.items() if name in result.timings},
                **result.backends.as_metadata()}  # fmt: skip
        return Transcript(result.text, TASKS[cfg.task], meta, zh.text if zh else "")

    return Recognizer(recognize, loaded.backends.as_metadata())


def run(node: Any, cfg: FunAsrConfig, asr: Any = None) -> SpeechToTextNode:
    load = lambda: make_recognizer(cfg, asr)  # noqa: E731
    return SpeechToTextNode(node, "funasr", load, cfg.min_segment_s, cfg.max_segment_s, TASKS[cfg.task],
                            cfg.transcript).run()  # fmt: skip


def main() -> None:
    ensure_fast_blas()
    from dora import Node

    cfg = load_config(FunAsrConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
