"""Fun-ASR-Nano's audio encoder, SenseVoiceEncoderSmall, in MLX.

A port of `funasr/models/sense_voice/model.py` (FunASR 1.4.16). Module and attribute names follow upstream, so
checkpoint keys map 1:1 once the `audio_encoder.` prefix is stripped (`SenseVoiceEncoderSmall.sanitize`).

    x (B, T, 560) LFR features
      × √output_size, + sinusoidal position encoding (positions 1..T, depth = input_size)
      encoders0: 1 SAN-M layer 560 → 512 (no residual around its attention: the widths differ)
      encoders:  num_blocks - 1 SAN-M layers, after_norm
      tp_encoders: tp_blocks SAN-M layers, tp_norm
    → (B, T, 512); no subsampling, so output lengths equal input lengths.

A SAN-M layer is a pre-LN transformer layer (LayerNorm eps 1e-5) whose self-attention adds an FSMN memory: a
depthwise 1-D convolution over time of V (no bias) plus V itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

LN_EPS = 1e-5  # funasr.models.sense_voice.model.LayerNorm: torch.nn.LayerNorm's default


@dataclass
class EncoderArgs:
    input_size: int = 560  # lfr_m (7) × n_mels (80)
    output_size: int = 512
    attention_heads: int = 4
    linear_units: int = 2048
    num_blocks: int = 50  # 1 in encoders0 + (num_blocks - 1) in encoders
    tp_blocks: int = 20
    kernel_size: int = 11
    sanm_shift: int = 0  # upstream spells it `sanm_shfit`
    # Read but unused, as upstream: SenseVoiceEncoderSmall never passes it to its layers, which are always pre-LN.
    normalize_before: bool = True

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> EncoderArgs:
        """From `audio_encoder_conf` of the checkpoint's config.yaml; unknown keys (dropout rates, `hub`, …) ignored."""
        params = dict(params)
        if "sanm_shfit" in params and "sanm_shift" not in params:
            params["sanm_shift"] = params["sanm_shfit"]
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names})


_PE_CACHE: dict[tuple[int, int], mx.array] = {}


def sinusoidal_position_encoding(length: int, depth: int) -> mx.array:
    """(1, length, depth) float32: [sin(p·τ), cos(p·τ)] for positions p = 1..length, τ_i = 10000^(-i/(depth/2 - 1)).

    Computed in float32 step by step as upstream's `SinusoidalPositionEncoder.encode`, and cached per shape.
    """
    key = (length, depth)
    if key not in _PE_CACHE:
        f32 = np.float32
        increment = f32(np.log(f32(10000))) / f32(depth / 2 - 1)
        inv_timescales = np.exp(np.arange(depth // 2, dtype=f32) * -increment)
        scaled_time = np.arange(1, length + 1, dtype=f32)[:, None] * inv_timescales[None, :]
        pe = np.concatenate([np.sin(scaled_time), np.cos(scaled_time)], axis=1)
        _PE_CACHE[key] = mx.array(pe[None])
    return _PE_CACHE[key]


def padding_masks(
    lengths: mx.array | Sequence[int] | None, batch: int, time: int, dtype: mx.Dtype = mx.float32
) -> tuple[mx.array | None, mx.array | None]:
    """Masks for a padded batch, or (None, None) when every row is full length (the fast path).

    Returns `keep` (B, T, 1) of `dtype` (1 on valid frames, for the FSMN) and `attn_mask` (B, 1, 1, T) bool (True on
    valid keys, for attention): upstream's `sequence_mask(ilens)[:, None, :]` in the two layouts we need.
    """
    if lengths is None:
        return None, None
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lens.shape[0] != batch:
        raise ValueError(f"lengths has {lens.shape[0]} entries for a batch of {batch}")
    if lens.min(initial=time) < 1 or lens.max(initial=1) > time:
        raise ValueError(f"lengths must lie in [1, {time}], got {lens.tolist()}")
    if (lens == time).all():
        return None, None
    valid = np.arange(time)[None, :] < lens[:, None]  # (B, T)
    keep = mx.array(valid[:, :, None]).astype(dtype)
    attn_mask = mx.array(valid[:, None, None, :])
    return keep, attn_mask


class PositionwiseFeedForward(nn.Module):
    def __init__(self, idim: int, hidden_units: int):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim)

    def __call__(self, x: mx.array) -> mx.array:
        return self.w_2(nn.relu(self.w_1(x)))


class MultiHeadedAttentionSANM(nn.Module):
    """Self-attention (fused q/k/v projection, scores scaled by d_k^-0.5) plus the FSMN memory on V."""

    def __init__(self, n_head: int, in_feat: int, n_feat: int, kernel_size: int, sanm_shift: int = 0):
        super().__init__()
        assert n_feat % n_head == 0
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_q_k_v = nn.Linear(in_feat, n_feat * 3)
        # depthwise: weight (n_feat, kernel_size, 1) in MLX layout
        self.fsmn_block = nn.Conv1d(n_feat, n_feat, kernel_size, groups=n_feat, bias=False)
        left = (kernel_size - 1) // 2 + max(sanm_shift, 0)
        self.pad = (left, kernel_size - 1 - left)

    def fsmn(self, v: mx.array, keep: mx.array | None) -> mx.array:
        """(B, T, C) → depthwise conv over time (zero padded) + v; padded frames zeroed before and after."""
        if keep is not None:
            v = v * keep
        t = v.shape[1]
        taps = self.fsmn_block.weight[:, :, 0].T  # (K, C)
        vp = mx.pad(v, [(0, 0), self.pad, (0, 0)])
        # A sum of K shifted copies: the same arithmetic as the depthwise conv, several times faster than
        # mx.conv1d(groups=C) on CPU.
        out = vp[:, :t] * taps[0]
        for k in range(1, taps.shape[0]):
            out = out + vp[:, k : k + t] * taps[k]
        out = out + v
        if keep is not None:
            out = out * keep
        return out

    def __call__(self, x: mx.array, keep: mx.array | None, attn_mask: mx.array | None) -> mx.array:
        b, t, _ = x.shape
        q, k, v = mx.split(self.linear_q_k_v(x), 3, axis=-1)
        memory = self.fsmn(v, keep)
        q, k, v = (a.reshape(b, t, self.h, self.d_k).transpose(0, 2, 1, 3) for a in (q, k, v))
        # attn_mask (B, 1, 1, T) True on valid keys ≡ upstream's masked_fill(-inf) → softmax → masked_fill(0): a
        # key-padding mask never masks a whole row (lengths ≥ 1), so the second fill changes nothing.
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.d_k**-0.5, mask=attn_mask)
        o = o.transpose(0, 2, 1, 3).reshape(b, t, -1)
        return self.linear_out(o) + memory


