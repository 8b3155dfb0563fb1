"""translate-text: Chinese transcripts -> English with a local instruct LLM through mlx-lm (the two-stage pipeline).

Same inputs, outputs and invariant as llm-fallback (it is the same node class with a local translator): `text`
in, `text` (English, translator "local") or `error` out, one per segment. A failed translation is a
TranslationFailed error that carries the transcript (`source_text`), so the fallback graph can route it to
llm-fallback. If the model cannot load, every segment gets ModelNotLoaded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from dora_funasr_nano.model_core.blas import ensure_fast_blas
from dora_funasr_nano.model_core.errors import FunAsrNanoError

from .config import load_config
from .llm_fallback import LlmFallbackNode


@dataclass
class TranslateTextConfig:
    """Local text translation (mlx-lm)."""

    translate_model: str = "Qwen/Qwen2.5-0.5B-Instruct"  # mlx-lm folder or Hugging Face id (downloaded once)
    max_output_tokens: int = 256
    temperature: float = 0.0
    context_sentences: int = 0  # previous transcripts of the session given as context
    stream_partials: bool = False  # also send the English so far (fin=false) while generating


class _Unavailable:
    """Stands in for a translator that failed to load: every segment gets the load error."""

    def __init__(self, error: FunAsrNanoError) -> None:
        self.error = error

    def translate(self, text: str, **_: Any) -> None:
        raise self.error


def run(node: Any, cfg: TranslateTextConfig, translator: Any = None) -> LlmFallbackNode:
    if translator is None:
        from dora_funasr_nano.model_core.local_llm import LocalTranslator

        try:
            translator = LocalTranslator(cfg.translate_model, cfg.max_output_tokens, cfg.temperature)
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
