"""The SenseVoice encoder in numpy, for one unpadded segment on the CPU (fp32 weights).

Why: the same reason as cpu_decode.py. On Linux MLX hands each product to the system OpenBLAS 0.3.21, numpy to its
bundled, newer OpenBLAS; at these small-M shapes (T = 84 frames for 5 s of audio) numpy's are faster. Measured on
our 2-core box, whole encoder, real shapes: 362 vs 410 ms (5 s of audio), 1,499 vs 1,872 ms (20 s). Same
arithmetic as encoder.py (≤ 1e-6 relative), over zero-copy views of the MLX weights (no extra memory).
Batches with padding, other dtypes and other devices stay in MLX. DFN_ENCODE=mlx switches this off.
"""

from __future__ import annotations

import math
import os

import mlx.core as mx
import numpy as np

from .encoder import LN_EPS, EncoderLayerSANM, SenseVoiceEncoderSmall, sinusoidal_position_encoding


def numpy_encode_available(encoder: SenseVoiceEncoderSmall) -> bool:
    if os.environ.get("DFN_ENCODE", "auto") == "mlx" or mx.default_device() != mx.cpu:
        return False
    return (
        encoder.after_norm.weight.dtype == mx.float32
        and encoder.encoders[0].self_attn.linear_out.weight.dtype == mx.float32
    )


def _layer_norm(x: np.ndarray, norm) -> np.ndarray:  # noqa: ANN001 - an mlx nn.LayerNorm
    centered = x - x.mean(-1, keepdims=True)
    var = (centered * centered).mean(-1, keepdims=True)
    return centered / np.sqrt(var + np.float32(LN_EPS)) * np.asarray(norm.weight) + np.asarray(norm.bias)


def _linear(x: np.ndarray, linear) -> np.ndarray:  # noqa: ANN001 - an mlx nn.Linear
    return x @ np.asarray(linear.weight).T + np.asarray(linear.bias)


def _layer(x: np.ndarray, layer: EncoderLayerSANM) -> np.ndarray:
    attn, t = layer.self_attn, x.shape[0]
    q, k, v = np.split(_linear(_layer_norm(x, layer.norm1), attn.linear_q_k_v), 3, axis=-1)
    # FSMN memory on V: the sum of shifted copies, as MultiHeadedAttentionSANM.fsmn
    taps = np.asarray(attn.fsmn_block.weight)[:, :, 0].T
    padded = np.pad(v, (attn.pad, (0, 0)))
    memory = padded[:t] * taps[0]
    for i in range(1, taps.shape[0]):
        memory += padded[i : i + t] * taps[i]
    memory += v
    q, k, v = (a.reshape(t, attn.h, attn.d_k).transpose(1, 0, 2) for a in (q, k, v))
    scores = q @ k.transpose(0, 2, 1)
    scores *= np.float32(attn.d_k**-0.5)
    scores -= scores.max(-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(-1, keepdims=True)
    mixed = (scores @ v).transpose(1, 0, 2).reshape(t, -1)
    h = _linear(mixed, attn.linear_out) + memory
    x = x + h if layer.in_size == layer.size else h
    ff = layer.feed_forward
    return x + _linear(np.maximum(_linear(_layer_norm(x, layer.norm2), ff.w_1), 0), ff.w_2)


def encode(encoder: SenseVoiceEncoderSmall, features: np.ndarray) -> np.ndarray:
    """(T, input_size) float32 LFR features of one segment -> (T, output_size), as SenseVoiceEncoderSmall."""
    t, depth = features.shape
    x = features * np.float32(math.sqrt(encoder.args.output_size))
    x = x + np.asarray(sinusoidal_position_encoding(t, depth))[0]
    for layer in [*encoder.encoders0, *encoder.encoders]:
        x = _layer(x, layer)
    x = _layer_norm(x, encoder.after_norm)
    for layer in encoder.tp_encoders:
        x = _layer(x, layer)
    return _layer_norm(x, encoder.tp_norm)
