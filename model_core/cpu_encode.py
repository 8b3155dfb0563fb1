"""The SenseVoice encoder in numpy, for one unpadded segment on the CPU.

Why: the same reason as cpu_decode.py. On Linux MLX hands each product to the system OpenBLAS 0.3.21, numpy to its
bundled, newer OpenBLAS; at these small-M shapes (T = 84 frames for 5 s of audio) numpy's are faster. Measured on
our 2-core box, whole encoder, real shapes: 362 vs 410 ms (5 s of audio), 1,499 vs 1,872 ms (20 s). Same
arithmetic as encoder.py (≤ 1e-6 relative), over zero-copy views of the MLX weights (no extra memory).
fp32 or bf16 weights (the low-memory option widens each tensor as it is used). Batches with padding, other
dtypes and other devices stay in MLX. DFN_ENCODE=mlx switches this off.
"""

from __future__ import annotations

import math
import os

import mlx.core as mx
import numpy as np

from .encoder import LN_EPS, EncoderLayerSANM, SenseVoiceEncoderSmall, sinusoidal_position_encoding

_WEIGHT_DTYPES = (mx.float32, mx.bfloat16)  # bf16: the low-memory option (loading.audio_weights_dtype)


def numpy_encode_available(encoder: SenseVoiceEncoderSmall) -> bool:
    if os.environ.get("DFN_ENCODE", "auto") == "mlx" or mx.default_device() != mx.cpu:
        return False
    return all(m.weight.dtype in _WEIGHT_DTYPES for m in (encoder.after_norm, encoder.encoders[0].self_attn.linear_out))


def _f32(weight: mx.array) -> np.ndarray:
    """A zero-copy view of an fp32 weight; bf16 weights (low-memory option) are widened by MLX first, one tensor
    at a time (a shift, ~1 ms per 5M values here), so only one layer's fp32 copy exists at once."""
    if weight.dtype != mx.float32:
        weight = weight.astype(mx.float32)
    return np.asarray(weight)


def _layer_norm(x: np.ndarray, norm) -> np.ndarray:  # noqa: ANN001 - an mlx nn.LayerNorm
    centered = x - x.mean(-1, keepdims=True)
    var = (centered * centered).mean(-1, keepdims=True)
    return centered / np.sqrt(var + np.float32(LN_EPS)) * _f32(norm.weight) + _f32(norm.bias)


def _linear(x: np.ndarray, linear) -> np.ndarray:  # noqa: ANN001 - an mlx nn.Linear
    # weight @ x.T, transposed back for free: 1.15-1.5x faster in OpenBLAS than x @ weight.T at these shapes
    return (_f32(linear.weight) @ x.T).T + _f32(linear.bias)


def _layer(x: np.ndarray, layer: EncoderLayerSANM) -> np.ndarray:
    attn, t = layer.self_attn, x.shape[0]
    q, k, v = np.split(_linear(_layer_norm(x, layer.norm1), attn.linear_q_k_v), 3, axis=-1)
    # FSMN memory on V: the sum of shifted copies, as MultiHeadedAttentionSANM.fsmn
    taps = _f32(attn.fsmn_block.weight)[:, :, 0].T
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
