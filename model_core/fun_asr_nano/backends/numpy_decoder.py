"""The Qwen3 decoder in numpy, for Linux CPUs (numpy_encoder.py does the same for the audio side).

Why: on Linux, MLX's CPU backend hands every matmul to the system BLAS (OpenBLAS 0.3.21 on Debian 12), while
numpy wheels bundle a newer OpenBLAS. Measured on our 2-core box (fp32): one token through the 151,936 x 1,024
output layer takes 81 ms in MLX (sgemm with M=1) and 20 ms in numpy (sgemv); the prompt's 36 x 1,024 x 3,072
products run at 41 vs 72 GFLOP/s. Decode went from 331 to 90 ms per token.

The weights are zero-copy numpy views of the MLX parameters (weights.weight_view; fp32 only), so this costs no
extra memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx_lm.models import qwen3

from ..lora import current_rows
from .weights import on_cpu, weight_view


def row_flags(rows: int) -> list[bool]:
    """lora.adapter_rows()'s setting now, as one flag per batch row."""
    state = current_rows()
    if isinstance(state, tuple):
        if len(state) != rows:
            raise ValueError(f"{len(state)} adapter flags for {rows} rows")
        return list(state)
    return [state is None] * rows


def supports(llm: qwen3.Model) -> bool:
    """Unquantized fp32 weights on the CPU device."""
    embed = llm.model.embed_tokens
    return on_cpu() and isinstance(embed, nn.Embedding) and embed.weight.dtype == mx.float32


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _linear(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x (T, in) @ weight.T. One row goes through matrix @ vector, which numpy sends to sgemv; several as
    (weight @ x.T).T, a free transpose that OpenBLAS runs 1.2-1.5x faster than x @ weight.T at T = 16-84 rows here
    (both are one sgemm; the weight as the left operand suits its kernels at small T)."""
    return (weight @ x[0])[None] if x.shape[0] == 1 else (weight @ x.T).T


class _Projection:
    """One linear layer's weights: the base matrix (out, in) and, for a LoRA layer (mlx-lm's LoRALinear, kept
    unfused), its A (in, r), B (r, out) and scale, so an adapter row computes x·Wᵀ + scale·(x·A)·B."""

    def __init__(self, module: nn.Module) -> None:
        base = module["linear"] if "linear" in module else module  # LoRALinear wraps the base linear
        self.weight = weight_view(base["weight"])
        self.lora = None
        if "lora_a" in module:
            self.lora = (weight_view(module.lora_a), weight_view(module.lora_b), float(module.scale))

    def __call__(self, x: np.ndarray, on: np.ndarray | None) -> np.ndarray:
        """x (N, in); `on`: the adapter flag of each of the N rows (None: off for all)."""
        y = _linear(x, self.weight)
        if self.lora is None or on is None:
            return y
        a, b, scale = self.lora
        z = (x @ a) @ b * scale
        return y + (z if on.all() else z * on[:, None])


class _Layer:
    def __init__(self, block: qwen3.TransformerBlock) -> None:
        attn, mlp = block.self_attn, block.mlp
        self.q, self.k, self.v, self.o = (_Projection(p) for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj))
        self.q_norm, self.k_norm = weight_view(attn.q_norm.weight), weight_view(attn.k_norm.weight)
        self.gate, self.up, self.down = (_Projection(p) for p in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        self.norm_in = weight_view(block.input_layernorm.weight)
        self.norm_post = weight_view(block.post_attention_layernorm.weight)

    def projections(self) -> tuple[_Projection, ...]:
        return self.q, self.k, self.v, self.o, self.gate, self.up, self.down


class NumpyQwen3:
    """Qwen3 forward passes in numpy with a preallocated KV cache: `forward(prompt)` once, then one token at a
    time. Same computation as mlx-lm's qwen3 (checked token for token in the tests).

    A batch (`pad`: one entry per row; `forward_batch` / `step_batch`) holds prompts left-padded to one width: row b's
    first `pad[b]` columns are padding, masked as keys, and its RoPE positions start at its first real column, so
    every row computes what it would alone. The product of each layer is one GEMM over all rows.

    LoRA layers (unfused) add their update on the rows whose `adapter` flag is on (one per row; None: as
    lora.adapter_rows() says now, on by default), so rows with and without the adapter share one batch.
    """

    def __init__(
        self, llm: qwen3.Model, capacity: int, pad: Sequence[int] = (0,), adapter: Sequence[bool] | None = None
    ) -> None:
        args = llm.args
        self.eps = args.rms_norm_eps
        self.n_heads, self.n_kv = args.num_attention_heads, args.num_key_value_heads
        self.head_dim = args.head_dim
        self.layers = [_Layer(b) for b in llm.model.layers]
        self.embed = weight_view(llm.model.embed_tokens.weight)
        self.head = self.embed if args.tie_word_embeddings else weight_view(llm.lm_head.weight)
        self.final_norm = weight_view(llm.model.norm.weight)
        exponents = np.arange(0, self.head_dim // 2, dtype=np.float64) * 2 / self.head_dim
        self.inv_freq = (float(args.rope_theta or 10000.0) ** -exponents).astype(np.float32)
        self.pad = np.asarray(pad, dtype=np.int64)
        shape = (len(self.layers), len(self.pad), self.n_kv, capacity, self.head_dim)
        self.keys = np.zeros(shape, np.float32)
        self.values = np.zeros_like(self.keys)
        self.length = 0  # columns filled, padding included
        self.has_lora = any(p.lora is not None for layer in self.layers for p in layer.projections())
        self.adapter = np.asarray(row_flags(len(self.pad)) if adapter is None else adapter, dtype=bool)
        if self.adapter.shape != self.pad.shape:
            raise ValueError(f"{len(self.adapter)} adapter flags for {len(self.pad)} rows")

    @property
    def adapter_on(self) -> bool:
        """Whether the (first) row goes through the adapter: the prompt cache keeps such rows apart."""
        return bool(self.adapter[0]) and self.has_lora

    def _rope(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Non-interleaved RoPE (mlx nn.RoPE traditional=False): the two halves rotate together.
        x: (B, T, heads, d), positions: (B, T)."""
        theta = positions[..., None, None].astype(np.float32) * self.inv_freq
        cos, sin = np.cos(theta), np.sin(theta)
        half = self.head_dim // 2
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def forward_batch(self, h: np.ndarray) -> np.ndarray:
        """h: (B, T, hidden) embeddings of the next T columns of every row -> logits (B, vocab) after the last."""
        rows, steps, _ = h.shape
        start, end = self.length, self.length + steps
        columns = np.arange(start, end)
        positions = np.maximum(columns[None, :] - self.pad[:, None], 0)  # (B, T); padding columns: any position
        keys_at = np.arange(end)
        # (B, T, end): causal, never a row's padding, and a padding column sees itself (so it stays finite: its
        # values are multiplied by zero weights, and 0 x NaN would spoil the real columns)
        visible = (keys_at <= columns[:, None])[None] & (keys_at[None, None, :] >= self.pad[:, None, None])
        visible |= (keys_at == columns[:, None])[None]
        masked = not visible.all()
        group = self.n_heads // self.n_kv
        # a Python float: an np.float64 scale would turn the activations into float64, and numpy would then
        # cast every fp32 weight matrix to float64 before each product (10x slower)
        scale = self.head_dim**-0.5
        h = h.reshape(rows * steps, -1)
        on = np.repeat(self.adapter, steps) if self.has_lora and self.adapter.any() else None  # per flattened row
        for i, layer in enumerate(self.layers):
            x = _rms_norm(h, layer.norm_in, self.eps)
            q = layer.q(x, on).reshape(rows, steps, self.n_heads, self.head_dim)
            k = layer.k(x, on).reshape(rows, steps, self.n_kv, self.head_dim)
            q, k = _rms_norm(q, layer.q_norm, self.eps), _rms_norm(k, layer.k_norm, self.eps)
            self.keys[i, :, :, start:end] = self._rope(k, positions).transpose(0, 2, 1, 3)
            v = layer.v(x, on).reshape(rows, steps, self.n_kv, self.head_dim)
            self.values[i, :, :, start:end] = v.transpose(0, 2, 1, 3)
            q = self._rope(q, positions).reshape(rows, steps, self.n_kv, group, self.head_dim)
            scores = np.einsum("btkgd,bksd->bkgts", q, self.keys[i, :, :, :end]) * scale
            if masked:
                scores = np.where(visible[:, None, None], scores, -np.inf)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            attn = np.einsum("bkgts,bksd->btkgd", scores, self.values[i, :, :, :end]).reshape(rows * steps, -1)
            h = h + layer.o(attn, on)
            x = _rms_norm(h, layer.norm_post, self.eps)
            gate = layer.gate(x, on)
            h = h + layer.down(gate / (1.0 + np.exp(-gate)) * layer.up(x, on), on)
        self.length = end
        assert h.dtype == np.float32, h.dtype  # see `scale` above
        last = h.reshape(rows, steps, -1)[:, -1]
        return _linear(_rms_norm(last, self.final_norm, self.eps), self.head)

    def step_batch(self, tokens: Sequence[int]) -> np.ndarray:
        """One new token per row -> logits (B, vocab)."""
        return self.forward_batch(self.embed[np.asarray(tokens)][:, None])

    def keep_rows(self, rows: Sequence[int]) -> None:
        """Drop the other rows (finished prompts) from the batch."""
        keep = np.asarray(rows)
        self.keys, self.values, self.pad = self.keys[:, keep], self.values[:, keep], self.pad[keep]
        self.adapter = self.adapter[keep]

    def forward(self, h: np.ndarray) -> np.ndarray:
        """One prompt: h (T, hidden) -> logits (vocab,) after its last position."""
        return self.forward_batch(h[None])[0]

    def step(self, token: int) -> np.ndarray:
        return self.step_batch([token])[0]
