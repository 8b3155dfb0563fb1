"""Shared fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bundled_sample() -> Path:
    from dora_funasr_nano.nodes.audio_source import bundled_sample

    return bundled_sample()


@pytest.fixture(scope="session")
def whisper():
    """The real packaged Whisper base (assembled into the cache once, checksum-verified)."""
    from dora_funasr_nano.model_core.whisper_asr import WhisperRecognizer

    return WhisperRecognizer(cpu_threads=2)
