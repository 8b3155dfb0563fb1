"""Decoding: mlx-lm's generate_step over prompt embeddings with the audio rows spliced in.

Greedy by default (upstream uses HF greedy generate), sampling with temperature / top-p, both EOS ids, a token
callback for streaming, and a repetition guard against the loops users report on long or noisy audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import KVCache
from mlx_lm.sample_utils import make_sampler


@dataclass
class GenerationConfig:
    max_tokens: int = 512  # upstream max_length
    temperature: float = 0.0  # 0 = greedy, as upstream
    top_p: float = 1.0
    repetition_guard: bool = True


@dataclass
class Generation:
    tokens: list[int]
    finish_reason: str  # "eos", "length" or "repetition"


def repeated_tail(tokens: list[int], max_ngram: int = 10, min_span: int = 24, min_repeats: int = 4) -> int:
    """Length of a looping tail: the last n-gram repeated back to back at least `min_repeats` times and over at
    least `min_span` tokens. 0 if the tail does not loop. Real speech repeats ("哈哈哈", "1 1 1") far less."""
    for n in range(1, max_ngram + 1):
        repeats = max(min_repeats, -(-min_span // n))
        span = n * repeats
        if len(tokens) < span:
            continue
        gram = tokens[-n:]
        if all(tokens[-(i + 1) * n : len(tokens) - i * n] == gram for i in range(repeats)):
            return span - n  # keep one copy
    return 0


def make_cache(model, total_tokens: int) -> list[KVCache]:  # noqa: ANN001
    """One preallocated KV buffer per layer, sized for prompt + max_tokens, so decoding never re-allocates."""
    caches = []
    for _ in model.layers:
        cache = KVCache()
        cache.step = total_tokens
        caches.append(cache)
    return caches


def generate(
    llm,  # noqa: ANN001 - an mlx-lm model that accepts input_embeddings
    prompt_embeddings: mx.array,
    config: GenerationConfig,
    eos_token_ids: tuple[int, ...],
    on_token: Callable[[int], None] | None = None,
) -> Generation:
    """prompt_embeddings: (L, hidden). Returns the new tokens (EOS excluded)."""
    sampler = make_sampler(temp=config.temperature, top_p=config.top_p if config.temperature > 0 else 0.0)
    cache = make_cache(llm, prompt_embeddings.shape[0] + config.max_tokens + 1)
    tokens: list[int] = []
    steps = generate_step(
        mx.array([], dtype=mx.int32), llm, max_tokens=config.max_tokens, sampler=sampler,
        prompt_cache=cache, input_embeddings=prompt_embeddings,
    )  # fmt: skip
    for token, _ in steps:
        if token in eos_token_ids:
            return Generation(tokens, "eos")
        tokens.append(token)
        if on_token is not None:
            on_token(token)
        if config.repetition_guard and (cut := repeated_tail(tokens)):
            return Generation(tokens[:-cut], "repetition")
    return Generation(tokens, "length")
