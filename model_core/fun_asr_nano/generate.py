"""Decoding over prompt embeddings with the audio rows spliced in (mlx-lm model, KV cache and samplers).

Greedy by default (upstream uses HF greedy generate), sampling with temperature / top-p, both EOS ids, a token
callback for streaming, and a repetition guard against the loops users report on long or noisy audio.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import mlx.core as mx
import numpy as np
from mlx_lm.models import qwen3
from mlx_lm.models.cache import BatchKVCache
from mlx_lm.sample_utils import make_sampler

from .backends import numpy_decoder
from .backends.numpy_decoder import NumpyQwen3, row_flags
from .cache import PromptCache, make_cache, prefill
from .lora import adapter_rows


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


def decoder_backend(llm: qwen3.Model, backend: str = "auto") -> str:
    """auto -> numpy where numpy_decoder supports the weights (fp32 on the CPU), else mlx."""
    if backend == "auto":
        return "numpy" if numpy_decoder.supports(llm) else "mlx"
    if backend not in ("mlx", "numpy"):
        raise ValueError(f"backend must be auto, mlx or numpy, got {backend!r}")
    return backend


def _token_ids(tokens: mx.array) -> list[int]:
    """Sampled token ids (B,) -> Python ints."""
    return [int(t) for t in np.asarray(tokens).reshape(-1)]


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


def _numpy_steps(
    llm: qwen3.Model,
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
    llm: qwen3.Model,
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
        yield _token_ids(token)[0]
        if not last:
            token = upcoming


def generate(
    llm: qwen3.Model,
    prompt_embeddings: mx.array,
    config: GenerationConfig,
    eos_token_ids: tuple[int, ...],
    on_token: Callable[[int], None] | None = None,
    backend: str = "auto",
    prompt_cache: PromptCache | None = None,
    adapter: bool | None = None,
) -> Generation:
    """prompt_embeddings: (L, hidden). Returns the new tokens (EOS excluded). backend: auto, mlx or numpy.
    prompt_cache: reuse the keys and values of the rows this prompt shares with the last one.
    adapter: an unfused LoRA adapter on (True) or off (False); None: as lora.adapter_rows() says (on by default)."""
    steps = _numpy_steps if decoder_backend(llm, backend) == "numpy" else _mlx_steps
    tokens: list[int] = []
    with nullcontext() if adapter is None else adapter_rows(adapter):
        for token in steps(llm, prompt_embeddings, config, prompt_cache):
            if done := _take(tokens, token, config, eos_token_ids, on_token):
                return done
    return Generation(tokens, "length")


class _MlxBatch:
    """Left-padded prompts in mlx-lm's BatchKVCache (masks the padding, keeps each row's positions); the LoRA
    adapter on the rows whose flag is set (lora.adapter_rows around every call)."""

    def __init__(
        self, llm: qwen3.Model, prompts: list[mx.array], config: GenerationConfig, adapter: list[bool]
    ) -> None:
        lengths = [p.shape[0] for p in prompts]
        width, hidden = max(lengths), prompts[0].shape[1]
        self.padded = mx.stack(
            [mx.concatenate([mx.zeros((width - n, hidden), p.dtype), p]) for n, p in zip(lengths, prompts, strict=True)]
        )
        self.llm, self.sample = llm, _mlx_sampler(config)
        self.cache = [BatchKVCache([width - n for n in lengths]) for _ in llm.layers]
        self.adapter = adapter

    def first(self) -> list[int]:
        with adapter_rows(self.adapter):
            return _token_ids(self.sample(prefill(self.llm, self.padded, self.cache)))

    def next(self, tokens: list[int]) -> list[int]:
        with adapter_rows(self.adapter):
            return _token_ids(self.sample(self.llm(mx.array(tokens)[:, None], cache=self.cache)[:, -1]))

    def keep_rows(self, rows: list[int]) -> None:
        keep = mx.array(rows)
        for c in self.cache:
            c.filter(keep)
        self.adapter = [self.adapter[r] for r in rows]


class _NumpyBatch:
    """The same in numpy (numpy_decoder.NumpyQwen3 with a batch): one GEMM per layer over all rows, weights read
    once per step for the whole batch."""

    def __init__(
        self, llm: qwen3.Model, prompts: list[mx.array], config: GenerationConfig, adapter: list[bool]
    ) -> None:
        lengths = [p.shape[0] for p in prompts]
        width = max(lengths)
        mx.eval(prompts)
        self.padded = np.zeros((len(prompts), width, prompts[0].shape[1]), np.float32)
        for row, (n, p) in enumerate(zip(lengths, prompts, strict=True)):
            self.padded[row, width - n :] = np.array(p, dtype=np.float32)
        self.decoder = NumpyQwen3(llm, width + config.max_tokens + 1, [width - n for n in lengths], adapter)
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
    llm: qwen3.Model,
    prompts: list[mx.array],
    config: GenerationConfig,
    eos_token_ids: tuple[int, ...],
    backend: str = "auto",
    adapter: Sequence[bool] | None = None,
) -> list[Generation]:
    """Several prompts (each (L_i, hidden)) decoded together, left-padded into one batch with the padding masked
    and each row's positions kept, so every row decodes as it would alone. Finished rows leave the batch.
    backend: auto (numpy where generate() would use it), mlx or numpy. adapter: one flag per prompt, an unfused
    LoRA adapter on or off for that row (rows may differ); None: as lora.adapter_rows() says (on by default)."""
    flags = row_flags(len(prompts)) if adapter is None else [bool(a) for a in adapter]
    if len(flags) != len(prompts):
        raise ValueError(f"{len(flags)} adapter flags for {len(prompts)} prompts")
    batch = (_NumpyBatch if decoder_backend(llm, backend) == "numpy" else _MlxBatch)(llm, prompts, config, flags)
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
