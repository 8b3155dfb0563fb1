"""translate-text: Chinese transcripts -> English with a local LLM (the two-stage pipeline).

Engines: `llama-cpp` runs a GGUF in-process with llama.cpp (the Linux default: the packaged Q4_K_M model needs no
fp32 copy); `mlx` runs any mlx-lm model (the macOS default; fp32 on Linux CPU). DFN_TRANSLATE_MODEL=packaged
(default) is Qwen2.5-Coder-0.5B-Instruct from the registries: its GGUF for llama.cpp, or that GGUF converted once to
an mlx-lm folder for MLX. Otherwise give a .gguf file (llama-cpp), or an mlx-lm folder / Hugging Face id (mlx).

Same inputs, outputs and invariant as llm-fallback (translator_node, with a local translator): `text` in, `text`
(English, translator "local") or `error` out, one per segment. A failed translation (including one over
DFN_TRANSLATE_TIMEOUT_S) is a TranslationFailed error that carries the transcript (`source_text`), so the fallback
graph can route it to llm-fallback. If the model cannot load, every segment gets ModelNotLoaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from dora_funasr_nano.model_core.common.blas import ensure_fast_blas
from dora_funasr_nano.model_core.common.errors import FunAsrNanoError
from dora_funasr_nano.model_core.translation.base import Translation, Translator
from dora_funasr_nano.model_core.translation.llama_cpp import default_threads
from dora_funasr_nano.model_core.translation.local import ENGINES, load_local_translator
from dora_funasr_nano.model_core.translation.segments import SegmentOptions

from .config import load_config
from .translator_node import TranslatorNode


@dataclass
class TranslateTextConfig(SegmentOptions):
    """Local text translation (llama.cpp or mlx-lm)."""

    PREFIX: ClassVar[str] = "DFN_TRANSLATE_"
    RENAMED: ClassVar[dict[str, str]] = {
        "model": "translate_model", "engine": "translate_engine", "timeout_s": "translate_timeout_s",
        "threads": "translate_threads", "max_tokens": "max_output_tokens",
    }  # fmt: skip

    model: str = "packaged"  # packaged | trained (the adapter fused in) | path to a .gguf | mlx-lm folder or HF id
    engine: str = "auto"  # auto (llama-cpp on Linux when installed, else mlx) | llama-cpp | mlx
    timeout_s: float = 0.0  # > 0: a translation running longer fails (TranslationFailed) -> fallback
    threads: int = 0  # llama.cpp CPU threads; 0 = half the cores, the rest stay with the ASR node
    max_tokens: int = 256
    temperature: float = 0.0
    lora: str = ""  # "" | trained (dfn-train-translator's adapter) | a llama.cpp adapter .gguf / mlx-lm adapter folder
    english_only: bool = True  # no CJK/kana/hangul/fullwidth token in the English (translation/english_only.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.engine not in ENGINES:
            raise ValueError(f"{self.PREFIX}ENGINE must be one of {', '.join(ENGINES)}")
        if self.timeout_s < 0:
            raise ValueError(f"{self.PREFIX}TIMEOUT_S must be >= 0")
        if self.threads < 0:
            raise ValueError(f"{self.PREFIX}THREADS must be >= 0 (0: half the cores)")


def translate_threads(cfg: TranslateTextConfig) -> int:
    """Half the cores by default: this node shares the machine with an ASR node, and llama.cpp's threads spin while
    they wait. Measured on 2 cores, the Fun-ASR-Nano encoder (319 ms alone) beside llama.cpp translating with 2
    threads: 4.7 s, and one translation 43 s; with 1 thread: 0.86 s and 0.77 s (0.61 s alone)."""
    return cfg.threads or max(1, default_threads() // 2)


def load_translator(cfg: TranslateTextConfig) -> Translator:
    return load_local_translator(
        cfg.model, cfg.engine, cfg.max_tokens, cfg.temperature,
        timeout_s=cfg.timeout_s or None, n_threads=translate_threads(cfg), lora=cfg.lora,
        english_only=cfg.english_only,
    )  # fmt: skip


class _Unavailable:
    """Stands in for a translator that failed to load: every segment gets the load error."""

    def __init__(self, error: FunAsrNanoError) -> None:
        self.error = error

    def translate(self, text: str, *, source_language: str = "zh", context: Sequence[str] = (),
                  on_partial: Callable[[str], None] | None = None) -> Translation:  # fmt: skip
        raise self.error

    def close(self) -> None:
        pass


def run(node: Any, cfg: TranslateTextConfig, translator: Translator | None = None) -> TranslatorNode:
    load_error = None
    if translator is None:
        try:
            translator = load_translator(cfg)
            print(f"[translate-text] {translator!r}", file=sys.stderr)
        except FunAsrNanoError as exc:
            print(f"[translate-text] {exc.code}: {exc}", file=sys.stderr)
            translator, load_error = _Unavailable(exc), exc
    return TranslatorNode(node, cfg, translator, label="local", load_error=load_error).run()


def main() -> None:
    ensure_fast_blas()
    from dora import Node

    cfg = load_config(TranslateTextConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
