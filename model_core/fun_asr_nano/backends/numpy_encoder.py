"""The SenseVoice encoder and the audio adaptor in numpy, for one unpadded segment on the CPU.

Why: the same reason as numpy_decoder.py. On Linux MLX hands each product to the system OpenBLAS 0.3.21, numpy to its
bundled, newer OpenBLAS; at these small-M shapes (T = 84 frames for 5 s of audio) numpy's are faster. Measured on
our 2-core box, whole encoder, real shapes: 362 vs 410 ms (5 s of audio), 1,499 vs 1,872 ms (20 s) in (T, C)
layout; channels-first (below) took another 5-10 % off. Same arithmetic as encoder.py (≤ 2e-6 relative at the
real shapes), over zero-copy views of the MLX weights (no extra memory).
fp32 or bf16 weights (the low-memory option widens each tensor as it is used). Batches with padding, other
dtypes and other devices stay in MLX (backends.choose_backends).
"""

from __future__ import annotations

import math

import mlx.nn as nn
import numpy as np

from ..adaptor import AudioAdaptor
from ..adaptor import EncoderLayer as AdaptorLayer
from ..encoder import EncoderLayerSANM, MultiHeadedAttentionSANM, SenseVoiceEncoderSmall, sinusoidal_position_encoding
from .weights import VIEWABLE, on_cpu, weight_view


def supports(encoder: SenseVoiceEncoderSmall) -> bool:
    """fp32 or bf16 audio weights on the CPU device (other dtypes and devices stay in MLX)."""
    return on_cpu() and all(
        m.weight.dtype in VIEWABLE for m in (encoder.after_norm, encoder.encoders[0].self_attn.linear_out)
    )


# Activations are kept channels-first, (channels, T): every product is then weight @ x with x C-contiguous (the
# sgemm form OpenBLAS runs fastest at small T here), and the FSMN shifts, norms and head splits work on contiguous
# rows. Measured against the same code in (T, channels) layout: 10 % faster at T = 84, 5 % at T = 333.


def _layer_norm(x: np.ndarray, norm: nn.LayerNorm) -> np.ndarray:
    """Normalise each column (frame) of x (C, T) over its C channels."""
    centered = x - x.mean(0)
    var = np.einsum("ct,ct->t", centered, centered) / np.float32(x.shape[0])
    centered *= 1 / np.sqrt(var + np.float32(norm.eps))
    centered *= weight_view(norm.weight)[:, None]
    centered += weight_view(norm.bias)[:, None]
    return centered


def _linear(x: np.ndarray, linear: nn.Linear) -> np.ndarray:
    y = weight_view(linear.weight) @ x
    y += weight_view(linear.bias)[:, None]
    return y


def _fsmn_memory(v: np.ndarray, attn: MultiHeadedAttentionSANM) -> np.ndarray:
    """The FSMN memory block on V (C, T): a depthwise conv over time plus V, as a sum of shifted copies."""
    taps = weight_view(attn.fsmn_block.weight)[:, :, 0]  # (C, kernel)
    (left, right), t = attn.pad, v.shape[1]
    padded = np.zeros((v.shape[0], left + t + right), np.float32)
    padded[:, left : left + t] = v
    memory, shifted = v.copy(), np.empty_like(v)
    for i in range(taps.shape[1]):
        np.multiply(padded[:, i : i + t], taps[:, i : i + 1], out=shifted)
        memory += shifted
    return memory


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
    """Softmax attention over all frames; q, k, v (C, T) -> (C, T)."""
    c, t = q.shape
    q, k, v = (a.reshape(heads, c // heads, t) for a in (q, k, v))
    scores = q.transpose(0, 2, 1) @ k  # (heads, query, key)
    scores *= np.float32((c // heads) ** -0.5)
    scores -= scores.max(-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(-1, keepdims=True)
    return (v @ scores.transpose(0, 2, 1)).reshape(c, t)


def _feed_forward(x: np.ndarray, layer: EncoderLayerSANM | AdaptorLayer) -> np.ndarray:
    """x + w_2(relu(w_1(norm2(x)))), the second half of both block kinds."""
    hidden = _linear(_layer_norm(x, layer.norm2), layer.feed_forward.w_1)
    np.maximum(hidden, 0, out=hidden)
    out = _linear(hidden, layer.feed_forward.w_2)
    out += x
    return out


def _layer(x: np.ndarray, layer: EncoderLayerSANM) -> np.ndarray:
    attn = layer.self_attn
    q, k, v = np.split(_linear(_layer_norm(x, layer.norm1), attn.linear_q_k_v), 3)
    h = _linear(_attend(q, k, v, attn.h), attn.linear_out)
    h += _fsmn_memory(v, attn)
    if layer.in_size == layer.size:
        h += x
    return _feed_forward(h, layer)


def _adaptor_block(x: np.ndarray, layer: AdaptorLayer) -> np.ndarray:
    attn = layer.self_attn
    normed = _layer_norm(x, layer.norm1)
    q, k, v = (_linear(normed, lin) for lin in (attn.linear_q, attn.linear_k, attn.linear_v))
    h = _linear(_attend(q, k, v, attn.h), attn.linear_out)
    h += x
    return _feed_forward(h, layer)


def adapt(adaptor: AudioAdaptor, x: np.ndarray) -> np.ndarray:
    """Encoder output (C, T) channels-first -> adaptor rows (T / downsample_rate, llm_dim), as AudioAdaptor."""
    k = adaptor.args.downsample_rate
    if k > 1:  # group k frames into one row, zero-padding the last group, as AudioAdaptor
        c, t = x.shape
        chunks = (t - 1) // k + 1
        x = np.pad(x, ((0, 0), (0, chunks * k - t))).T.reshape(chunks, c * k).T.copy()
    hidden = _linear(x, adaptor.linear1)
    np.maximum(hidden, 0, out=hidden)
    x = _linear(hidden, adaptor.linear2)
    for block in adaptor.blocks:
        x = _adaptor_block(x, block)
    return np.ascontiguousarray(x.T)


def _encode(encoder: SenseVoiceEncoderSmall, features: np.ndarray) -> np.ndarray:
    """(T, input_size) LFR features -> (output_size, T), channels-first."""
    t, depth = features.shape
    x = features * np.float32(math.sqrt(encoder.args.output_size))
    x += np.asarray(sinusoidal_position_encoding(t, depth))[0]
    x = np.ascontiguousarray(x.T)
    for layer in [*encoder.encoders0, *encoder.encoders]:
        x = _layer(x, layer)
    x = _layer_norm(x, encoder.after_norm)
    for layer in encoder.tp_encoders:
        x = _layer(x, layer)
    return _layer_norm(x, encoder.tp_norm)


def encode(encoder: SenseVoiceEncoderSmall, features: np.ndarray) -> np.ndarray:
    """(T, input_size) float32 LFR features of one segment -> (T, output_size), as SenseVoiceEncoderSmall."""
    return np.ascontiguousarray(_encode(encoder, features).T)


def encode_and_adapt(encoder: SenseVoiceEncoderSmall, adaptor: AudioAdaptor, features: np.ndarray) -> np.ndarray:
    """(T, input_size) LFR features of one segment -> (T, llm_dim) adaptor rows, as the two MLX modules."""
    return adapt(adaptor, _encode(encoder, features))
