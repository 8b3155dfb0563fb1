"""Compute backends of Fun-ASR-Nano, chosen once per loaded model (`FunAsrNano.load(backend=...)`).

- `mlx`: the MLX modules themselves (any device; the only one for padded batches in the encoder).
- `numpy`: the same arithmetic in numpy over views of the MLX weights (numpy_encoder.py, numpy_decoder.py). On a
  Linux CPU numpy's bundled OpenBLAS runs these small-M products faster than the system BLAS MLX calls (measured:
  decode 331 -> 90 ms per token, encoder 12-20 % faster).
- `auto`: numpy for each side where it applies (CPU device; fp32 weights, or bf16 audio weights), MLX otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...common.settings import BACKENDS, default_backend
from . import numpy_decoder, numpy_encoder

if TYPE_CHECKING:
    from ..model import Model


@dataclass(frozen=True)
class Backends:
    encoder: str  # "mlx" or "numpy": one unpadded segment's encoder + adaptor
    decoder: str  # "mlx" or "numpy": the LLM's prefill and decode

    def as_metadata(self) -> dict[str, str]:
        return {"encoder_backend": self.encoder, "decoder_backend": self.decoder}


def choose_backends(model: Model, requested: str | None = None) -> Backends:
    """`requested`: auto | mlx | numpy (None: $DFN_BACKEND, default auto). numpy on weights or a device it cannot
    serve is a ValueError, not a silent fallback."""
    requested = requested or default_backend()
    if requested not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == "mlx":
        return Backends("mlx", "mlx")
    encoder_ok = numpy_encoder.supports(model.audio_encoder)
    decoder_ok = numpy_decoder.supports(model.llm)
    if requested == "numpy" and not (encoder_ok and decoder_ok):
        raise ValueError("the numpy backend needs the CPU device and fp32 weights (bf16 audio weights are fine)")
    return Backends("numpy" if encoder_ok else "mlx", "numpy" if decoder_ok else "mlx")
