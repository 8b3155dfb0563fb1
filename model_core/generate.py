"""Decoding over prompt embeddings with the audio rows spliced in (mlx-lm model, KV cache and samplers).

Greedy by default (upstream uses HF greedy generate), sampling with temperature / top-p, both EOS ids, a token
callback for streaming, and a repetition guard against the loops users report on long or noisy audio.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models.cache import BatchKVCache, KVCache
from mlx_lm.sample_utils import make_sampler

from .cpu_decode import NumpyQwen3


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


def numpy_decode_available(llm) -> bool:  # noqa: ANN001
    """The numpy decode path (cpu_decode.py) applies to fp32, unquantized weights on the CPU device."""
    if os.environ.get("DFN_DECODE", "auto") == "mlx" or mx.default_device() != mx.cpu:
        return False
    embed = llm.model.embed_tokens
    return isinstance(embed, nn.Embedding) and embed.weight.dtype == mx.float32


def _sample_numpy(logits: np.ndarray, config: GenerationConfig, rng: np.random.Generator) -> int:
    if config.temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / config.temperature
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if config.top_p < 1.0:  # keep the smallest set of tokens whose mass reaches top_p
        order = np.argsort(-probs)
        cut = int(np.searchsorted(np.cumsum(probs[order]), config.top_p)) + 1
        probs[order[cut:]] = 0.0
        probs /= probs.sum()
    return int(rng.choice(probs.size, p=probs))


def _mlx_sampler(config: GenerationConfig) -> Callable[[mx.array], mx.array]:
    """logits (B, vocab) -> tokens (B,) with mlx-lm's sampler (greedy at temperature 0)."""
    sampler = make_sampler(temp=config.temperature, top_p=config.top_p if config.temperature > 0 else 0.0)
    return lambda logits: sampler(logits - mx.logsumexp(logits, axis=-1, keepdims=True))


def _take(
    tokens: list[int], token: int, config: GenerationConfig, eos_token_ids: tuple[int, ...],
    on_token: Callable[[int], None] | None = None,
) -> Generation | None:  # fmt: skip
    """Append `token` to a sequence; the finished Generation if it ends there (EOS or a looping tail)."""
    if token in eos_token_ids:
        return Generation(tokens, "eos")
    tokens.append(token)
    if on_token is not None:
        on_token(token)
    if config.repetition_guard and (cut := repeated_tail(tokens)):
        return Generation(tokens[:-cut], "repetition")
    return None


def prefill(llm, prompt_embeddings: mx.array, cache: list) -> mx.array:  # noqa: ANN001
    """Run the prompt (B, L, hidden) through the LLM, filling `cache`; logits (B, vocab) of the last position only
    (the output layer is 151,936 x 1,024: projecting every prompt position would cost ~0.3 GFLOP each)."""
    hidden = llm.model(mx.zeros((prompt_embeddings.shape[0], 0), mx.int32), cache, prompt_embeddings)[:, -1]
    if llm.args.tie_word_embeddings:
        return llm.model.embed_tokens.as_linear(hidden)
    return llm.lm_head(hidden)


def _shared_rows(saved: tuple | None, prompt: np.ndarray, backend: str) -> int:
    """Leading rows of `prompt` equal to the saved prompt's (if saved by this backend), leaving at least the
    prompt's last row (its logits are the result)."""
    if saved is None or saved[0] != backend:
        return 0
    n = min(len(saved[1]), len(prompt) - 1)
    same = np.all(saved[1][:n] == prompt[:n], axis=1)
    return n if same.all() else int(same.argmin())


