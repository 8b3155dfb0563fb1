"""translate-text: Chinese transcripts -> English with a local LLM (the two-stage pipeline).

Engines: `llama-cpp` runs a GGUF in-process with llama.cpp (the Linux default: the packaged Q4_K_M model needs no
fp32 copy); `mlx` runs any mlx-lm model (the macOS default; fp32 on Linux CPU). TRANSLATE_MODEL=packaged (default)
is Qwen2.5-Coder-0.5B-Instruct from the registries: its GGUF for llama.cpp, or that GGUF converted once to an
mlx-lm folder for MLX. Otherwise give a .gguf file (llama-cpp), or an mlx-lm folder / Hugging Face id (mlx).

Same inputs, outputs and invariant as llm-fallback (it is the same node class with a local translator): `text`
in, `text` (English, translator "local") or `error` out, one per segment. A failed translation (including one over
TRANSLATE_TIMEOUT_S) is a TranslationFailed error that carries the transcript (`source_text`), so the fallback graph
can route it to llm-fallback. If the model cannot load, every segment gets ModelNotLoaded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from dora_funasr_nano.model_core.common.blas import ensure_fast_blas
from dora_funasr_nano.model_core.common.errors import FunAsrNanoError
from dora_funasr_nano.model_core.translation.llama_cpp import default_threads
from dora_funasr_nano.model_core.translation.local import ENGINES, load_local_translator

from .config import load_config
from .llm_fallback import LlmFallbackNode


@dataclass
class TranslateTextConfig:
    """Local text translation (llama.cpp or mlx-lm)."""

    translate_model: str = "packaged"  # packaged | path to a .gguf | mlx-lm folder or Hugging Face id
    translate_engine: str = "auto"  # auto (llama-cpp on Linux when installed, else mlx) | llama-cpp | mlx
    translate_timeout_s: float = 0.0  # > 0: a translation running longer fails (TranslationFailed) -> fallback
    translate_threads: int = 0  # llama.cpp CPU threads; 0 = half the cores, the rest stay with the ASR node
    max_output_tokens: int = 256
    temperature: float = 0.0
    context_sentences: int = 0  # previous transcripts of the session given as context
    stream_partials: bool = False  # also send the English so far (fin=false) while generating
    stream_on_sentence: bool = False  # translate each sentence once complete (also from partial transcripts)
    sentence_max_chars: int = 80  # length cap of one sentence when there is no sentence end

    def __post_init__(self) -> None:
        if self.translate_engine not in ENGINES:
            raise ValueError(f"TRANSLATE_ENGINE must be one of {', '.join(ENGINES)}")
        if self.translate_timeout_s < 0:
            raise ValueError("TRANSLATE_TIMEOUT_S must be >= 0")
        if self.translate_threads < 0:
            raise ValueError("TRANSLATE_THREADS must be >= 0 (0: half the cores)")


def translate_threads(cfg: TranslateTextConfig) -> int:
    """Half the cores by default: this node shares the machine with an ASR node, and llama.cpp's threads spin while
    they wait. Measured on 2 cores, the Fun-ASR-Nano encoder (319 ms alone) beside llama.cpp translating with 2
    threads: 4.7 s, and one translation 43 s; with 1 thread: 0.86 s and 0.77 s (0.61 s alone)."""
    return cfg.translate_threads or max(1, default_threads() // 2)


def load_translator(cfg: TranslateTextConfig) -> Any:
    return load_local_translator(
        cfg.translate_model, cfg.translate_engine, cfg.max_output_tokens, cfg.temperature,
        timeout_s=cfg.translate_timeout_s or None, n_threads=translate_threads(cfg),
    )  # fmt: skip


class _Unavailable:
    """Stands in for a translator that failed to load: every segment gets the load error."""

    def __init__(self, error: FunAsrNanoError) -> None:
        self.error = error

    def translate(self, text: str, **_: Any) -> None:
        raise self.error


def run(node: Any, cfg: TranslateTextConfig, translator: Any = None) -> LlmFallbackNode:
    if translator is None:
        try:
            translator = load_translator(cfg)
            print(f"[translate-text] {translator!r}", file=sys.stderr)
        except FunAsrNanoError as exc:
            print(f"[translate-text] {exc.code}: {exc}", file=sys.stderr)
            translator = _Unavailable(exc)
    return LlmFallbackNode(node, cfg, translator, label="local").run()


def main() -> None:
    ensure_fast_blas()
    from dora import Node

    cfg = load_config(TranslateTextConfig, sys.argv[1:])
    run(Node(), cfg)


if __name__ == "__main__":
    main()