class EncoderLayerSANM(nn.Module):
    """Pre-LN: x + self_attn(norm1(x)), then x + feed_forward(norm2(x))."""

    def __init__(self, in_size: int, size: int, args: EncoderArgs):
        super().__init__()
        self.in_size = in_size
        self.size = size
        self.self_attn = MultiHeadedAttentionSANM(
            args.attention_heads, in_size, size, args.kernel_size, args.sanm_shift
        )
        self.feed_forward = PositionwiseFeedForward(size, args.linear_units)
        self.norm1 = nn.LayerNorm(in_size, eps=LN_EPS)
        self.norm2 = nn.LayerNorm(size, eps=LN_EPS)

    def __call__(self, x: mx.array, keep: mx.array | None, attn_mask: mx.array | None) -> mx.array:
        h = self.self_attn(self.norm1(x), keep, attn_mask)
        x = x + h if self.in_size == self.size else h  # encoders0 (560 → 512) has no residual
        return x + self.feed_forward(self.norm2(x))


class SenseVoiceEncoderSmall(nn.Module):
    def __init__(self, args: EncoderArgs):
        super().__init__()
        self.args = args
        d = args.output_size
        self.encoders0 = [EncoderLayerSANM(args.input_size, d, args)]
        self.encoders = [EncoderLayerSANM(d, d, args) for _ in range(args.num_blocks - 1)]
        self.tp_encoders = [EncoderLayerSANM(d, d, args) for _ in range(args.tp_blocks)]
        self.after_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.tp_norm = nn.LayerNorm(d, eps=LN_EPS)

    def __call__(self, x: mx.array, lengths: mx.array | None = None) -> mx.array:
        """x (B, T, input_size) LFR features, lengths (B,) valid frames per row (None: all T) → (B, T, output_size).

        Rows of a padded batch equal single unpadded runs on their valid frames; padded frames hold what upstream
        computes there (not zeros).
        """
        b, t, depth = x.shape
        keep, attn_mask = padding_masks(lengths, b, t, x.dtype)
        # upstream: xs_pad *= output_size ** 0.5 (in place), then the position encoding is added
        x = x * math.sqrt(self.args.output_size)
        x = x + sinusoidal_position_encoding(t, depth).astype(x.dtype)
        for layer in self.encoders0:
            x = layer(x, keep, attn_mask)
        for layer in self.encoders:
            x = layer(x, keep, attn_mask)
        x = self.after_norm(x)
        for layer in self.tp_encoders:
            x = layer(x, keep, attn_mask)
        return self.tp_norm(x)

    def sanitize(self, weights: dict[str, Any]) -> dict[str, Any]:
        """Checkpoint weights → this module's: keys under `audio_encoder.` (prefix stripped; keys already without it
        pass through), other modules' keys dropped, FSMN conv weights from torch's (C, 1, K) to MLX's (C, K, 1).

        Idempotent: already-converted weights (mlx-community/Fun-ASR-Nano-2512) come back unchanged. Works on mx,
        numpy (and torch) arrays alike.
        """
        own = set(self.children())
        out = {}
        for key, value in weights.items():
            key = key.removeprefix("module.").removeprefix("audio_encoder.")
            if key.split(".", 1)[0] not in own:
                continue
            if key.endswith("fsmn_block.weight") and value.ndim == 3 and value.shape[1] == 1:
                value = value.swapaxes(1, 2)  # (C, 1, K) → (C, K, 1); a no-op reshape when K == 1
            out[key] = value
        return out
