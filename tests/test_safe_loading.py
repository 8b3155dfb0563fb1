"""Safe loading: checkpoints load as tensors only (safetensors, or torch's weights_only), model ids and asset names
cannot leave the cache directory, and every assembled asset is checksummed, so a changed, truncated or relinked
cached file is found and assembled again."""

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest
from test_assets import fake_parts, model

from dora_funasr_nano.model_core.common.assets import MARKER, SplitModel, inside
from dora_funasr_nano.model_core.common.errors import ModelNotLoaded
from dora_funasr_nano.model_core.fun_asr_nano.loading import read_torch_checkpoint, read_weights, resolve_model_dir

REPO = Path(__file__).resolve().parents[1]


class Planted:
    """Unpickling this runs code: it creates the file `path` (a stand-in for anything an attacker would run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


# --- checkpoints ------------------------------------------------------------------------------------------------


def test_a_pickled_object_in_model_pt_is_refused_and_never_runs(tmp_path):
    torch = pytest.importorskip("torch")
    ran = tmp_path / "code-ran"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Planted(ran)}, tmp_path / "model.pt")
    with pytest.raises(ModelNotLoaded, match="not a plain tensor checkpoint"):
        read_torch_checkpoint(tmp_path / "model.pt")
    assert not ran.exists()
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "model.pt")  # tensors only: loads
    assert np.array(read_torch_checkpoint(tmp_path / "model.pt")["w"]).tolist() == [1.0, 1.0]


def test_broken_or_foreign_weight_files_are_model_not_loaded(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" + os.urandom(64))
    with pytest.raises(ModelNotLoaded, match="not a readable safetensors"):
        read_weights(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch = pytest.importorskip("torch")
    torch.save({"w": Planted(tmp_path / "code-ran")}, tmp_path / "model.bin")  # pickles under other names
    np.save(tmp_path / "model.npy", np.zeros(2, object), allow_pickle=True)
    with pytest.raises(ModelNotLoaded, match="neither model.safetensors nor model.pt"):
        read_weights(tmp_path)  # are never opened
    assert not (tmp_path / "code-ran").exists()


def test_the_translator_loads_no_pickled_weights(tmp_path):
    """mlx-lm (the MLX translator) reads model*.safetensors only: a folder with a pickled pytorch_model.bin is
    ModelNotLoaded, and the pickle never runs."""
    torch = pytest.importorskip("torch")
    from dora_funasr_nano.model_core.translation.mlx import MlxTranslator

    (tmp_path / "config.json").write_text('{"model_type": "qwen2", "hidden_size": 8, "num_hidden_layers": 1}')
    torch.save({"w": Planted(tmp_path / "code-ran")}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelNotLoaded):
        MlxTranslator(str(tmp_path))
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.parametrize(
    "model_id", ["../outside", "owner/../../etc", "/etc/passwd-model", "owner/name/../x", "C:\\models\\x", "a/.."]
)
def test_model_ids_that_would_leave_the_cache_are_refused_before_any_lookup(model_id, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotLoaded, match="not a Hugging Face model id"):
        resolve_model_dir(model_id)
    assert not (tmp_path / "hf").exists()  # the hub's cache was never touched
    with pytest.raises(ModelNotLoaded, match="not in the Hugging Face cache"):
        resolve_model_dir("FunAudioLLM/Fun-ASR-Nano-2512", allow_download=False)  # a real id still resolves


def test_the_translator_refuses_an_id_that_leaves_the_cache(tmp_path, monkeypatch):
    from dora_funasr_nano.model_core.translation.mlx import MlxTranslator

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotLoaded):
        MlxTranslator("../../outside")


# --- assembled assets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", "../x", "/abs", "a/b", "a\\b", "."])
def test_asset_names_are_plain_file_names(tmp_path, name):
    with pytest.raises(ModelNotLoaded):
        inside(tmp_path, name)


def test_an_asset_with_a_path_in_its_names_is_refused(tmp_path, monkeypatch):
    chunks = [b"a" * 100, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    good = model(chunks)
    for bad in (
        SplitModel(**{**good.__dict__, "name": "../escaped"}),
        SplitModel(**{**good.__dict__, "target": "../../escaped"}),
        SplitModel(**{**good.__dict__, "extra_files": ("/etc/hostname",)}),
        SplitModel(**{**good.__dict__, "parts": (("dfn_fake_part1", "../../blob.part1"),)}),
    ):
        with pytest.raises(ModelNotLoaded):
            bad.ensure(progress=False)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "cache" / "escaped").exists()


def test_a_cached_asset_that_changed_is_found_and_assembled_again(tmp_path, monkeypatch):
    chunks = [b"a" * 1000, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    m = model(chunks)
    out = m.ensure(progress=False)
    assert m.is_ready() and m.is_ready(verify=True)
    for damage in (
        lambda p: p.write_bytes(p.read_bytes()[:500]),  # truncated
        lambda p: p.write_bytes(b"x" * 1010),  # same size, other content
        lambda p: p.unlink(),  # gone
    ):
        damage(out / "blob")
        assert not m.is_ready()
        assert m.ensure(progress=False) == out and (out / "blob").read_bytes() == b"".join(chunks)
    (out / "config.json").write_text('{"changed": true}')  # the extra files are checked too
    assert not m.is_ready() and m.ensure(progress=False) and (out / "config.json").read_text() == "{}"


def test_a_bit_flip_that_keeps_size_and_time_needs_verify(tmp_path, monkeypatch):
    """The quick check compares size and modification time; a change that keeps both (disk corruption, or one
    made on purpose) is found by verify=True, which dfn-prepare-models uses."""
    chunks = [b"a" * 1000, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    m = model(chunks)
    blob = m.ensure(progress=False) / "blob"
    st = blob.stat()
    blob.write_bytes(b"c" + blob.read_bytes()[1:])
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert m.is_ready() and not m.is_ready(verify=True)
    assert m.ensure(progress=False, verify=True) and blob.read_bytes() == b"".join(chunks)


def test_links_in_the_cache_are_replaced_never_followed(tmp_path, monkeypatch):
    chunks = [b"a" * 1000, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    m = model(chunks)
    out = m.ensure(progress=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "blob").write_bytes(b"".join(chunks))  # even with the right content
    (outside / "config.json").write_text("precious")
    for name in ("blob", "config.json"):
        (out / name).unlink()
        (out / name).symlink_to(outside / name)
    (out / f"blob.partial-{os.getpid()}").symlink_to(outside / "planted")  # a link at the temporary name
    assert not m.is_ready()
    assert m.ensure(progress=False) == out and m.is_ready(verify=True)
    assert not any((out / n).is_symlink() for n in ("blob", "config.json"))
    assert (outside / "config.json").read_text() == "precious" and not (outside / "planted").exists()


def test_an_asset_folder_linked_outside_the_cache_is_refused(tmp_path, monkeypatch):
    chunks = [b"a" * 1000, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    (tmp_path / "cache").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "cache" / "fake").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ModelNotLoaded, match="points outside"):
        model(chunks).ensure(progress=False)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_pinned_extra_file_checksums_are_checked(tmp_path, monkeypatch):
    chunks = [b"a" * 1000, b"b" * 10]
    fake_parts(tmp_path, monkeypatch, chunks)
    good = model(chunks)
    right = SplitModel(**{**good.__dict__, "extra_sha256": (hashlib.sha256(b"{}").hexdigest(),)})
    assert right.ensure(progress=False) and right.is_ready()
    wrong = SplitModel(**{**good.__dict__, "name": "other", "extra_sha256": ("0" * 64,)})
    with pytest.raises(ModelNotLoaded, match="config.json has sha256"):
        wrong.ensure(progress=False)
    assert not wrong.is_ready() and not (wrong.directory() / MARKER).exists()


# --- nothing in the runtime loads unsafely ----------------------------------------------------------------------

UNSAFE = {
    r"torch\.load\((?![^)]*weights_only=True)": "torch.load without weights_only=True",
    r"\bpickle\.loads?\(|\bjoblib\.load\(|\bdill\.": "unpickling",
    r"allow_pickle\s*=\s*True": "numpy pickles",
    r"\.extractall\(|\.extract\(": "archive extraction",
    r"trust_remote_code\s*=\s*True": "remote code",
    r"yaml\.load\(|yaml\.unsafe_load|yaml\.full_load": "yaml objects",
    r"(?<![\w.])(eval|exec)\(": "evaluated strings",
}


def test_no_runtime_module_loads_unsafely():
    found = []
    for path in sorted([*(REPO / "model_core").rglob("*.py"), *(REPO / "nodes").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        for pattern, what in UNSAFE.items():
            for match in re.finditer(pattern, text):
                line = text[: match.start()].count("\n") + 1
                found.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert found == []
