"""Weight access for the numpy backend: numpy views of the MLX model's own parameters, so both backends read the
same tensors (no second copy, no second naming of the checkpoint)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

# dtypes the numpy backend reads: fp32 as a zero-copy view, bf16 (the low-memory option) widened per use
VIEWABLE = (mx.float32, mx.bfloat16)


def weight_view(weight: mx.array) -> np.ndarray:
    """A float32 numpy array of an MLX parameter: a zero-copy view of fp32 weights; bf16 weights are widened by
    MLX first, one tensor at a time (a shift, ~1 ms per 5M values here), so only one layer's copy exists at once."""
    if weight.dtype != mx.float32:
        weight = weight.astype(mx.float32)
    return np.asarray(weight)


def on_cpu() -> bool:
    """The numpy backend computes on the CPU, so it applies only where MLX does too."""
    return mx.default_device() == mx.cpu
