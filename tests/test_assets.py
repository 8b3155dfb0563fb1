import hashlib

import pytest

from dora_funasr_nano.model_core.common.assets import WHISPER_BASE, SplitModel
from dora_funasr_nano.model_core.common.errors import ModelNotLoaded
from dora_funasr_nano.model_core.speech.vad import SILERO_ONNX_SHA256, silero_model_path


def fake_parts(tmp_path, monkeypatch, chunks):
    """Installable-looking packages dfn_fake_partN/data/blob.partN on sys.path."""
    for i, data in enumerate(chunks, 1):
        pkg = tmp_path / "site" / f"dfn_fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"blob.part{i}").write_bytes(data)
    (tmp_path / "site" / "dfn_fake_part1" / "data" / "config.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path / "cache"))


def model(chunks, sha=None):
    whole = b"".join(chunks)
    return SplitModel(
        name="fake",
        parts=tuple((f"dfn_fake_part{i}", f"blob.part{i}") for i in range(1, len(chunks) + 1)),
        target="blob",
        size=len(whole),
        sha256=sha or hashlib.sha256(whole).hexdigest(),
        extra_files=("config.json",),
        install_hint="pip install fake",
    )


def test_parts_are_assembled_once_and_verified(tmp_path, monkeypatch):
    chunks = [b"a" * 1000, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    m = model(chunks)
    out = m.ensure(progress=False)
    assert (out / "blob").read_bytes() == b"".join(chunks) and (out / "config.json").exists()
    assert m.is_ready()
    before = (out / "blob").stat().st_mtime_ns
    assert m.ensure(progress=False) == out and (out / "blob").stat().st_mtime_ns == before  # assembled once
    (out / "blob").write_bytes(b"changed")  # a changed cached file is found and assembled again
    assert not m.is_ready() and m.ensure(progress=False) == out and (out / "blob").read_bytes() == b"".join(chunks)


def test_checksum_mismatch_is_model_not_loaded_and_leaves_nothing(tmp_path, monkeypatch):
    chunks = [b"a" * 1000, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    m = model(chunks, sha="0" * 64)
    with pytest.raises(ModelNotLoaded, match="expected 1010 bytes"):
        m.ensure(progress=False)
    assert not m.is_ready() and not (m.directory() / "blob").exists()


def test_missing_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DFN_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelNotLoaded, match="pip install fake"):
        model([b"x", b"y"]).ensure(progress=False)


def test_packaged_models_match_their_pinned_checksums():
    path = WHISPER_BASE.ensure(progress=False)
    assert hashlib.sha256((path / "model.bin").read_bytes()).hexdigest() == WHISPER_BASE.sha256
    assert hashlib.sha256(silero_model_path().read_bytes()).hexdigest() == SILERO_ONNX_SHA256
