"""funasr: Fun-ASR-Nano (MLX) speech recognition, or speech->English with a translation-adapted model.

Input `segment`. Outputs `text` (one final per segment: language, task, finish_reason, tokens, asr_s, rtf + the
ids), `error` (typed, instead of the text) and `ready` (once the model is loaded and warmed up). On Linux the node
restarts itself with OpenBLAS preloaded (model_core.blas), since MLX's bundled BLAS is ~50x slower.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from dora_funasr_nano.model_core.common.blas import ensure_fast_blas

from .config import load_config
from .speech_node import Partial, Recognize, SpeechToTextNode, Transcript

TASKS = {"transcribe": "zh", "transcribe_en": "en", "auto": "auto", "translate": "en"}


@dataclass
class FunAsrConfig:
    """Fun-ASR-Nano speech recognition / translation."""

    funasr_model: str = "FunAudioLLM/Fun-ASR-Nano-2512"  # local folder or Hugging Face id (downloaded once)
    funasr_task: str = "transcribe"  # transcribe (Chinese), transcribe_en, auto, translate (adapted model only)
    funasr_adapter: str = ""  # an mlx-lm LoRA adapter folder (task "translate" makes the unified model)
    hotwords: str = ""  # comma-separated domain terms
    itn: bool = True  # inverse text normalisation (numbers as digits, punctuation)
    max_tokens: int = 512
    partial_every: int = 0  # send the text so far (fin=false) every N tokens while decoding; 0 = finals only
    temperature: float = 0.0  # 0 = greedy, as upstream
    dtype: str = "auto"  # auto (fp32 on Linux CPU, bf16 on Apple silicon), fp32, bf16
    low_memory: bool = False  # audio encoder weights in bf16 (~0.45 GB less with fp32, a few % slower)
    min_segment_s: float = 0.1
    max_segment_s: float = 30.0

    def __post_init__(self) -> None:
        if self.funasr_task not in TASKS:
            raise ValueError(f"FUNASR_TASK must be one of {sorted(TASKS)}, got {self.funasr_task!r}")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"DTYPE must be auto, fp32 or bf16, got {self.dtype!r}")


def make_recognizer(cfg: FunAsrConfig, asr=None) -> Recognize:  # noqa: ANN001 - a model_core FunAsrNano
    import mlx.core as mx

    from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano, TranslationConfig
    from dora_funasr_nano.model_core.fun_asr_nano.generate import GenerationConfig
    from dora_funasr_nano.model_core.fun_asr_nano.prompts import TaskMode

    hotwords = [w.strip() for w in cfg.hotwords.split(",") if w.strip()]
    generation = GenerationConfig(max_tokens=cfg.max_tokens, temperature=cfg.temperature)
    task = TaskMode(cfg.funasr_task)
    if asr is None:
        dtype = {"auto": None, "fp32": mx.float32, "bf16": mx.bfloat16}[cfg.dtype]
        asr = FunAsrNano.load(cfg.funasr_model, dtype, cfg.funasr_adapter or None, low_memory=cfg.low_memory)
        # warm-up with this node's prompt: pages the weights in and leaves the prompt's template in the cache,
        # so the first real segment is as fast as the rest
        if task is not TaskMode.TRANSLATE_TO_EN:
            prompt = (task, hotwords, cfg.itn)
        else:  # translate()'s prompt has no hotwords; without an adapter every segment gets UnsupportedLanguage
            prompt = (task if asr.can_translate else TaskMode.TRANSCRIBE, [], True)
        asr.transcribe(np.zeros(16000, np.float32), *prompt, GenerationConfig(max_tokens=2))

    def recognize(samples: np.ndarray, partial: Partial) -> Transcript:
        tokens: list[int] = []

        def on_token(token: int) -> None:
            tokens.append(token)
            if cfg.partial_every and len(tokens) % cfg.partial_every == 0:
                partial(asr.decode(tokens))

        if task is TaskMode.TRANSLATE_TO_EN:
            config = TranslationConfig(max_output_tokens=cfg.max_tokens, temperature=cfg.temperature)
            result = asr.translate(samples, config, on_token)
        else:
            result = asr.transcribe(samples, task, hotwords, cfg.itn, generation, on_token)
        meta = {"task": cfg.funasr_task, "finish_reason": result.finish_reason, "tokens": len(result.tokens)}
        return Transcript(result.text, TASKS[cfg.funasr_task], meta)

    return recognize


def run(node, cfg: FunAsrConfig, asr=None) -> SpeechToTextNode:  # noqa: ANN001
    load = lambda: make_recognizer(cfg, asr)  # noqa: E731
    language = TASKS[cfg.funasr_task]
    return SpeechToTextNode(node, "funasr", load, cfg.min_segment_s, cfg.max_segment_s, language).run()


def main() -> None:
    ensure_fast_blas()
    from dora import Node

    cfg = load_config(FunAsrConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
