"""KV caches for the Fun-ASR-Nano LLM: preallocated mlx-lm caches, the prompt prefill that fills them, and the
PromptCache that keeps the keys and values of the rows every prompt shares (the chat template)."""

from __future__ import annotations

from typing import Any, NamedTuple

import mlx.core as mx
import numpy as np
from mlx_lm.models import qwen3
from mlx_lm.models.cache import KVCache

from .backends.numpy_decoder import NumpyQwen3
from .lora import adapter_active


def make_cache(model: qwen3.Model, total_tokens: int) -> list[KVCache]:
    """One preallocated KV buffer per layer, sized for prompt + max_tokens, so decoding never re-allocates."""
    caches = []
    for _ in model.layers:
        cache = KVCache()
        cache.step = total_tokens
        caches.append(cache)
    return caches


def prefill(llm: qwen3.Model, prompt_embeddings: mx.array, cache: list[Any]) -> mx.array:
    """Run the prompt (B, L, hidden) through the LLM, filling `cache`; logits (B, vocab) of the last position only
    (the output layer is 151,936 x 1,024: projecting every prompt position would cost ~0.3 GFLOP each)."""
    hidden = llm.model(mx.zeros((prompt_embeddings.shape[0], 0), mx.int32), cache, prompt_embeddings)[:, -1]
    if llm.args.tie_word_embeddings:
        return llm.model.embed_tokens.as_linear(hidden)
    return llm.lm_head(hidden)


class _Saved(NamedTuple):
    rows: np.ndarray  # the prompt's embedding rows (L, hidden)
    keys: Any  # numpy (layers, kv heads, L, head_dim), or one mx.array (1, kv heads, L, head_dim) per layer
    values: Any


# what a saved prompt was computed by: the backend ("numpy" or "mlx": each keeps keys in its own arrays) and
# whether the LoRA adapter was on (its keys and values differ from the base model's from the first layer on)
Slot = tuple[str, bool]


def _shared_rows(saved: _Saved | None, prompt: np.ndarray) -> int:
    """Leading rows of `prompt` equal to the saved prompt's, leaving at least the prompt's last row (its logits are
    the result)."""
    if saved is None:
        return 0
    n = min(len(saved.rows), len(prompt) - 1)
    same = np.all(saved.rows[:n] == prompt[:n], axis=1)
    return n if same.all() else int(same.argmin())


class PromptCache:
    """The keys and values of the last prompt, so that the next prompt skips the rows it begins with too.

    Every Fun-ASR-Nano prompt starts with the same chat template and task text (20 of the 36 positions for 5 s of
    audio), and a position's keys and values depend only on the rows up to it; llama.cpp reuses a shared prefix
    the same way. The match is row by row, so hotwords or another task simply share fewer rows. One cache per
    model (the saved keys belong to its weights); ~0.23 MB per saved position at Qwen3-0.6B's shapes (fp32).
    Both decode paths use it: numpy (NumpyQwen3's arrays) and MLX (mlx-lm KVCache). Prompts computed with the
    LoRA adapter on and off are kept apart (one saved prompt each), so tasks that alternate never mix them.
    """

    def __init__(self) -> None:
        self._saved: dict[Slot, _Saved] = {}

    def clear(self) -> None:
        self._saved = {}

    def shared_rows(self, prompt: np.ndarray, backend: str = "numpy", adapter: bool = False) -> int:
        """How many leading rows of `prompt` the saved prompt has too (it always leaves one row to compute)."""
        return _shared_rows(self._saved.get((backend, adapter)), prompt)

    def prefill(self, decoder: NumpyQwen3, prompt: np.ndarray) -> np.ndarray:
        """decoder.forward(prompt) on a fresh one-row decoder, reusing the shared leading rows; saves this prompt."""
        if decoder.length or len(decoder.pad) != 1:
            raise ValueError("PromptCache.prefill needs a one-row decoder that has not run yet")
        slot = ("numpy", decoder.adapter_on)
        saved = self._saved.get(slot)  # read once: another thread may save meanwhile
        shared = _shared_rows(saved, prompt)
        if saved is not None and shared:
            decoder.keys[:, 0, :, :shared] = saved.keys[:, :, :shared]
            decoder.values[:, 0, :, :shared] = saved.values[:, :, :shared]
            decoder.length = shared
        logits = decoder.forward(prompt[shared:])
        end = len(prompt)
        self._saved = {
            **self._saved,
            slot: _Saved(prompt.copy(), decoder.keys[:, 0, :, :end].copy(), decoder.values[:, 0, :, :end].copy()),
        }
        return logits

    def prefill_mlx(self, llm: qwen3.Model, prompt: mx.array, cache: list[KVCache]) -> mx.array:
        """prefill(llm, prompt[None], cache) on fresh caches, reusing the shared leading rows; saves this prompt."""
        if any(c.offset for c in cache):
            raise ValueError("PromptCache.prefill_mlx needs caches that have not run yet")
        rows = np.array(prompt.astype(mx.float32))
        slot = ("mlx", adapter_active(llm))  # the adapter as lora.adapter_rows() sets it for this call
        saved = self._saved.get(slot)
        shared = _shared_rows(saved, rows)
        if saved is not None and shared:
            for c, k, v in zip(cache, saved.keys, saved.values, strict=True):
                c.update_and_fetch(k[:, :, :shared], v[:, :, :shared])
        logits = prefill(llm, prompt[None, shared:], cache)
        end = prompt.shape[0]
        # copies, not views: a view would keep the cache buffer shared, and every decode step would then copy it
        keys, values = [], []
        for c in cache:
            assert c.keys is not None and c.values is not None  # filled by the prefill above
            keys.append(mx.contiguous(c.keys[:, :, :end]))
            values.append(mx.contiguous(c.values[:, :, :end]))
        mx.eval(logits, keys, values)
        self._saved = {**self._saved, slot: _Saved(rows, keys, values)}
        return logits
