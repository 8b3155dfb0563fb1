"""Fun-ASR-Nano's audio adaptor (upstream's "Transformer" adaptor) in MLX, and the audio token count.

A port of `funasr/models/llm_asr/adaptor.py::Transformer` (FunASR 1.4.16) with its blocks from
`funasr/models/transformer/{encoder,attention,positionwise_feed_forward,layer_norm}.py`. Attribute names follow
upstream, so checkpoint keys map 1:1 once the `audio_adaptor.` prefix is stripped (`AudioAdaptor.sanitize`).

    x (B, T, encoder_dim)
      group downsample_rate frames (zero padding at the end) → linear1 → ReLU → linear2   (B, ⌈T/k⌉, llm_dim)
      n_layer pre-LN transformer blocks (LayerNorm eps 1e-12; separate q/k/v/out projections; FFN llm_dim // 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .encoder import PositionwiseFeedForward  # the same w_1 -> ReLU -> w_2 block upstream

LN_EPS = 1e-12  # funasr.models.transformer.layer_norm.LayerNorm


@dataclass
class AdaptorArgs:
    downsample_rate: int = 1
    encoder_dim: int = 512
    llm_dim: int = 1024
    ffn_dim: int = 2048  # width of linear1/linear2 only; the blocks' FFN is llm_dim // 4 whatever this says
    n_layer: int = 2
    attention_heads: int = 8

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> AdaptorArgs:
        """From `audio_adaptor_conf` of the checkpoint's config.yaml; unknown keys (dropout, `use_low_frame_rate`, …)
        ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


def fake_token_len(t_lfr: int) -> int:
    """How many adaptor rows go to the LLM for `t_lfr` LFR frames (≈ t_lfr / 8; 10 s → 21).

    Upstream `FunASRNano.data_load_speech` with `use_low_frame_rate` (funasr/models/fun_asr_nano/model.py): the
    lengths of three stride-2 downsamplings the current adaptor no longer performs; the prompt holds this many audio
    positions and only the first `fake_token_len` adaptor rows fill them.
    """
    olens = 1 + (t_lfr - 3 + 2 * 1) // 2
    olens = 1 + (olens - 3 + 2 * 1) // 2
    return (olens - 1) // 2 + 1


class MultiHeadedAttention(nn.Module):
    def __init__(self, n_head: int, n_feat: int):
        super().__init__()
        assert n_feat % n_head == 0
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)

    def __call__(self, x: mx.array, attn_mask: mx.array | None) -> mx.array:
        b, t, _ = x.shape
        q, k, v = (
            lin(x).reshape(b, t, self.h, self.d_k).transpose(0, 2, 1, 3)
            for lin in (self.linear_q, self.linear_k, self.linear_v)
        )
        # key-padding mask, True on valid keys: equals upstream's masked_fill(-inf) → softmax → masked_fill(0)
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.d_k**-0.5, mask=attn_mask)
        return self.linear_out(o.transpose(0, 2, 1, 3).reshape(b, t, -1))


class EncoderLayer(nn.Module):
    """funasr.models.transformer.encoder.EncoderLayer as the adaptor builds it: pre-LN, no concat_after."""

    def __init__(self, size: int, n_head: int):
        super().__init__()
        self.self_attn = MultiHeadedAttention(n_head, size)
        self.feed_forward = PositionwiseFeedForward(size, size // 4)
        self.norm1 = nn.LayerNorm(size, eps=LN_EPS)
        self.norm2 = nn.LayerNorm(size, eps=LN_EPS)

    def __call__(self, x: mx.array, attn_mask: mx.array | None) -> mx.array:
        x = x + self.self_attn(self.norm1(x), attn_mask)
        return x + self.feed_forward(self.norm2(x))


class AudioAdaptor(nn.Module):
    """Upstream class `Transformer` (registered as adaptor "Transformer")."""

    def __init__(self, args: AdaptorArgs):
        super().__init__()
        self.args = args
        k = args.downsample_rate
        self.linear1 = nn.Linear(args.encoder_dim * k, args.ffn_dim)
        self.linear2 = nn.Linear(args.ffn_dim, args.llm_dim)
        self.blocks = [EncoderLayer(args.llm_dim, args.attention_heads) for _ in range(args.n_layer)]

    def __call__(self, x: mx.array, lengths: mx.array | Sequence[int] | None = None) -> tuple[mx.array, mx.array]:
        """x (B, T, encoder_dim), lengths (B,) valid frames (None: all T) → (B, ⌈T/k⌉, llm_dim), out lengths (B,).

        As upstream, a group that straddles the end of a row's valid frames mixes in whatever the padded frames hold
        (zeros only past T); with downsample_rate 1 (Fun-ASR-Nano) padded rows equal single runs on valid frames.
        """
        b, t, d = x.shape
        k = self.args.downsample_rate
        chunks = (t - 1) // k + 1
        if chunks * k > t:
            x = mx.pad(x, [(0, 0), (0, chunks * k - t), (0, 0)])
        x = x.reshape(b, chunks, d * k)
        x = self.linear2(nn.relu(self.linear1(x)))

        if lengths is None:
            olens = np.full((b,), chunks, dtype=np.int64)
        else:
            olens = (np.asarray(lengths, dtype=np.int64).reshape(-1) - 1) // k + 1
            if olens.shape[0] != b or olens.min(initial=1) < 1 or olens.max(initial=1) > chunks:
                raise ValueError(f"lengths must hold {b} values in [1, {t}], got {np.asarray(lengths).tolist()}")
        attn_mask = None
        if (olens != chunks).any():
            attn_mask = mx.array((np.arange(chunks)[None, :] < olens[:, None])[:, None, None, :])
        for block in self.blocks:
            x = block(x, attn_mask)
        return x, mx.array(olens.astype(np.int32))

    def sanitize(self, weights: dict[str, Any]) -> dict[str, Any]:
        """Checkpoint weights → this module's: keys under `audio_adaptor.` (prefix stripped; keys already without it
        pass through), other modules' keys dropped. Idempotent; no layout changes are needed (all Linear/LayerNorm)."""
        own = set(self.children())
        out = {}
        for key, value in weights.items():
            key = key.removeprefix("module.").removeprefix("audio_adaptor.")
            if key.split(".", 1)[0] in own:
                out[key] = value
        return out
