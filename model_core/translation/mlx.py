"""Local text translation with any mlx-lm-loadable instruct model (Qwen2.5-0.5B/1.5B-Instruct, Qwen3-0.6B, ...).

Same prompt (prompt.build_messages: the transcript is data, not instructions) and the same `Translator` protocol
as the llama.cpp and remote engines, so the translate-text and llm-fallback nodes share one node implementation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from mlx.utils import tree_flatten

from ..common.blas import openblas_loaded
from ..common.errors import ModelNotLoaded
from ..common.settings import default_dtype
from .base import Translation, collect_stream, require_text
from .english_only import banned_token_mask
from .prompt import build_messages


class MlxTranslator:
    """An mlx-lm model run in-process (the macOS default engine; fp32 on Linux CPU)."""

    def __init__(
        self,
        model: str,
        max_output_tokens: int = 256,
        temperature: float = 0.0,
        timeout_s: float | None = None,
        adapter_path: str | None = None,
        english_only: bool = True,
    ) -> None:
        """adapter_path: an mlx-lm LoRA adapter folder (e.g. `dfn-train-translator`'s), applied unfused.
        english_only: no token that writes a character at U+3000 or above (english_only.py), as llama.cpp's."""
        from mlx_lm import load

        try:
            self.model, self.tokenizer = load(model, adapter_path=adapter_path)[:2]
        except Exception as exc:  # mlx-lm raises FileNotFoundError, ValueError, hub errors...
            raise ModelNotLoaded(f"cannot load the translation model {model!r}: {type(exc).__name__}: {exc}") from exc
        self.name, self.adapter_path = model, adapter_path
        self._cast_for_platform()
        self.max_output_tokens, self.temperature, self.timeout_s = max_output_tokens, temperature, timeout_s
        self._prefix: dict[tuple[str, int], tuple[list[int], list]] = {}  # shared prompt prefix: tokens, KV state
        self.logits_processors = [self._english_only_processor()] if english_only else None

    def _english_only_processor(self) -> Callable:
        import mlx.core as mx
        from mlx_lm.tokenizer_utils import _byte_decoder

        decoder = _byte_decoder()  # byte-level BPE pieces -> their bytes (special tokens are plain ASCII)
        pieces = self.tokenizer.convert_ids_to_tokens(list(range(max(self.tokenizer.vocab.values()) + 1)))
        banned = banned_token_mask(bytes(decoder.get(c, 0) for c in piece or "") for piece in pieces)
        rows = self.model.args.vocab_size if hasattr(self.model, "args") else banned.size
        padded = np.zeros(rows, dtype=bool)  # the output layer may have spare rows past the tokenizer's ids
        padded[: min(rows, banned.size)] = banned[:rows]
        mask = mx.array(padded)
        return lambda _tokens, logits: mx.where(mask, -mx.inf, logits)

    def _cast_for_platform(self) -> None:
        """fp32 on Linux CPU, where only fp32 matmuls reach BLAS (bf16 checkpoints are ~40x slower there);
        quantized models are left as they are."""
        import mlx.core as mx
        from mlx.utils import tree_map

        dtype = default_dtype()
        if dtype == mx.float32 and not any("scales" in k for k in dict(tree_flatten(self.model.parameters()))):
            self.model.update(tree_map(lambda p: p.astype(dtype) if mx.issubdtype(p.dtype, mx.floating) else p,
                                       self.model.parameters()))  # fmt: skip
            mx.eval(self.model.parameters())

    def __repr__(self) -> str:
        adapter = f", adapter={self.adapter_path!r}" if self.adapter_path else ""
        return f"MlxTranslator(model={self.name!r}{adapter}, openblas={openblas_loaded()})"

    def translate(
        self,
        text: str,
        *,
        source_language: str = "zh",
        context: Sequence[str] = (),
        on_partial: Callable[[str], None] | None = None,
    ) -> Translation:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        require_text(text)
        t0 = time.perf_counter()
        messages = build_messages(text, source_language, context)
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        prompt, cache = self._reuse_prefix(prompt, messages)
        responses = stream_generate(
            self.model, self.tokenizer, prompt, max_tokens=self.max_output_tokens,
            sampler=make_sampler(temp=self.temperature), prompt_cache=cache, logits_processors=self.logits_processors,
        )  # fmt: skip
        return collect_stream(((r.text, r.finish_reason) for r in responses), on_partial, self.timeout_s, t0)

    def _shared_prefix(self, messages: list[dict[str, str]]) -> list[int]:
        """The tokens every prompt with these earlier messages starts with: the longest common prefix of two
        renderings that differ only in the last message (templates such as Qwen3's render the last turns
        differently from earlier ones, so the earlier messages alone are not a safe prefix)."""
        a, b = (
            self.tokenizer.apply_chat_template([*messages[:-1], {"role": "user", "content": text}],
                                               add_generation_prompt=True)
            for text in ("甲", "乙")
        )  # fmt: skip
        n = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        return list(a[:n])

    def _reuse_prefix(self, prompt: list[int], messages: list[dict[str, str]]) -> tuple[list[int], list | None]:
        """Every prompt starts with the same system message and worked examples: their keys/values are computed
        once and each call starts from a copy (llama.cpp reuses a common prefix the same way). Returns the tokens
        still to process and the cache to process them with (None: no usable prefix)."""
        import mlx.core as mx
        from mlx_lm.models.cache import KVCache, make_prompt_cache

        key = (messages[0]["content"], len(messages))
        if key not in self._prefix:
            prefix = self._shared_prefix(messages)
            cache = make_prompt_cache(self.model)
            if not prefix or not all(type(c) is KVCache for c in cache):  # e.g. sliding-window caches
                return prompt, None
            self.model(mx.array([prefix]), cache=cache)
            # trimmed to the prefix: the first update of a copy then allocates new buffers (never writes into these)
            states = [(c.keys[..., : c.offset, :], c.values[..., : c.offset, :], c.offset) for c in cache]
            mx.eval([s[:2] for s in states])
            self._prefix = {key: (prefix, states)}  # one entry: the system message changes only with context on/off
        prefix, states = self._prefix[key]
        if not len(prefix) < len(prompt) or prompt[: len(prefix)] != prefix:
            return prompt, None
        cache = make_prompt_cache(self.model)
        for layer, state in zip(cache, states, strict=True):
            layer.state = state
        return prompt[len(prefix) :], cache

    def close(self) -> None:
        pass
