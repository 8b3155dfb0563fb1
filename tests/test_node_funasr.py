"""The funasr node on a tiny random Fun-ASR-Nano checkpoint: node plumbing with MockNode, and the real graph
under `dora run` (the model is random, so the text is noise; ids, counts and codes are what is checked)."""

import json

import mlx.core as mx
import numpy as np
import pyarrow as pa
import pytest
from dfn_testing import RecordingNode, event, read16k, zh_clip
from dora_graphs import dora_run, finals

from dora_funasr_nano.model_core.fun_asr_nano.api import FunAsrNano
from dora_funasr_nano.nodes.funasr import FunAsrConfig, run


@pytest.fixture(scope="module")
def asr(tiny):
    return FunAsrNano.load(tiny.official_dir, dtype=mx.float32)


def seg(samples, segment_id):
    return event("segment", pa.array(samples), sample_rate=16000, session_id="s", segment_id=segment_id,
                 start_s=0.0, end_s=samples.size / 16000, captured_at=7.0)  # fmt: skip


def test_one_text_per_segment_with_ids(asr):
    node = RecordingNode([seg(read16k(zh_clip("nihao_shijie")), 0), seg(read16k(zh_clip("jishu")), 1)])
    run(node, FunAsrConfig(max_tokens=8), asr=asr)
    assert [o for o, _, _ in node.sent] == ["ready", "text", "text"]
    for i, (value, meta) in enumerate(node.of("text")):
        assert meta["segment_id"] == i and meta["session_id"] == "s" and meta["captured_at"] == 7.0
        assert meta["language"] == "zh" and meta["task"] == "transcribe" and 0 < meta["tokens"] <= 8
        assert meta["finish_reason"] in ("eos", "length", "repetition") and value.to_pylist()[0]
        assert (meta["encoder_backend"], meta["decoder_backend"]) == (asr.backends.encoder, asr.backends.decoder)
    ((_, ready),) = node.of("ready")
    assert ready == {"ok": True, **asr.backends.as_metadata()}


def test_translate_with_the_base_checkpoint_is_a_typed_error_per_segment(asr):
    node = RecordingNode([seg(read16k(zh_clip("jishu")), 0), seg(read16k(zh_clip("jishu")), 1)])
    run(node, FunAsrConfig(task="translate"), asr=asr)
    errors = node.of("error")
    assert [m["segment_id"] for _, m in errors] == [0, 1]
    assert all(m["code"] == "UnsupportedLanguage" for _, m in errors)
    assert "transcribes only" in json.loads(errors[0][0].to_pylist()[0])["message"]


def test_bad_audio_and_missing_model(asr, tmp_path):
    broken = read16k(zh_clip("jishu")).copy()
    broken[3] = np.inf
    node = RecordingNode([seg(broken, 0), seg(np.zeros(400, np.float32), 1)])
    run(node, FunAsrConfig(), asr=asr)
    assert [m["code"] for _, m in node.of("error")] == ["InvalidAudio", "AudioTooShort"]

    node = RecordingNode([seg(read16k(zh_clip("jishu")), 0)])
    run(node, FunAsrConfig(model=str(tmp_path)))
    assert node.of("ready")[0][1] == {"ok": False, "code": "ModelNotLoaded"}
    assert node.of("error")[0][1]["code"] == "ModelNotLoaded"


def test_config_validation():
    with pytest.raises(ValueError, match="DFN_FUNASR_TASK"):
        FunAsrConfig(task="summarize")
    with pytest.raises(ValueError, match="DFN_FUNASR_DTYPE"):
        FunAsrConfig(dtype="int3")
    with pytest.raises(ValueError, match="DFN_FUNASR_BACKEND"):
        FunAsrConfig(backend="cuda")


@pytest.mark.integration
def test_funasr_graph_under_dora_run(tmp_path, tiny):
    records, log = dora_run(
        "file_funasr_transcribe.yml", tmp_path, DFN_SOURCE_REALTIME="false", DFN_FUNASR_MODEL=str(tiny.official_dir),
        DFN_FUNASR_MAX_TOKENS="6", DFN_FUNASR_BACKEND="mlx",
    )  # fmt: skip
    results = finals(records)
    assert len(results) == 2, log[-3000:]  # the bundled sample holds two utterances
    assert all(r["kind"] == "text" and r["language"] == "zh" and r["tokens"] <= 6 for r in results.values())
    assert all(r["encoder_backend"] == r["decoder_backend"] == "mlx" for r in results.values())


def test_partials_then_one_final(asr):
    node = RecordingNode([seg(read16k(zh_clip("jishu")), 0)])
    run(node, FunAsrConfig(max_tokens=8, partial_every=3), asr=asr)
    texts = node.of("text")
    fins = [m["fin"] for _, m in texts]
    assert fins[-1] is True and fins.count(True) == 1 and fins.count(False) >= 1
    assert [m["seq"] for _, m in texts] == list(range(1, len(texts) + 1))
    assert all(m["segment_id"] == 0 for _, m in texts)
    assert all(m["encoder_backend"] == asr.backends.encoder for _, m in texts)  # partials name the backends too


@pytest.mark.parametrize(
    ("task", "want"),
    [("transcribe_en", ("transcribe_en", ["通义", "千问"], False)), ("translate", ("transcribe", [], True))],
)
def test_warm_up_uses_the_nodes_prompt(asr, monkeypatch, task, want):
    """The warm-up decodes this node's own prompt, so the prompt cache holds its template for the first segment
    (translate without an adapter: every segment is an UnsupportedLanguage error, any prompt will do)."""
    from dora_funasr_nano.nodes import funasr as funasr_node

    calls = []
    monkeypatch.setattr(FunAsrNano, "load", classmethod(lambda cls, *a, **k: asr))
    real = asr.transcribe
    monkeypatch.setattr(asr, "transcribe", lambda audio, *a: calls.append(a) or real(audio, *a))
    funasr_node.make_recognizer(FunAsrConfig(task=task, hotwords="通义, 千问", itn=False))
    ((task_used, hotwords, itn, generation),) = calls
    assert (task_used.value, hotwords, itn) == want and generation.max_tokens == 2