class PromptCache:
    """The keys and values of the last prompt, so that the next prompt skips the rows it begins with too.

    Every Fun-ASR-Nano prompt starts with the same chat template and task text (20 of the 36 positions for 5 s of
    audio), and a position's keys and values depend only on the rows up to it; llama.cpp reuses a shared prefix
    the same way. The match is row by row, so hotwords or another task simply share fewer rows. One cache per
    model (the saved keys belong to its weights); ~0.23 MB per saved position at Qwen3-0.6B's shapes (fp32).
    Both decode paths use it: numpy (NumpyQwen3's arrays) and MLX (mlx-lm KVCache).
    """

    def __init__(self) -> None:
        self._saved: tuple[str, np.ndarray, Any, Any] | None = None  # backend, rows, keys, values

    def clear(self) -> None:
        self._saved = None

    def shared_rows(self, prompt: np.ndarray, backend: str = "numpy") -> int:
        """How many leading rows of `prompt` the saved prompt has too (it always leaves one row to compute)."""
        return _shared_rows(self._saved, prompt, backend)

    def prefill(self, decoder: NumpyQwen3, prompt: np.ndarray) -> np.ndarray:
        """decoder.forward(prompt) on a fresh one-row decoder, reusing the shared leading rows; saves this prompt."""
        if decoder.length or len(decoder.pad) != 1:
            raise ValueError("PromptCache.prefill needs a one-row decoder that has not run yet")
        saved = self._saved  # read once: another thread may save meanwhile
        shared = _shared_rows(saved, prompt, "numpy")
        if shared:
            decoder.keys[:, 0, :, :shared] = saved[2][:, :, :shared]
            decoder.values[:, 0, :, :shared] = saved[3][:, :, :shared]
            decoder.length = shared
        logits = decoder.forward(prompt[shared:])
        end = len(prompt)
        self._saved = ("numpy", prompt.copy(), decoder.keys[:, 0, :, :end].copy(), decoder.values[:, 0, :, :end].copy())
        return logits

    def prefill_mlx(self, llm, prompt: mx.array, cache: list[KVCache]) -> mx.array:  # noqa: ANN001
        """prefill(llm, prompt[None], cache) on fresh caches, reusing the shared leading rows; saves this prompt."""
        if any(c.offset for c in cache):
            raise ValueError("PromptCache.prefill_mlx needs caches that have not run yet")
        rows = np.array(prompt.astype(mx.float32))
        saved = self._saved
        shared = _shared_rows(saved, rows, "mlx")
        if shared:
            for c, k, v in zip(cache, saved[2], saved[3], strict=True):
                c.update_and_fetch(k[:, :, :shared], v[:, :, :shared])
        logits = prefill(llm, prompt[None, shared:], cache)
        end = prompt.shape[0]
        # copies, not views: a view would keep the cache buffer shared, and every decode step would then copy it
        keys = [mx.contiguous(c.keys[:, :, :end]) for c in cache]
        values = [mx.contiguous(c.values[:, :, :end]) for c in cache]
        mx.eval(logits, keys, values)
        self._saved = ("mlx", rows, keys, values)
        return logits


def _numpy_steps(
    llm,  # noqa: ANN001
    prompt_embeddings: mx.array,
    config: GenerationConfig,
    prompt_cache: PromptCache | None,
) -> Iterator[int]:
    decoder = NumpyQwen3(llm, prompt_embeddings.shape[0] + config.max_tokens + 1)
    rng = np.random.default_rng()
    mx.eval(prompt_embeddings)
    prompt = np.array(prompt_embeddings, dtype=np.float32)
    logits = decoder.forward(prompt) if prompt_cache is None else prompt_cache.prefill(decoder, prompt)
    token = _sample_numpy(logits, config, rng)
    for n in range(config.max_tokens):
        yield token
        if n + 1 < config.max_tokens:
            token = _sample_numpy(decoder.step(token), config, rng)


def _mlx_steps(
    llm,  # noqa: ANN001
    prompt_embeddings: mx.array,
    config: GenerationConfig,
    prompt_cache: PromptCache | None,
) -> Iterator[int]:
    sample = _mlx_sampler(config)
    cache = make_cache(llm, prompt_embeddings.shape[0] + config.max_tokens + 1)
    if prompt_cache is None:
        token = sample(prefill(llm, prompt_embeddings[None], cache))
    else:
        token = sample(prompt_cache.prefill_mlx(llm, prompt_embeddings, cache))
    mx.async_eval(token)
    for n in range(config.max_tokens):
        last = n + 1 == config.max_tokens
        if not last:  # queue the next step before reading this token: no idle host sync
            upcoming = sample(llm(token[:, None], cache=cache)[:, -1])
            mx.async_eval(upcoming)
        yield int(token.item())
        if not last:
            token = upcoming


