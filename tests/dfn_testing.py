"""Test helpers: real speech clips from installed packages, a MockNode that also records metadata."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from dora.testing import MockNode

REPO = Path(__file__).resolve().parents[1]
DATAFLOWS = REPO / "dataflows"


class RecordingNode(MockNode):
    """dora's MockNode keeps output values only; node tests also check the metadata contract."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, Any, dict[str, Any]]] = []

    def send_output(self, output_id: str, data: Any, metadata: dict[str, Any] | None = None) -> None:
        super().send_output(output_id, data, metadata)
        self.sent.append((output_id, data, dict(metadata or {})))

    def of(self, output_id: str) -> list[tuple[Any, dict[str, Any]]]:
        return [(d, m) for o, d, m in self.sent if o == output_id]


def event(input_id: str, value: Any, **metadata: Any) -> dict[str, Any]:
    return {"type": "INPUT", "id": input_id, "value": value, "metadata": metadata}


def zh_clip(name: str) -> Path:
    """Mandarin clips with reference text from pytest-audioeval (MIT): nihao_shijie, jishu, pangrama."""
    return Path(str(resources.files("pytest_audioeval") / "samples" / "audio" / "zh" / f"{name}.wav"))


def read16k(path: Path) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    return data


def speech_with_gaps(names: list[str], gap_s: float = 1.0, lead_s: float = 0.5) -> np.ndarray:
    """Clips separated by silence: the VAD should find one segment per clip."""
    silence = np.zeros(int(gap_s * 16000), np.float32)
    parts = [np.zeros(int(lead_s * 16000), np.float32)]
    for name in names:
        parts += [read16k(zh_clip(name)), silence]
    return np.concatenate(parts)
