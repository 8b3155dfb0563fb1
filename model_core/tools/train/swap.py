"""`dfn-train swap-llm-check`: the Phase 1 experiment, kept as a check anyone can rerun, never as a model.

It loads Fun-ASR-Nano, transcribes a manifest, then replaces the LLM's weights with another Qwen3 checkpoint of
the same shape (an instruct model that could translate) and transcribes again. The adaptor was trained against
the original LLM's embedding space, so the swapped model no longer reads the audio rows: CER after the swap shows
why translation has to be taught with an adapter instead. The command has no output-weights option on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx

from ...fun_asr_nano.api import FunAsrNano
from ...fun_asr_nano.cache import PromptCache
from ...fun_asr_nano.generate import GenerationConfig
from ..bench.workload import named_parameters
from .features import read_audio
from .metrics import corpus_cer

SHAPE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "intermediate_size", "vocab_size", "tie_word_embeddings")  # fmt: skip


def swap_llm(asr: FunAsrNano, qwen3_dir: str | os.PathLike) -> None:
    """Load another Qwen3 checkpoint (a Hugging Face folder: config.json + safetensors) into asr's LLM, strictly:
    every shape field must match, every weight must be there."""
    from mlx_lm.utils import load_model

    other, config = load_model(Path(qwen3_dir))
    if config.get("model_type") != "qwen3":
        raise ValueError(f"{qwen3_dir}: model_type {config.get('model_type')!r}, a Qwen3 checkpoint is needed")
    mine = vars(asr.model.args.text)
    different = [f for f in SHAPE_FIELDS if f in config and config[f] != mine.get(f)]
    if different:
        raise ValueError(f"{qwen3_dir}: {', '.join(different)} differ from the Fun-ASR-Nano LLM's")
    dtype = asr.model.llm.model.embed_tokens.weight.dtype
    weights = [(k, v.astype(dtype)) for k, v in named_parameters(other).items()]
    asr.model.llm.load_weights(weights, strict=True)
    mx.eval(asr.model.llm.parameters())
    asr.prompt_cache = PromptCache()  # its rows were computed with the old weights


def transcribe_all(asr: FunAsrNano, manifest: list[tuple[str, str]], max_tokens: int,
                   on_row: Callable[[], None] | None = None) -> list[str]:  # fmt: skip
    out = []
    for audio, _ in manifest:
        out.append(asr.transcribe(read_audio(audio), generation=GenerationConfig(max_tokens=max_tokens)).text)
        if on_row is not None:
            on_row()
    return out


def swap_llm_check(
    model: str, qwen3_dir: str, manifest: list[tuple[str, str]], max_tokens: int = 128,
    on_row: Callable[[], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    asr = FunAsrNano.load(model, dtype=mx.float32)
    references = [text for _, text in manifest]
    before = transcribe_all(asr, manifest, max_tokens, on_row)
    swap_llm(asr, qwen3_dir)
    after = transcribe_all(asr, manifest, max_tokens, on_row)
    return {
        "model": model, "swapped_llm": qwen3_dir, "utterances": len(manifest),
        "cer_before": corpus_cer(references, before), "cer_after": corpus_cer(references, after),
        "rows": [{"audio": a, "reference": r, "before": b, "after": s}
                 for (a, r), b, s in zip(manifest, before, after, strict=True)],
        "verdict": "no model was written: swapping the LLM is a measurement, not a way to build a translator",
    }  # fmt: skip