def generate(
    llm,  # noqa: ANN001 - an mlx-lm model that accepts input_embeddings
    prompt_embeddings: mx.array,
    config: GenerationConfig,
    eos_token_ids: tuple[int, ...],
    on_token: Callable[[int], None] | None = None,
    backend: str = "auto",
    prompt_cache: PromptCache | None = None,
) -> Generation:
    """prompt_embeddings: (L, hidden). Returns the new tokens (EOS excluded). backend: auto, mlx or numpy.
    prompt_cache: reuse the keys and values of the rows this prompt shares with the last one."""
    if backend == "auto":
        backend = "numpy" if numpy_decode_available(llm) else "mlx"
    steps = _numpy_steps if backend == "numpy" else _mlx_steps
    tokens: list[int] = []
    for token in steps(llm, prompt_embeddings, config, prompt_cache):
        if done := _take(tokens, token, config, eos_token_ids, on_token):
            return done
    return Generation(tokens, "length")


class _MlxBatch:
    """Left-padded prompts in mlx-lm's BatchKVCache (masks the padding, keeps each row's positions)."""

    def __init__(self, llm, prompts: list[mx.array], config: GenerationConfig) -> None:  # noqa: ANN001
        lengths = [p.shape[0] for p in prompts]
        width, hidden = max(lengths), prompts[0].shape[1]
        self.padded = mx.stack(
            [mx.concatenate([mx.zeros((width - n, hidden), p.dtype), p]) for n, p in zip(lengths, prompts, strict=True)]
        )
        self.llm, self.sample = llm, _mlx_sampler(config)
        self.cache = [BatchKVCache([width - n for n in lengths]) for _ in llm.layers]

    def first(self) -> list[int]:
        return self.sample(prefill(self.llm, self.padded, self.cache)).tolist()

    def next(self, tokens: list[int]) -> list[int]:
        return self.sample(self.llm(mx.array(tokens)[:, None], cache=self.cache)[:, -1]).tolist()

    def keep_rows(self, rows: list[int]) -> None:
        keep = mx.array(rows)
        for c in self.cache:
            c.filter(keep)


class _NumpyBatch:
    """The same in numpy (cpu_decode.NumpyQwen3 with a batch): one GEMM per layer over all rows, weights read
    once per step for the whole batch."""

    def __init__(self, llm, prompts: list[mx.array], config: GenerationConfig) -> None:  # noqa: ANN001
        lengths = [p.shape[0] for p in prompts]
        width = max(lengths)
        mx.eval(prompts)
        self.padded = np.zeros((len(prompts), width, prompts[0].shape[1]), np.float32)
        for row, (n, p) in enumerate(zip(lengths, prompts, strict=True)):
            self.padded[row, width - n :] = np.array(p, dtype=np.float32)
        self.decoder = NumpyQwen3(llm, width + config.max_tokens + 1, pad=[width - n for n in lengths])
        self.config, self.rng = config, np.random.default_rng()

    def _sample(self, logits: np.ndarray) -> list[int]:
        return [_sample_numpy(row, self.config, self.rng) for row in logits]

    def first(self) -> list[int]:
        return self._sample(self.decoder.forward_batch(self.padded))

    def next(self, tokens: list[int]) -> list[int]:
        return self._sample(self.decoder.step_batch(tokens))

    def keep_rows(self, rows: list[int]) -> None:
        self.decoder.keep_rows(rows)


def generate_batch(
    llm,  # noqa: ANN001
    prompts: list[mx.array],
    config: GenerationConfig,
    eos_token_ids: tuple[int, ...],
    backend: str = "auto",
) -> list[Generation]:
    """Several prompts (each (L_i, hidden)) decoded together, left-padded into one batch with the padding masked
    and each row's positions kept, so every row decodes as it would alone. Finished rows leave the batch.
    backend: auto (numpy where generate() would use it), mlx or numpy."""
    if backend == "auto":
        backend = "numpy" if numpy_decode_available(llm) else "mlx"
    batch = (_NumpyBatch if backend == "numpy" else _MlxBatch)(llm, prompts, config)
    tokens = batch.first()
    results: list[Generation | None] = [None] * len(prompts)
    outputs: list[list[int]] = [[] for _ in prompts]
    active = list(range(len(prompts)))  # batch row -> prompt index
    for step in range(config.max_tokens):
        still = []
        for row, (index, token) in enumerate(zip(active, tokens, strict=True)):
            if done := _take(outputs[index], token, config, eos_token_ids):
                results[index] = done
            else:
                still.append(row)
        if not still or step == config.max_tokens - 1:
            break
        if len(still) < len(active):
            batch.keep_rows(still)
            tokens = [tokens[row] for row in still]
            active = [active[row] for row in still]
        tokens = batch.next(tokens)
    return [r if r is not None else Generation(outputs[i], "length") for i, r in enumerate(results)]
