"""Qwen3 one-token decode steps in numpy, for Linux CPUs.

Why: decoding multiplies each weight matrix by a single vector. MLX's CPU backend sends that to BLAS `sgemm`
with M=1, which with the system OpenBLAS runs at ~8 GB/s, while `sgemv` (what numpy calls for matrix @ vector)
streams the weights at memory speed: measured 142 ms vs 21 ms for the 151,936 x 1,024 output layer on our 2-core
box. Prefill (many rows at once) stays in MLX, where GEMM is fast; the KV cache it fills is copied here once.

The weights are zero-copy numpy views of the MLX parameters (fp32 only), so this costs no extra memory.
"""

from __future__ import annotations

import numpy as np
from mlx_lm.models import qwen3


def _view(array) -> np.ndarray:  # noqa: ANN001 - an evaluated mlx array
    return np.asarray(array)


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


class _Layer:
    def __init__(self, block) -> None:  # noqa: ANN001 - an mlx-lm qwen3 TransformerBlock
        attn, mlp = block.self_attn, block.mlp
        self.wq, self.wk, self.wv, self.wo = (
            _view(p.weight) for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)
        )
        self.q_norm, self.k_norm = _view(attn.q_norm.weight), _view(attn.k_norm.weight)
        self.w_gate, self.w_up, self.w_down = (_view(p.weight) for p in (mlp.gate_proj, mlp.up_proj, mlp.down_proj))
        self.norm_in, self.norm_post = _view(block.input_layernorm.weight), _view(block.post_attention_layernorm.weight)


class NumpyDecoder:
    """Greedy-compatible replacement for `llm(token[None, None], cache=cache)[0, -1]` after an MLX prefill."""

    def __init__(self, llm: qwen3.Model, mlx_cache: list, max_tokens: int) -> None:  # noqa: ANN001
        args = llm.args
        self.eps = args.rms_norm_eps
        self.n_heads, self.n_kv = args.num_attention_heads, args.num_key_value_heads
        self.head_dim = args.head_dim
        self.layers = [_Layer(b) for b in llm.model.layers]
        self.embed = _view(llm.model.embed_tokens.weight)
        self.head = self.embed if args.tie_word_embeddings else _view(llm.lm_head.weight)
        self.final_norm = _view(llm.model.norm.weight)
        half = self.head_dim // 2
        self.inv_freq = (args.rope_theta ** (-np.arange(0, half, dtype=np.float64) * 2 / self.head_dim)).astype(
            np.float32
        )
        # the prompt's keys/values (RoPE already applied) move into preallocated buffers once
        self.length = mlx_cache[0].offset
        capacity = self.length + max_tokens + 1
        self.keys = np.zeros((len(self.layers), self.n_kv, capacity, self.head_dim), np.float32)
        self.values = np.zeros_like(self.keys)
        for i, c in enumerate(mlx_cache):
            k, v = c.state[0], c.state[1]
            self.keys[i, :, : self.length] = np.asarray(k[0, :, : self.length])
            self.values[i, :, : self.length] = np.asarray(v[0, :, : self.length])

    def _rope(self, x: np.ndarray, position: int) -> np.ndarray:
        """Non-interleaved RoPE (mlx nn.RoPE traditional=False): the two halves rotate together."""
        theta = position * self.inv_freq
        cos, sin = np.cos(theta), np.sin(theta)
        half = self.head_dim // 2
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def step(self, token: int) -> np.ndarray:
        """Logits (vocab,) for the next position after `token`."""
        pos = self.length
        h = self.embed[token].copy()
        group = self.n_heads // self.n_kv
        scale = self.head_dim**-0.5  # a Python float: an np.float64 here would turn every vector into float64,
        # and numpy would then cast each fp32 weight matrix to float64 before every product
        for i, layer in enumerate(self.layers):
            x = _rms_norm(h, layer.norm_in, self.eps)
            q = _rms_norm((layer.wq @ x).reshape(self.n_heads, self.head_dim), layer.q_norm, self.eps)
            k = _rms_norm((layer.wk @ x).reshape(self.n_kv, self.head_dim), layer.k_norm, self.eps)
            self.keys[i, :, pos] = self._rope(k, pos)
            self.values[i, :, pos] = (layer.wv @ x).reshape(self.n_kv, self.head_dim)
            q = self._rope(q, pos).reshape(self.n_kv, group, self.head_dim)
            keys, values = self.keys[i, :, : pos + 1], self.values[i, :, : pos + 1]  # (kv, T, d)
            scores = np.einsum("kgd,ktd->kgt", q, keys) * scale
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            attn = np.einsum("kgt,ktd->kgd", scores, values).reshape(-1)
            h = h + layer.wo @ attn
            x = _rms_norm(h, layer.norm_post, self.eps)
            gate = layer.w_gate @ x
            h = h + layer.w_down @ (gate / (1.0 + np.exp(-gate)) * (layer.w_up @ x))
        self.length += 1
        assert h.dtype == np.float32, h.dtype  # see `scale` above
        return self.head @ _rms_norm(h, self.final_norm, self.eps)
