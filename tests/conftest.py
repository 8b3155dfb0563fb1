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
    from dora_funasr_nano.model_core.speech.whisper import WhisperRecognizer

    return WhisperRecognizer(cpu_threads=2)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny random Fun-ASR-Nano, written in the official and mlx-community layouts (tests/tiny_checkpoint.py)."""
    import tiny_checkpoint

    return tiny_checkpoint.build(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def llm():
    """Start fake OpenAI-compatible servers (tests/fake_llm.py) by their script of modes; all closed afterwards."""
    from fake_llm import FakeLLM

    servers: list[FakeLLM] = []

    def start(*modes: str) -> FakeLLM:
        servers.append(FakeLLM(*modes))
        return servers[-1]

    yield start
    for s in servers:
        s.close()
