"""The frozen half of the model, run once: each audio file's rows (encoder + adaptor output, what the LLM sees
between the prompt's two text parts) cached on disk under the audio's content hash and the model's fingerprint.

Encoder and adaptor do not train, so their output for a file never changes while the same weights are used; the
fingerprint hashes those weights (and the front end's settings), so a different checkpoint or dtype never reads
another one's rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import mlx.core as mx
import numpy as np
import soundfile as sf

from ...fun_asr_nano.api import FunAsrNano
from ...speech.audio import normalize
from ..bench.workload import named_parameters


def read_audio(path: str | Path) -> np.ndarray:
    """Any sound file -> 16 kHz mono float32."""
    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return normalize(samples.reshape(-1), rate, samples.shape[1])


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(asr: FunAsrNano) -> str:
    """sha256 over the front-end settings and every encoder and adaptor weight (names, dtypes, bytes)."""
    digest = hashlib.sha256(repr(asr.model.args.frontend).encode())
    for module in (asr.model.audio_encoder, asr.model.audio_adaptor):
        for name, value in sorted(named_parameters(module).items()):
            digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
            digest.update(np.asarray(value.astype(mx.float32)).tobytes())
    return digest.hexdigest()


class FeatureCache:
    """rows(audio path) -> (audio tokens, hidden) float32, computed with the runtime's own FunAsrNano.features and
    audio_rows (so training sees exactly what inference feeds the LLM), then kept in `folder`."""

    def __init__(self, asr: FunAsrNano, folder: str | Path) -> None:
        self.asr = asr
        self.folder = Path(folder) / model_fingerprint(asr)[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        self._memory: dict[str, np.ndarray] = {}
        self.computed = 0  # files encoded in this process (the rest came from disk or memory)

    def path(self, audio: str | Path) -> Path:
        digest = file_hash(audio)
        return self.folder / digest[:2] / f"{digest}.npy"

    def rows(self, audio: str | Path) -> np.ndarray:
        key = str(audio)
        if key in self._memory:
            return self._memory[key]
        path = self.path(audio)
        if path.is_file():
            rows = np.load(path)
        else:
            rows = np.asarray(self.asr.audio_rows(self.asr.features(read_audio(audio))).astype(mx.float32))
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp.npy")
            np.save(temporary, rows)
            temporary.replace(path)  # atomic: an interrupted run never leaves half a file
            self.computed += 1
        self._memory[key] = rows
        return rows
